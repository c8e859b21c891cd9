#include "engine/cache_writer.h"

#include <cerrno>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>

namespace pensieve {

namespace {

bool write_all(int fd, const uint8_t* p, size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= size_t(w);
    }
    return true;
}

// Makes a rename in `dir` durable.
void sync_directory(const std::string& dir) {
    const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

}  // namespace

bool is_temporary_cache_file(const std::string& path) {
    return path.size() > 4 && path.compare(path.size() - 4, 4, ".tmp") == 0;
}

bool write_file_atomically(const std::string& path, const std::vector<uint8_t>& data) {
    static std::atomic<uint64_t> counter{0};
    const std::string tmp = path + "." + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    const bool ok = write_all(fd, data.data(), data.size()) && ::fsync(fd) == 0;
    if (::close(fd) != 0 || !ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        ::unlink(tmp.c_str());
        return false;
    }
    sync_directory(path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/')));
    return true;
}

CacheWriter::CacheWriter(size_t max_pending_bytes) : max_pending_bytes_(max_pending_bytes) {
    thread_ = std::thread([this] { run(); });
}

CacheWriter::~CacheWriter() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    work_.notify_one();
    thread_.join();
}

bool CacheWriter::try_submit(std::string path, std::vector<uint8_t> data) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        // One file larger than the bound still goes through when nothing else waits.
        if (pending_bytes_ > 0 && pending_bytes_ + data.size() > max_pending_bytes_) return false;
        pending_bytes_ += data.size();
        queue_.push_back({std::move(path), std::move(data)});
    }
    work_.notify_one();
    return true;
}

void CacheWriter::drain() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [&] { return queue_.empty() && !busy_; });
}

void CacheWriter::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;   // stopping, and everything is written
        Job job = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
        lock.unlock();
        const bool ok = write_file_atomically(job.path, job.data);
        if (!ok) std::fprintf(stderr, "pensieve: warning: cannot write cache file %s\n", job.path.c_str());
        (ok ? written_ : failed_)++;
        lock.lock();
        busy_ = false;
        pending_bytes_ -= job.data.size();
        if (queue_.empty()) idle_.notify_all();
    }
}

}  // namespace pensieve
