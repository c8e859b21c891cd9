// `pensieve serve` as a process, under signals: killed with SIGKILL (no shutdown, nothing
// flushed at exit) with --cache-dir it keeps the prefixes of the requests it answered, and
// the next start loads them from disk; SIGTERM during a warm-up stops it at once.
// Runs the built binary; ~5 s.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <vector>
#include <unistd.h>

#include "run_pensieve.h"
#include "test_paths.h"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string binary() { return pensieve_binary(); }

// A loopback port nobody listens on right now (the kernel picks it).
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

struct Server {
    pid_t pid = -1;
    int port = 0;
    // `pensieve serve` on stories260K with `args` (e.g. --cache-dir DIR).
    explicit Server(const std::vector<std::string>& args) {
        port = free_port();
        std::vector<std::string> all = {"pensieve", "serve", "-m", shared_dir() + "/models/stories260K.gguf",
                                        "--port", std::to_string(port), "-q", "-t", "1"};
        all.insert(all.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (std::string& a : all) argv.push_back(a.data());
        argv.push_back(nullptr);
        pid = ::fork();
        if (pid == 0) {
            std::freopen("/dev/null", "w", stderr);
            ::execv(binary().c_str(), argv.data());
            ::_exit(127);
        }
    }
    ~Server() { kill(); }
    bool ready() const {
        for (int i = 0; i < 300; ++i) {
            httplib::Client c("127.0.0.1", port);
            if (auto r = c.Get("/health"); r && r->status == 200) return true;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }
    json post(const std::string& path, const json& body) const {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(60, 0);
        auto r = c.Post(path.c_str(), body.dump(), "application/json");
        return r ? json::parse(r->body, nullptr, false) : json();
    }
    // A counter from /metrics, or -1.
    double metric(const std::string& name) const {
        httplib::Client c("127.0.0.1", port);
        auto r = c.Get("/metrics");
        if (!r) return -1;
        const std::string& b = r->body;
        for (size_t at = b.find(name + " "); at != std::string::npos; at = b.find(name + " ", at + 1))
            if (at == 0 || b[at - 1] == '\n') return std::stod(b.substr(at + name.size() + 1));
        return -1;
    }
    void kill() {
        if (pid <= 0) return;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        pid = -1;
    }
};

TEST(ServeCrash, SigkillKeepsTheLastRequestsPrefix) {
    if (!std::filesystem::exists(binary())) GTEST_SKIP() << "no binary " << binary();
    const std::string dir = ::testing::TempDir() + "pensieve-crash-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    const json body = {{"prompt", "Once upon a time, there was a little girl named Lily. She loved to play outside "
                                  "in the park with her friends."},
                       {"max_tokens", 4},
                       {"temperature", 0}};
    json first;
    {
        Server s({"--cache-dir", dir});
        ASSERT_TRUE(s.ready());
        first = s.post("/v1/completions", body);
        ASSERT_TRUE(first.contains("usage")) << first.dump();
        const int prompt_tokens = first["usage"]["prompt_tokens"];
        ASSERT_GE(prompt_tokens, 32);
        // Written in the background moments after the reply.
        bool written = false;
        for (int i = 0; i < 200 && !written; ++i) {
            written = s.metric("pensieve_prefix_cache_disk_writes_total") >= prompt_tokens / 16;
            if (!written) std::this_thread::sleep_for(25ms);
        }
        ASSERT_TRUE(written) << s.metric("pensieve_prefix_cache_disk_writes_total");
        s.kill();   // SIGKILL: no shutdown, no flush
    }
    Server s({"--cache-dir", dir});
    ASSERT_TRUE(s.ready());
    const json again = s.post("/v1/completions", body);
    EXPECT_GT(s.metric("pensieve_prefix_cache_disk_hit_blocks_total"), 0);
    EXPECT_EQ(s.metric("pensieve_prefix_cache_disk_rejected_total"), 0);
    EXPECT_GT(again["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0) << again.dump();
    EXPECT_EQ(again["choices"][0]["text"], first["choices"][0]["text"]);
    s.kill();
    std::filesystem::remove_all(dir);
}

// SIGTERM while --warm-cache replays its file (minutes of prefill on a slow machine) stops
// the server as promptly as at any other time: the warm-up is not a client to wait for.
TEST(ServeSignals, SigtermDuringAWarmUpStopsTheServerPromptly) {
    if (!std::filesystem::exists(binary())) GTEST_SKIP() << "no binary " << binary();
    const std::string file = ::testing::TempDir() + "pensieve-warm-" + std::to_string(::getpid()) + ".jsonl";
    {
        std::ofstream out(file);
        for (int i = 0; i < 20000; ++i)  // distinct prompts: each one is computed (minutes in all)
            out << json{{"path", "/v1/completions"},
                        {"body", {{"prompt", "Tale " + std::to_string(i) + ": once upon a time, a little girl named Lily "
                                             "went to the park with her friends and they played all day."}}}}
                       .dump()
                << "\n";
    }
    Server s({"--warm-cache", file});
    ASSERT_TRUE(s.ready());
    // The warm-up is under way (it started before /health said 200).
    for (int i = 0; i < 200 && s.metric("pensieve_prompt_tokens_total") < 1000; ++i) std::this_thread::sleep_for(25ms);
    ASSERT_GE(s.metric("pensieve_prompt_tokens_total"), 1000);
    const auto t0 = std::chrono::steady_clock::now();
    ::kill(s.pid, SIGTERM);
    int status = -1;
    while (::waitpid(s.pid, &status, WNOHANG) == 0 && std::chrono::steady_clock::now() - t0 < 20s)
        std::this_thread::sleep_for(20ms);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(WIFEXITED(status)) << "still running " << seconds << " s after SIGTERM";
    s.pid = -1;
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_LT(seconds, 5.0);
    std::filesystem::remove(file);
}

}  // namespace
