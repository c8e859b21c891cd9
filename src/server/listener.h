// The socket side of `pensieve serve`: cpp-httplib's Server with its per-connection loop
// replaced (httplib still parses requests and routes them).
//
// httplib serves each connection on a thread from a fixed pool and reads it with
// per-read timeouts only, so a few dozen clients trickling their headers hold every
// thread and even /health stops answering. Here every connection gets a thread of its
// own (a pool that grows on demand and shrinks when idle: a waiting connection costs a
// sleeping thread, not a place in line), is read through a Connection (deadlines for the
// head and the body as a whole, byte budgets), and connections beyond max_connections
// are answered 503 and closed at once. The listen queue is deepened so that bursts of
// connects are not dropped. NOTES.md ("HTTP layer") has the measurements.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>

#include <httplib.h>

#include "server/connection.h"

namespace pensieve::server {

struct ListenerOptions {
    ConnectionLimits limits;
    size_t max_connections = 2048;
    int backlog = 1024;                  // the kernel caps it at net.core.somaxconn
    size_t max_requests_per_connection = 1000;
};

class Listener final : public httplib::Server {
public:
    explicit Listener(ListenerOptions o);
    ~Listener() override;

    // Call after bind_to_port / bind_to_any_port.
    void widen_backlog();
    // Stops accepting (httplib's stop()) and wakes every connection waiting for a request,
    // so only requests in flight keep the server from finishing.
    void stop_all();
    size_t open_connections() const { return open_.load(); }

    // Told the status of each response the listener writes itself (connection refused,
    // request head timed out), for the metrics; set before listening.
    std::function<void(int status)> on_own_response;

private:
    bool process_and_close_socket(int sock) override;
    void serve(Connection& c);
    void refuse(Connection& c);
    void answer(Connection& c, int status, const std::string& message);

    ListenerOptions o_;
    int stop_fd_ = -1;  // eventfd, readable once stop_all() ran
    std::atomic<size_t> open_{0};
    std::atomic<bool> stopping_{false};
};

// A whole HTTP/1.1 error response with an OpenAI-shaped JSON body and Connection: close,
// for answers written before or outside httplib's request handling.
std::string raw_error_response(int status, const std::string& message);

}  // namespace pensieve::server
