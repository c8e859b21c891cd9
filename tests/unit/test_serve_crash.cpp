// `pensieve serve --cache-dir` killed with SIGKILL (no shutdown, nothing flushed at exit)
// keeps the prefixes of the requests it answered: the next start loads them from disk.
// Runs the built binary; ~3 s.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <httplib.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
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
    Server(const std::string& cache_dir) {
        port = free_port();
        pid = ::fork();
        if (pid == 0) {
            const std::string model = shared_dir() + "/models/stories260K.gguf", p = std::to_string(port);
            std::freopen("/dev/null", "w", stderr);
            ::execl(binary().c_str(), "pensieve", "serve", "-m", model.c_str(), "--port", p.c_str(), "--cache-dir",
                    cache_dir.c_str(), "-q", "-t", "1", static_cast<char*>(nullptr));
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
        Server s(dir);
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
    Server s(dir);
    ASSERT_TRUE(s.ready());
    const json again = s.post("/v1/completions", body);
    EXPECT_GT(s.metric("pensieve_prefix_cache_disk_hit_blocks_total"), 0);
    EXPECT_EQ(s.metric("pensieve_prefix_cache_disk_rejected_total"), 0);
    EXPECT_GT(again["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0) << again.dump();
    EXPECT_EQ(again["choices"][0]["text"], first["choices"][0]["text"]);
    s.kill();
    std::filesystem::remove_all(dir);
}

}  // namespace
