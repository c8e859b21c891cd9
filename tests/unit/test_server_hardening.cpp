// The HTTP layer against hostile or careless clients: a real HttpServer on a loopback
// port, driven by raw sockets where httplib::Client would not misbehave. Covers hang-ups
// of non-streaming requests, body limits for every encoding, slow and idle connections,
// the connection cap, malformed framing, 405, Host/Origin checks, /tokenize bounds, and
// the pure checks of request_guard.h. ~10 s in all (the timeouts are set to 1 s).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include "server/request_guard.h"
#include "server_harness.h"
#include "util/error.h"

namespace pensieve::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using namespace pensieve::test_server;
using Clock = std::chrono::steady_clock;

// A client socket that sends exactly the bytes it is given.
class RawClient {
public:
    explicit RawClient(int port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(uint16_t(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    }
    ~RawClient() { close(); }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    bool connected() const { return connected_; }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    // False once the server has closed or reset the connection.
    bool send(const std::string& data) {
        size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
            if (n <= 0) return false;
            done += size_t(n);
        }
        return true;
    }
    // True when the server has sent something (or closed) within `limit`.
    bool readable(std::chrono::milliseconds limit) const {
        pollfd p = {fd_, POLLIN, 0};
        return ::poll(&p, 1, int(limit.count())) > 0;
    }
    // What the server sends until it closes the connection, or `limit` passes.
    std::string read_until_close(std::chrono::milliseconds limit) {
        std::string out;
        const auto end = Clock::now() + limit;
        char buf[65536];
        while (Clock::now() < end) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
            if (!readable(std::max(left, 1ms))) continue;
            const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
            if (n <= 0) break;
            out.append(buf, size_t(n));
        }
        return out;
    }
    // One whole response with a Content-Length body (keep-alive), or what came in `limit`.
    std::string read_response(std::chrono::milliseconds limit) {
        std::string out;
        const auto end = Clock::now() + limit;
        char buf[65536];
        while (Clock::now() < end) {
            const size_t head_end = out.find("\r\n\r\n");
            if (head_end != std::string::npos) {
                const size_t cl = out.find("Content-Length: ");
                const size_t length = cl == std::string::npos ? 0 : std::stoul(out.substr(cl + 16));
                if (out.size() >= head_end + 4 + length) break;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
            if (!readable(std::max(left, 1ms))) continue;
            const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
            if (n <= 0) break;
            out.append(buf, size_t(n));
        }
        return out;
    }

private:
    int fd_ = -1;
    bool connected_ = false;
};

int status_of(const std::string& response) {
    if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return 0;
    return std::stoi(response.substr(9, 3));
}

std::string body_of(const std::string& response) {
    const size_t p = response.find("\r\n\r\n");
    return p == std::string::npos ? "" : response.substr(p + 4);
}

std::string post_head(const std::string& path, const std::string& framing) {
    return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + framing + "\r\n";
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ------------------------------------------------------------------------------------
// Row 2: a non-streaming request stops when its client hangs up.

TEST(ServerHardening, NonStreamingRequestIsCancelledWhenTheClientHangsUp) {
    ServerOptions o;
    o.n_parallel = 1;
    o.n_ctx = 8192;
    TestServer s(o);
    json body = chat_body("Once upon a time", 8000);  // seconds of generation
    body["ignore_eos"] = true;
    {
        RawClient c(s.port);
        const std::string text = body.dump();
        ASSERT_TRUE(c.send(post_head("/v1/chat/completions", "Content-Length: " + std::to_string(text.size()) + "\r\n") + text));
        ASSERT_TRUE(wait_for([&] { return s.stats().active == 1; }, 10s));
    }  // hangs up
    const auto hung_up = Clock::now();
    EXPECT_TRUE(wait_for([&] { return s.stats().requests_cancelled == 1 && s.stats().active == 0; }, 3s))
        << "still generating " << seconds_since(hung_up) << " s after the client left";
    EXPECT_LT(s.stats().generated_tokens, 8000u);
    EXPECT_EQ(post(s, "/v1/chat/completions", chat_body("Hi", 3)).status, 200);  // the slot is free
}

// ------------------------------------------------------------------------------------
// Row 3: the body limit holds while reading, for every encoding.

TEST(ServerHardening, ChunkedBodyOverTheLimitIs413BeforeItIsAllRead) {
    ServerOptions o;
    o.max_body_bytes = 64 << 10;
    TestServer s(o);
    RawClient c(s.port);
    ASSERT_TRUE(c.send(post_head("/v1/chat/completions", "Transfer-Encoding: chunked\r\n")));
    const std::string chunk = "4000\r\n" + std::string(0x4000, 'a') + "\r\n";  // 16 KiB
    size_t sent = 0;
    while (sent < (64u << 20) && !c.readable(0ms) && c.send(chunk)) sent += 0x4000;
    const std::string r = c.read_until_close(5s);
    EXPECT_EQ(status_of(r), 413) << r;
    EXPECT_NE(body_of(r).find("too large"), std::string::npos) << r;
    EXPECT_LT(sent, 8u << 20) << "the server read on far past the limit";
}

TEST(ServerHardening, CompressedBodyIsLimitedByItsDecodedSize) {
    ServerOptions o;
    o.max_body_bytes = 64 << 10;
    TestServer s(o);
    auto c = s.client();
    c.set_compress(true);  // gzip: 1 MiB of one letter is ~1 KiB on the wire
    auto r = c.Post("/v1/chat/completions", chat_body(std::string(1 << 20, 'a'), 2).dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413) << r->body;
}

TEST(ServerHardening, ChunkedBodyWithinTheLimitIsServed) {
    TestServer s;
    RawClient c(s.port);
    const std::string text = chat_body("Hi", 2).dump();
    const size_t half = text.size() / 2;
    auto hex = [](size_t n) {
        std::ostringstream os;
        os << std::hex << n;
        return os.str();
    };
    ASSERT_TRUE(c.send(post_head("/v1/chat/completions", "Transfer-Encoding: chunked\r\n") + hex(half) + "\r\n" +
                       text.substr(0, half) + "\r\n" + hex(text.size() - half) + "\r\n" + text.substr(half) +
                       "\r\n0\r\n\r\n"));
    const std::string r = c.read_response(10s);
    EXPECT_EQ(status_of(r), 200) << r;
}

// ------------------------------------------------------------------------------------
// Row 4: slow and idle clients hold only their own connection.

ServerOptions one_slot_short_timeouts() {
    ServerOptions o;
    o.n_parallel = 1;
    o.max_queue = 1;  // (0 refuses every request: the scheduler admits through its queue)
    o.header_timeout_seconds = 1;
    o.body_timeout_seconds = 1;
    o.idle_timeout_seconds = 1;
    return o;
}

TEST(ServerHardening, SlowHeadersDoNotDelayOthersAndEndWith408) {
    TestServer s(one_slot_short_timeouts());
    std::vector<std::unique_ptr<RawClient>> slow;
    for (int i = 0; i < 100; ++i) {
        slow.push_back(std::make_unique<RawClient>(s.port));
        ASSERT_TRUE(slow.back()->send("G"));  // and nothing more
    }
    std::vector<std::unique_ptr<RawClient>> idle;
    for (int i = 0; i < 100; ++i) idle.push_back(std::make_unique<RawClient>(s.port));
    const auto t = Clock::now();
    EXPECT_EQ(get(s, "/health").status, 200);
    EXPECT_EQ(post(s, "/v1/chat/completions", chat_body("Hi", 3)).status, 200);
    EXPECT_LT(seconds_since(t), 1.0);
    for (auto& c : slow) {
        const std::string r = c->read_until_close(5s);
        EXPECT_EQ(status_of(r), 408) << r;
    }
}

TEST(ServerHardening, TricklingHeadersAreCutOffAtTheHeaderDeadline) {
    TestServer s(one_slot_short_timeouts());
    RawClient c(s.port);
    const std::string head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + std::string(100, 'a') + "\r\n\r\n";
    const auto t = Clock::now();
    size_t i = 0;
    // One byte every 50 ms: each read is quick, the head as a whole is not.
    while (i < head.size() && !c.readable(50ms) && c.send(head.substr(i, 1))) ++i;
    const std::string r = c.read_until_close(5s);
    EXPECT_EQ(status_of(r), 408) << r;
    EXPECT_LT(seconds_since(t), 3.0);
    EXPECT_LT(i, head.size());
}

TEST(ServerHardening, SlowBodyEndsWith408) {
    TestServer s(one_slot_short_timeouts());
    RawClient c(s.port);
    ASSERT_TRUE(c.send(post_head("/v1/chat/completions", "Content-Length: 100\r\n") + "{\"model\""));
    const auto t = Clock::now();
    const std::string r = c.read_until_close(5s);
    EXPECT_EQ(status_of(r), 408) << r;
    EXPECT_LT(seconds_since(t), 3.0);
}

TEST(ServerHardening, ConnectionsOverTheCapAreRefusedWith503) {
    ServerOptions o;
    o.max_connections = 20;
    TestServer s(o);
    std::vector<std::unique_ptr<RawClient>> held;
    for (int i = 0; i < 20; ++i) held.push_back(std::make_unique<RawClient>(s.port));
    ASSERT_TRUE(wait_for([&] { return s.http->context().open_connections() == 20; }, 5s));
    RawClient extra(s.port);
    extra.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const std::string r = extra.read_until_close(5s);
    EXPECT_EQ(status_of(r), 503) << r;
    EXPECT_NE(r.find("Retry-After: 1"), std::string::npos) << r;
    EXPECT_NE(body_of(r).find("too many open connections"), std::string::npos) << r;
    held.clear();
    ASSERT_TRUE(wait_for([&] { return s.http->context().open_connections() == 0; }, 5s));
    EXPECT_EQ(get(s, "/health").status, 200);
}

TEST(ServerHardening, KeptAliveConnectionServesManyRequests) {
    TestServer s;
    RawClient c(s.port);
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        const std::string r = c.read_response(5s);
        ASSERT_EQ(status_of(r), 200) << "request " << i << ": " << r;
    }
}

// ------------------------------------------------------------------------------------
// Row 5: malformed framing is refused at once; a wrong method gets 405 with Allow.

TEST(ServerHardening, InvalidContentLengthIs400AtOnce) {
    TestServer s;
    for (const std::string framing : {"Content-Length: -5\r\n", "Content-Length: 1e18\r\n",
                                      "Content-Length: 10\r\nContent-Length: 12\r\n", "Content-Length: 0x10\r\n",
                                      "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"}) {
        RawClient c(s.port);
        const auto t = Clock::now();
        ASSERT_TRUE(c.send(post_head("/v1/chat/completions", framing) + "{}"));
        const std::string r = c.read_until_close(5s);
        EXPECT_EQ(status_of(r), 400) << framing << r;
        EXPECT_LT(seconds_since(t), 1.0) << framing;
    }
    RawClient big(s.port);
    ASSERT_TRUE(big.send(post_head("/v1/chat/completions", "Content-Length: 1000000000000000000000\r\n")));
    EXPECT_EQ(status_of(big.read_until_close(5s)), 413);
    RawClient te(s.port);
    ASSERT_TRUE(te.send(post_head("/v1/chat/completions", "Transfer-Encoding: gzip\r\n")));
    EXPECT_EQ(status_of(te.read_until_close(5s)), 501);
    RawClient no_length(s.port);
    ASSERT_TRUE(no_length.send(post_head("/v1/chat/completions", "")));
    EXPECT_EQ(status_of(no_length.read_until_close(5s)), 411);
}

TEST(ServerHardening, WrongMethodIs405WithAllow) {
    auto& s = shared_server();
    Reply a = get(s, "/v1/chat/completions");
    expect_openai_error(a, 405, "not allowed");
    EXPECT_EQ(a.headers.find("Allow")->second, "POST");
    Reply b = post(s, "/v1/models", json::object());
    expect_openai_error(b, 405);
    EXPECT_EQ(b.headers.find("Allow")->second, "GET, HEAD");
    auto c = s.client();
    auto d = c.Delete("/health");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->status, 405);
    EXPECT_EQ(post(s, "/v1/models/stories260K.gguf", json::object()).status, 405);  // a pattern route
    EXPECT_EQ(get(s, "/no/such/route").status, 404);
    auto o = c.Options("/v1/chat/completions");
    ASSERT_TRUE(o);
    EXPECT_EQ(o->status, 204);
    EXPECT_EQ(o->get_header_value("Allow"), "POST, OPTIONS");
}

// ------------------------------------------------------------------------------------
// Row 8: without a key, web pages of other sites cannot drive the server.

TEST(ServerHardening, ForeignHostIsRefusedWithoutAKey) {
    auto& s = shared_server();
    expect_openai_error(get(s, "/v1/models", {{"Host", "evil.example:8080"}}), 403, "Host");
    expect_openai_error(post(s, "/v1/chat/completions", chat_body("Hi", 2), {{"Host", "rebind.evil.example"}}), 403);
    EXPECT_EQ(get(s, "/v1/models", {{"Host", "localhost:1234"}}).status, 200);
    EXPECT_EQ(get(s, "/v1/models", {{"Host", "app.localhost"}}).status, 200);
    EXPECT_EQ(get(s, "/v1/models", {{"Host", "[::1]:80"}}).status, 200);
    EXPECT_EQ(get(s, "/v1/models", {{"Host", "192.168.1.20:8080"}}).status, 200);  // IP literals cannot be rebound
}

TEST(ServerHardening, CrossOriginPostsAreRefusedWithoutAKey) {
    auto& s = shared_server();
    const std::string self = "127.0.0.1:" + std::to_string(s.port);
    Reply r = post(s, "/v1/chat/completions", chat_body("Hi", 2), {{"Origin", "https://evil.example"}});
    expect_openai_error(r, 403, "origin");
    EXPECT_EQ(r.headers.count("Access-Control-Allow-Origin"), 0u);
    EXPECT_EQ(post(s, "/v1/chat/completions", chat_body("Hi", 2), {{"Origin", "null"}}).status, 403);
    // The chat page, served from this server, posts with its own origin.
    EXPECT_EQ(post(s, "/v1/chat/completions", chat_body("Hi", 2), {{"Origin", "http://" + self}}).status, 200);
}

TEST(ServerHardening, CorsAllowsOnlyListedOrigins) {
    ServerOptions o;
    o.cors_origins = {"http://localhost:3000"};
    TestServer s(o);
    Reply ok = post(s, "/v1/chat/completions", chat_body("Hi", 2), {{"Origin", "http://localhost:3000"}});
    EXPECT_EQ(ok.status, 200);
    EXPECT_EQ(ok.headers.find("Access-Control-Allow-Origin")->second, "http://localhost:3000");
    Reply other = post(s, "/v1/chat/completions", chat_body("Hi", 2), {{"Origin", "http://localhost:3001"}});
    EXPECT_EQ(other.status, 403);
    EXPECT_EQ(other.headers.count("Access-Control-Allow-Origin"), 0u);
}

TEST(ServerHardening, WithAKeyHostAndOriginAreTheKeysBusiness) {
    ServerOptions o;
    o.api_key = "k";
    TestServer s(o);
    const httplib::Headers h = {{"Authorization", "Bearer k"}, {"Host", "my.box.example"}, {"Origin", "https://app.example"}};
    EXPECT_EQ(post(s, "/v1/chat/completions", chat_body("Hi", 2), h).status, 200);
    EXPECT_EQ(post(s, "/v1/chat/completions", chat_body("Hi", 2), {{"Host", "my.box.example"}}).status, 401);
}

// ------------------------------------------------------------------------------------
// Row 15 and the rest: bounded /tokenize and /detokenize, favicon.

TEST(ServerHardening, TokenizeAndDetokenizeAreBounded) {
    auto& s = shared_server();
    expect_openai_error(post(s, "/tokenize", json{{"content", std::string(5u << 20, 'a')}}), 413, "limit");
    std::string many = "{\"tokens\": [1";
    for (int i = 0; i < (1 << 20); ++i) many += ",1";
    expect_openai_error(post(s, "/detokenize", many + "]}"), 413, "limit");
    EXPECT_EQ(post(s, "/tokenize", json{{"content", std::string(10000, 'a')}}).status, 200);
}

TEST(ServerHardening, FaviconIs204) {
    auto& s = shared_server();
    Reply r = get(s, "/favicon.ico");
    EXPECT_EQ(r.status, 204);
}

TEST(ServerHardening, HealthShowsTheExposureWarning) {
    ServerOptions o;
    o.host = "0.0.0.0";
    ASSERT_EQ(exposure_warnings(o).size(), 1u);
    EXPECT_NE(exposure_warnings(o)[0].find("without an API key"), std::string::npos);
    o.api_key = "k";
    EXPECT_TRUE(exposure_warnings(o).empty());
    o = ServerOptions{};
    EXPECT_TRUE(exposure_warnings(o).empty());  // loopback
    o.cors_origins = {"*"};
    EXPECT_EQ(exposure_warnings(o).size(), 1u);
}

// ------------------------------------------------------------------------------------
// request_guard.h on its own

httplib::Request request(const std::string& method, const httplib::Headers& headers) {
    httplib::Request r;
    r.method = method;
    r.headers = headers;
    return r;
}

TEST(RequestGuard, Framing) {
    const size_t max = 1000;
    auto status = [&](const std::string& method, const httplib::Headers& h) {
        auto r = check_framing(request(method, h), max);
        return r ? r->status : 0;
    };
    EXPECT_EQ(status("POST", {{"Content-Length", "10"}}), 0);
    EXPECT_EQ(status("POST", {{"Content-Length", "10"}, {"Content-Length", "10"}}), 0);
    EXPECT_EQ(status("POST", {{"Transfer-Encoding", "Chunked"}}), 0);
    EXPECT_EQ(status("GET", {}), 0);
    EXPECT_EQ(status("GET", {{"Content-Length", "0"}}), 0);
    EXPECT_EQ(status("POST", {{"Content-Length", "-5"}}), 400);
    EXPECT_EQ(status("POST", {{"Content-Length", "1e18"}}), 400);
    EXPECT_EQ(status("POST", {{"Content-Length", ""}}), 400);
    EXPECT_EQ(status("POST", {{"Content-Length", "10"}, {"Content-Length", "11"}}), 400);
    EXPECT_EQ(status("POST", {{"Content-Length", "1001"}}), 413);
    EXPECT_EQ(status("POST", {{"Content-Length", "99999999999999999999999"}}), 413);
    EXPECT_EQ(status("POST", {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}}), 400);
    EXPECT_EQ(status("POST", {{"Transfer-Encoding", "gzip, chunked"}}), 501);
    EXPECT_EQ(status("POST", {{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}}), 501);
    EXPECT_EQ(status("POST", {}), 411);
    EXPECT_EQ(status("GET", {{"Content-Length", "3"}}), 400);
    EXPECT_EQ(status("GET", {{"Transfer-Encoding", "chunked"}}), 400);
}

TEST(RequestGuard, Hosts) {
    EXPECT_EQ(host_name("Example.COM:8080"), "example.com");
    EXPECT_EQ(host_name("[::1]:80"), "::1");
    EXPECT_EQ(host_name("localhost."), "localhost");
    EXPECT_TRUE(is_loopback_address("127.0.0.1"));
    EXPECT_TRUE(is_loopback_address("127.1.2.3"));
    EXPECT_TRUE(is_loopback_address("::1"));
    EXPECT_TRUE(is_loopback_address("localhost"));
    EXPECT_FALSE(is_loopback_address("0.0.0.0"));
    EXPECT_FALSE(is_loopback_address("192.168.1.2"));
    EXPECT_TRUE(is_trusted_host("localhost:8080", "127.0.0.1"));
    EXPECT_TRUE(is_trusted_host("chat.localhost", "127.0.0.1"));
    EXPECT_TRUE(is_trusted_host("10.0.0.5:8080", "0.0.0.0"));
    EXPECT_TRUE(is_trusted_host("mybox.lan:8080", "mybox.lan"));
    EXPECT_FALSE(is_trusted_host("evil.example", "127.0.0.1"));
    EXPECT_FALSE(is_trusted_host("localhost.evil.example", "127.0.0.1"));
    EXPECT_FALSE(is_trusted_host("", "127.0.0.1"));
}

TEST(RequestGuard, Origins) {
    EXPECT_TRUE(is_same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
    EXPECT_TRUE(is_same_origin("http://LOCALHOST:8080", "localhost:8080"));
    EXPECT_FALSE(is_same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
    EXPECT_FALSE(is_same_origin("null", "127.0.0.1:8080"));
    EXPECT_EQ(normalize_origin("HTTP://Localhost:3000/"), "http://localhost:3000");
    EXPECT_EQ(normalize_origin("*"), "*");
    EXPECT_THROW(normalize_origin("localhost:3000"), Error);
    EXPECT_THROW(normalize_origin("http://a.example/path"), Error);
    EXPECT_TRUE(is_listed_origin("http://localhost:3000", {"http://localhost:3000"}));
    EXPECT_FALSE(is_listed_origin("http://localhost:3001", {"http://localhost:3000"}));
    EXPECT_TRUE(is_listed_origin("https://any.example", {"*"}));
}

}  // namespace
}  // namespace pensieve::server
