#include "server/listener.h"

#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "server/api_errors.h"

namespace pensieve::server {

namespace {

// Requests that held more than this give memory back to the system once they are done
// (malloc_trim): freed buffers otherwise stay with the allocator, a 30 MB /tokenize left
// the server at 224 MB and a soak with 32 MB bodies doubled its resident size.
constexpr size_t kTrimAfterBytes = 1u << 20;
// A kept-alive connection is held this much longer than the `Keep-Alive: timeout=` it
// advertises. Clients drop a socket a second or two before the advertised timeout, on a
// coarse timer; one busy enough to miss that (node at load 4-8 on 2 cores) sent its next
// request just as the server closed, and saw "other side closed": 21 failed requests in
// a 600 s soak with no grace, 2 in 58882 with 2 s of grace (CI), so 5 s. Idle
// connections still count against the cap; each is a thread asleep in poll().
constexpr double kIdleGraceSeconds = 5.0;

// httplib's task queue: a thread for each connection, ended with it. Threads are not
// kept for reuse: a reused thread keeps the stack pages its deepest request touched and
// idle threads stay resident, which a soak showed as slow growth (creating a thread costs
// tens of microseconds, nothing next to a request). shutdown() joins them all.
class ConnectionThreads final : public httplib::TaskQueue {
public:
    void enqueue(std::function<void()> fn) override {
        std::lock_guard<std::mutex> lock(mutex_);
        join_finished();
        std::thread t([this, fn = std::move(fn)] {
            fn();
            std::lock_guard<std::mutex> done(mutex_);
            finished_.push_back(std::this_thread::get_id());
        });
        const auto id = t.get_id();
        threads_.emplace(id, std::move(t));
    }

    void shutdown() override {
        std::map<std::thread::id, std::thread> threads;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            threads.swap(threads_);
            finished_.clear();
        }
        for (auto& [id, t] : threads) t.join();
    }

private:
    // Joins threads whose connection ended (they have returned or are about to).
    void join_finished() {
        for (const auto& id : finished_) {
            auto it = threads_.find(id);
            if (it == threads_.end()) continue;
            it->second.join();
            threads_.erase(it);
        }
        finished_.clear();
    }

    std::mutex mutex_;
    std::map<std::thread::id, std::thread> threads_;
    std::vector<std::thread::id> finished_;
};

const char* reason_phrase(int status) {
    switch (status) {
        case 400: return "Bad Request";
        case 408: return "Request Timeout";
        case 413: return "Payload Too Large";
        case 431: return "Request Header Fields Too Large";
        case 503: return "Service Unavailable";
        default: return "Error";
    }
}

}  // namespace

std::string raw_error_response(int status, const std::string& message) {
    const std::string body = error_json(Dialect::OpenAI, status, message).dump();
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
    r += "Content-Type: application/json\r\nConnection: close\r\n";
    if (status == 503) r += "Retry-After: 1\r\n";
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return r;
}

Listener::Listener(ListenerOptions o) : o_(std::move(o)) {
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    new_task_queue = [] { return new ConnectionThreads(); };
    // Only for the Keep-Alive header httplib writes; serve() applies both.
    set_keep_alive_max_count(o_.max_requests_per_connection);
    set_keep_alive_timeout(time_t(o_.limits.idle_seconds));
}

Listener::~Listener() {
    if (stop_fd_ >= 0) ::close(stop_fd_);
}

void Listener::widen_backlog() {
    // Listening again on a listening socket only changes its queue length (Linux).
    const int s = svr_sock_;
    if (s >= 0) ::listen(s, o_.backlog);
}

void Listener::stop_all() {
    if (stopping_.exchange(true)) return;
    const uint64_t one = 1;
    if (stop_fd_ >= 0 && ::write(stop_fd_, &one, sizeof(one)) < 0) {
        // Already signalled (the counter is saturated only after 2^64-2 writes): nothing to do.
    }
    // Not httplib's stop(): it marks the listening socket invalid, which httplib's
    // chunked writer reads as "shutting down" and so ends every stream in flight at
    // once, without its last chunk (clients saw a reset instead of the end of the
    // stream or its error event). Shutting the socket down makes accept() fail; the
    // accept loop then closes it and joins the connection threads, whose streams finish
    // or are cancelled by HttpServer::shutdown after the grace period.
    const int s = svr_sock_;
    if (is_running() && s >= 0) ::shutdown(s, SHUT_RDWR);
    else stop();
}

void Listener::answer(Connection& c, int status, const std::string& message) {
    c.write_all(raw_error_response(status, message));
    if (on_own_response) on_own_response(status);
}

void Listener::refuse(Connection& c) {
    answer(c, 503,
           "the server has too many open connections (" + std::to_string(o_.max_connections) + "); try again shortly");
    c.linger(0.5);
}

void Listener::serve(Connection& c) {
    const ConnectionLimits& l = o_.limits;
    for (size_t served = 0; served < o_.max_requests_per_connection; ++served) {
        if (!c.wait_for_request(served == 0 ? l.header_seconds : l.idle_seconds + kIdleGraceSeconds)) return;
        c.begin_head();
        bool closed = false;
        const bool last = served + 1 == o_.max_requests_per_connection;
        const bool ok = process_request(c, last, closed, nullptr);
        if (c.largest_buffer() > kTrimAfterBytes) malloc_trim(0);  // the request's objects are gone now
        // httplib gives up silently when the request line itself never completed.
        if (c.bytes_written() == 0 && c.failure() == Connection::Failure::Timeout)
            answer(c, 408, "the request head was not received within " + std::to_string(int(l.header_seconds)) + " s");
        if (!ok || closed || c.must_close()) return;
    }
}

bool Listener::process_and_close_socket(int sock) {
    const size_t open = ++open_;
    const int yes = 1;
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));  // tokens go out as they come
    {
        Connection c(sock, o_.limits, stop_fd_);
        if (open > o_.max_connections) {
            refuse(c);
        } else {
            ServingConnection serving(c);
            serve(c);
            if (c.must_close()) c.linger(1.0);
        }
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    --open_;
    return true;
}

}  // namespace pensieve::server
