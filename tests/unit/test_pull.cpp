// `pensieve pull / ls / rm` against an HTTP server in this process that serves a real model
// (../shared/models/stories260K.gguf) with HTTP ranges: the file lands whole and checked;
// a download cut half way resumes with a Range request and ends bit-identical; a wrong
// checksum (given, or stated by the server in a redirect's X-Linked-Etag, as Hugging Face
// does) or a file that is not GGUF is refused and nothing is left behind. About 1 s.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <httplib.h>

#include "run_pensieve.h"
#include "test_paths.h"

namespace pensieve {
namespace {

namespace fs = std::filesystem;

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Serves /m/NAME.gguf (the model, ranges honoured; cut after half when `cut_next` is set),
// /junk.gguf (not a GGUF), /moved/NAME.gguf (a redirect stating a checksum).
struct ModelServer {
    std::string model = read_all(shared_dir() + "/models/stories260K.gguf");
    std::string stated_sha256;
    std::atomic<bool> cut_next{false};
    std::mutex mutex;
    std::vector<std::string> ranges;  // the Range header of each model request ("" when none)
    httplib::Server svr;
    std::thread thread;
    int port = 0;

    ModelServer() {
        svr.Get(R"(/m/[^/]+\.gguf)", [this](const httplib::Request& req, httplib::Response& res) {
            {
                std::lock_guard<std::mutex> lock(mutex);
                ranges.push_back(req.get_header_value("Range"));
            }
            const bool cut = cut_next.exchange(false);
            res.set_content_provider(model.size(), "application/octet-stream",
                                     [this, cut](size_t offset, size_t length, httplib::DataSink& sink) {
                                         if (cut && offset >= model.size() / 2) return false;  // hang up
                                         const size_t n = std::min<size_t>(length, 64 << 10);
                                         const size_t end = cut ? std::min(offset + n, model.size() / 2) : offset + n;
                                         return sink.write(model.data() + offset, end - offset);
                                     });
        });
        svr.Get("/junk.gguf", [](const httplib::Request&, httplib::Response& res) {
            res.set_content(std::string(4096, 'x'), "application/octet-stream");
        });
        svr.Get(R"(/moved/([^/]+\.gguf))", [this](const httplib::Request& req, httplib::Response& res) {
            res.status = 302;
            res.set_header("Location", "/m/" + std::string(req.matches[1]));
            res.set_header("X-Linked-Etag", "\"" + stated_sha256 + "\"");
        });
        port = svr.bind_to_any_port("127.0.0.1");
        thread = std::thread([this] { svr.listen_after_bind(); });
        while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~ModelServer() {
        svr.stop();
        thread.join();
    }
    std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

struct PullTest : ::testing::Test {
    ModelServer server;
    fs::path dir = fs::temp_directory_path() / ("pensieve-pull-" + std::to_string(::getpid()));
    void SetUp() override { fs::remove_all(dir); }
    void TearDown() override { fs::remove_all(dir); }
    CommandResult pull(const std::string& args) { return run_pensieve("pull -q -o " + dir.string() + " " + args, true); }
    std::vector<std::string> files() const {
        std::vector<std::string> out;
        if (!fs::exists(dir)) return out;
        for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
        std::sort(out.begin(), out.end());
        return out;
    }
};

TEST_F(PullTest, DownloadsChecksAndPlacesTheFileThenLsAndRm) {
    const CommandResult r = pull(server.url("/m/stories260K.gguf"));
    ASSERT_EQ(r.status, 0) << r.out;
    const std::string target = (dir / "stories260K.gguf").string();
    EXPECT_NE(r.out.find(target), std::string::npos) << r.out;
    EXPECT_EQ(read_all(target), server.model);
    EXPECT_EQ(files(), std::vector<std::string>{"stories260K.gguf"});  // no partial file left
    // The checksum it reports is coreutils' for the same file.
    std::string coreutils(64, ' ');
    FILE* p = popen(("sha256sum " + shared_dir() + "/models/stories260K.gguf").c_str(), "r");
    ASSERT_TRUE(p);
    ASSERT_EQ(fread(coreutils.data(), 1, 64, p), 64u);
    pclose(p);
    EXPECT_NE(r.out.find("sha256 " + coreutils), std::string::npos) << r.out << " vs " << coreutils;

    // Again: already there, nothing fetched.
    const size_t requests = server.ranges.size();
    EXPECT_EQ(pull(server.url("/m/stories260K.gguf")).status, 0);
    EXPECT_EQ(server.ranges.size(), requests);

    const CommandResult ls = run_pensieve("ls -o " + dir.string());
    ASSERT_EQ(ls.status, 0);
    EXPECT_NE(ls.out.find("stories260K"), std::string::npos) << ls.out;
    EXPECT_NE(ls.out.find("llama"), std::string::npos) << ls.out;
    EXPECT_NE(run_pensieve("rm nope -o " + dir.string()).status, 0);
    EXPECT_EQ(run_pensieve("rm stories260K -o " + dir.string()).status, 0);
    EXPECT_TRUE(files().empty());
}

TEST_F(PullTest, AnInterruptedDownloadResumesWhereItStopped) {
    server.cut_next = true;
    const CommandResult first = pull(server.url("/m/stories260K.gguf"));
    EXPECT_NE(first.status, 0);
    EXPECT_NE(first.out.find("run the same command again to resume"), std::string::npos) << first.out;
    EXPECT_EQ(files(), std::vector<std::string>{".stories260K.gguf.partial"});  // never under the model's name
    const size_t half = server.model.size() / 2;
    EXPECT_EQ(fs::file_size(dir / ".stories260K.gguf.partial"), half);
    const CommandResult ls = run_pensieve("ls -o " + dir.string());
    EXPECT_NE(ls.out.find("partial download stories260K.gguf"), std::string::npos) << ls.out;

    const CommandResult second = pull(server.url("/m/stories260K.gguf"));
    ASSERT_EQ(second.status, 0) << second.out;
    EXPECT_NE(second.out.find("resumed after"), std::string::npos) << second.out;
    ASSERT_EQ(server.ranges.size(), 2u);
    EXPECT_EQ(server.ranges[0], "");
    EXPECT_EQ(server.ranges[1], "bytes=" + std::to_string(half) + "-");
    EXPECT_EQ(read_all((dir / "stories260K.gguf").string()), server.model);
    EXPECT_EQ(files(), std::vector<std::string>{"stories260K.gguf"});
}

TEST_F(PullTest, AWrongChecksumIsRefusedAndNothingIsLeft) {
    const std::string wrong(64, '0');
    CommandResult r = pull("--sha256 " + wrong + " " + server.url("/m/stories260K.gguf"));
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("checksum mismatch"), std::string::npos) << r.out;
    EXPECT_TRUE(files().empty());

    // Stated by the server (a redirect's X-Linked-Etag): wrong is refused, right is kept.
    server.stated_sha256 = wrong;
    r = pull(server.url("/moved/stories260K.gguf"));
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("checksum mismatch"), std::string::npos) << r.out;
    EXPECT_TRUE(files().empty());

    // The checksum pull reports, stated by the server: accepted. It is the file's own: a
    // given --sha256 equal to it is accepted too, and one digit off is not.
    r = pull(server.url("/m/stories260K.gguf"));
    ASSERT_EQ(r.status, 0) << r.out;
    const size_t at = r.out.find("sha256 ");
    ASSERT_NE(at, std::string::npos);
    const std::string right = r.out.substr(at + 7, 64);
    ASSERT_EQ(run_pensieve("rm stories260K -o " + dir.string()).status, 0);
    server.stated_sha256 = right;
    r = pull(server.url("/moved/stories260K.gguf"));
    ASSERT_EQ(r.status, 0) << r.out;
    ASSERT_EQ(run_pensieve("rm stories260K -o " + dir.string()).status, 0);
    std::string off = right;
    off[0] = off[0] == '0' ? '1' : '0';
    EXPECT_NE(pull("--sha256 " + off + " " + server.url("/m/stories260K.gguf")).status, 0);
    EXPECT_EQ(pull("--sha256 " + right + " " + server.url("/m/stories260K.gguf")).status, 0);
    EXPECT_EQ(read_all((dir / "stories260K.gguf").string()), server.model);
}

TEST_F(PullTest, AFileThatIsNotGgufOrNotThereIsRefused) {
    CommandResult r = pull(server.url("/junk.gguf"));
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("not a usable GGUF"), std::string::npos) << r.out;
    EXPECT_TRUE(files().empty());
    r = pull(server.url("/m/missing.txt"));
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find(".gguf"), std::string::npos) << r.out;
    r = pull(server.url("/nothing-here.gguf"));
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("HTTP 404"), std::string::npos) << r.out;
    EXPECT_TRUE(files().empty());
}

}  // namespace
}  // namespace pensieve
