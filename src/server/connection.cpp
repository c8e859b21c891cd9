#include "server/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace pensieve::server {

namespace {

thread_local Connection* t_current = nullptr;

std::chrono::steady_clock::time_point seconds_from_now(double seconds) {
    return std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                  std::chrono::duration<double>(seconds));
}

void address_of(const sockaddr_storage& a, std::string& ip, int& port) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
        inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
        port = ntohs(v4.sin_port);
    } else if (a.ss_family == AF_INET6) {
        const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
        inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text));
        port = ntohs(v6.sin6_port);
    }
    ip = text;
}

}  // namespace

Connection::Connection(int fd, const ConnectionLimits& limits, int stop_fd)
    : fd_(fd), stop_fd_(stop_fd), limits_(limits), buffer_(16u << 10) {}

int Connection::wait(short events, Clock::time_point deadline, bool stoppable) const {
    pollfd fds[2] = {{fd_, events, 0}, {stop_fd_, POLLIN, 0}};
    const nfds_t n = stoppable && stop_fd_ >= 0 ? 2 : 1;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        const int r = ::poll(fds, n, int(std::clamp<long long>(left, 0, 1 << 30)));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return POLLERR;
        if (n == 2 && fds[1].revents) return -1;
        if (r == 0) return 0;
        return fds[0].revents;
    }
}

ssize_t Connection::fill_buffer() {
    // Reads in a handler's phase are not expected; they get the write timeout as a bound.
    const Clock::time_point deadline = phase_ == Phase::Handler ? seconds_from_now(limits_.write_seconds) : deadline_;
    const bool stoppable = phase_ == Phase::Idle || phase_ == Phase::Head;
    for (;;) {
        const int r = wait(POLLIN, deadline, stoppable);
        if (r < 0) {
            fail(Failure::Stopped);
            return -1;
        }
        if (r == 0) {
            fail(Failure::Timeout);
            return -1;
        }
        const ssize_t n = ::recv(fd_, buffer_.data(), buffer_.size(), 0);
        if (n >= 0) {
            buffer_pos_ = 0;
            buffer_end_ = size_t(n);
            return n;
        }
        if (errno != EINTR && errno != EAGAIN) return -1;
    }
}

ssize_t Connection::read(char* ptr, size_t size) {
    if (failure_ != Failure::None) return -1;
    if (budget_ == 0) {
        fail(Failure::TooLarge);
        return -1;
    }
    if (buffer_pos_ == buffer_end_) {
        const ssize_t n = fill_buffer();
        if (n <= 0) return n;
    }
    const size_t n = std::min({size, buffer_end_ - buffer_pos_, budget_});
    std::memcpy(ptr, buffer_.data() + buffer_pos_, n);
    buffer_pos_ += n;
    budget_ -= n;
    if (phase_ == Phase::Head) head_bytes_ += n;
    if (phase_ == Phase::Body) body_bytes_ += n;
    return ssize_t(n);
}

ssize_t Connection::write(const char* ptr, size_t size) {
    const auto deadline = seconds_from_now(limits_.write_seconds);
    for (;;) {
        const int r = wait(POLLOUT, deadline, false);
        if (r <= 0 || (r & (POLLERR | POLLHUP))) return -1;
        const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
        if (n >= 0) {
            bytes_written_ += size_t(n);
            return n;
        }
        if (errno != EINTR && errno != EAGAIN) return -1;
    }
}

bool Connection::is_readable() const {
    return buffer_pos_ < buffer_end_ || wait(POLLIN, Clock::now(), false) > 0;
}

bool Connection::is_writable() const {
    const auto deadline = seconds_from_now(limits_.write_seconds);
    const int r = wait(POLLOUT, deadline, false);
    return r > 0 && !(r & (POLLERR | POLLHUP));
}

void Connection::get_remote_ip_and_port(std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) address_of(a, ip, port);
}

void Connection::get_local_ip_and_port(std::string& ip, int& port) const {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) address_of(a, ip, port);
}

bool Connection::wait_for_request(double seconds) {
    phase_ = Phase::Idle;
    if (buffer_pos_ < buffer_end_) return true;  // the client sent it already (pipelining)
    const auto deadline = seconds_from_now(seconds);
    const int r = wait(POLLIN, deadline, true);
    return r > 0 && (r & POLLIN);
}

void Connection::begin_head() {
    phase_ = Phase::Head;
    deadline_ = seconds_from_now(limits_.header_seconds);
    budget_ = limits_.max_head_bytes;
    head_bytes_ = 0;
    body_bytes_ = 0;
    largest_buffer_ = 0;
    bytes_written_ = 0;
}

void Connection::begin_body(size_t max_raw_bytes) {
    phase_ = Phase::Body;
    deadline_ = seconds_from_now(limits_.body_seconds);
    budget_ = max_raw_bytes;
}

void Connection::begin_handler() {
    phase_ = Phase::Handler;
    budget_ = 0;
}

bool Connection::client_gone() const {
    pollfd p = {fd_, short(POLLIN | POLLRDHUP), 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void Connection::write_all(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = write(data.data() + done, data.size() - done);
        if (n <= 0) return;
        done += size_t(n);
    }
}

void Connection::linger(double seconds) {
    ::shutdown(fd_, SHUT_WR);
    const auto deadline = seconds_from_now(seconds);
    char sink[16384];
    for (;;) {
        const int r = wait(POLLIN, deadline, true);
        if (r <= 0) return;
        const ssize_t n = ::recv(fd_, sink, sizeof(sink), 0);
        if (n <= 0) return;
    }
}

Connection* current_connection() { return t_current; }

ServingConnection::ServingConnection(Connection& c) { t_current = &c; }
ServingConnection::~ServingConnection() { t_current = nullptr; }

bool client_hung_up() {
    const Connection* c = t_current;
    return c && c->client_gone();
}

}  // namespace pensieve::server
