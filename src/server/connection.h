// One client connection of `pensieve serve`, read and written only by the thread that
// serves it. cpp-httplib parses requests from this stream; the stream adds what httplib's
// own socket stream lacks:
//   - a deadline for a request's head and for its body as a whole, not per read: a client
//     sending one byte a second holds its connection for the header timeout, not forever;
//   - byte budgets for the head and the raw body (httplib would buffer any amount of
//     header lines or chunked data);
//   - waits that also wake when the server stops, so idle connections end at once;
//   - a way for a handler to see that its client hung up while the answer is computed.
#pragma once

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace pensieve::server {

struct ConnectionLimits {
    double header_seconds = 10;   // request line + headers, from their first byte
    double body_seconds = 60;     // the whole body
    double idle_seconds = 5;      // waiting for a connection's next request
    double write_seconds = 30;    // one write blocked by a client that does not read
    size_t max_head_bytes = 64u << 10;
};

class Connection final : public httplib::Stream {
public:
    // What the request being read is waiting for; decides the deadline and budget.
    enum class Phase { Idle, Head, Body, Handler };
    // Why a read failed, when it was this stream that refused.
    enum class Failure { None, Timeout, TooLarge, Stopped };

    // fd: the accepted socket (not owned). stop_fd: readable once the server stops.
    Connection(int fd, const ConnectionLimits& limits, int stop_fd);

    // httplib::Stream
    bool is_readable() const override;
    bool is_writable() const override;
    ssize_t read(char* ptr, size_t size) override;
    ssize_t write(const char* ptr, size_t size) override;
    void get_remote_ip_and_port(std::string& ip, int& port) const override;
    void get_local_ip_and_port(std::string& ip, int& port) const override;
    int socket() const override { return fd_; }

    // Waits up to `seconds` for the next request's first byte; false if none came, the
    // client closed, or the server is stopping.
    bool wait_for_request(double seconds);

    // Phase changes, in request order. begin_body's budget counts raw bytes (chunk
    // framing included); the decoded body limit is the router's.
    void begin_head();
    void begin_body(size_t max_raw_bytes);
    void begin_handler();

    Phase phase() const { return phase_; }
    Failure failure() const { return failure_; }
    size_t head_bytes() const { return head_bytes_; }
    size_t body_bytes() const { return body_bytes_; }  // raw bytes of the current request's body

    // The largest buffer the current request made (its decoded body): the listener gives
    // memory back to the system after requests that held a lot.
    void note_buffer(size_t bytes) { largest_buffer_ = std::max(largest_buffer_, bytes); }
    size_t largest_buffer() const { return std::max({largest_buffer_, body_bytes_, bytes_written_}); }
    size_t bytes_written() const { return bytes_written_; }

    // The request left unread bytes behind (or the server refused its framing): answer,
    // then close instead of parsing the rest as another request.
    void close_after_response() { close_after_response_ = true; }
    bool must_close() const { return close_after_response_ || failure_ != Failure::None; }

    // The client closed or reset its end (checked without reading).
    bool client_gone() const;

    // Writes a whole response directly (refusals the stream makes itself, like 408).
    void write_all(const std::string& data);

    // After the last response: stop sending, then read and discard what the client still
    // sends for up to `seconds`, so it sees our answer rather than a reset.
    void linger(double seconds);

private:
    using Clock = std::chrono::steady_clock;
    // Waits for `events` on the socket (and for the stop signal when `stoppable`) until
    // `deadline`; returns the socket's revents, 0 on timeout, -1 when stopping.
    int wait(short events, Clock::time_point deadline, bool stoppable) const;
    ssize_t fill_buffer();
    void fail(Failure f) { failure_ = f; }

    int fd_;
    int stop_fd_;
    ConnectionLimits limits_;
    Phase phase_ = Phase::Idle;
    Failure failure_ = Failure::None;
    Clock::time_point deadline_;
    size_t budget_ = 0;       // raw bytes the current phase may still read
    size_t head_bytes_ = 0;   // bytes of the current request's head read so far
    size_t body_bytes_ = 0;   // and of its body
    size_t largest_buffer_ = 0;
    size_t bytes_written_ = 0;
    bool close_after_response_ = false;
    std::vector<char> buffer_;
    size_t buffer_pos_ = 0;
    size_t buffer_end_ = 0;
};

// The connection this thread is serving (set by the listener around each connection),
// or nullptr on other threads.
Connection* current_connection();

class ServingConnection {
public:
    explicit ServingConnection(Connection& c);
    ~ServingConnection();
    ServingConnection(const ServingConnection&) = delete;
    ServingConnection& operator=(const ServingConnection&) = delete;
};

// True when this thread serves a connection whose client has gone away.
bool client_hung_up();

}  // namespace pensieve::server
