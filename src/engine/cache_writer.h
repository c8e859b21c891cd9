// Writes prefix-cache files in the background, so a block is on disk seconds after the
// request that computed it ended, not only at a clean shutdown (a crash or SIGKILL then
// loses at most what was still queued).
//
// Every file is written whole under a temporary name of its own (pid and a counter, so
// two servers sharing a cache directory never write into the same file), flushed to the
// disk (fsync), then renamed over the final name, and the directory is synced: a reader
// sees the old file or the new one, never a torn one, and after a crash the file is
// either complete or absent.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pensieve {

// Writes `data` to `path` atomically (see above). False on any failure (nothing is left
// behind but, at worst, the temporary file of a write that died with the process).
bool write_file_atomically(const std::string& path, const std::vector<uint8_t>& data);

// True for a temporary file of write_file_atomically ("*.tmp").
bool is_temporary_cache_file(const std::string& path);

class CacheWriter {
public:
    // max_pending_bytes bounds the memory the queue holds.
    explicit CacheWriter(size_t max_pending_bytes);
    ~CacheWriter();   // writes what is queued, then stops
    CacheWriter(const CacheWriter&) = delete;
    CacheWriter& operator=(const CacheWriter&) = delete;

    // Queues a file; false (and nothing queued) when that would pass the bound.
    bool try_submit(std::string path, std::vector<uint8_t> data);
    // Waits until every queued file is written.
    void drain();

    uint64_t written() const { return written_.load(); }
    uint64_t failed() const { return failed_.load(); }

private:
    struct Job {
        std::string path;
        std::vector<uint8_t> data;
    };
    void run();

    const size_t max_pending_bytes_;
    std::mutex mutex_;
    std::condition_variable work_, idle_;
    std::deque<Job> queue_;
    size_t pending_bytes_ = 0;
    bool busy_ = false;
    bool stopping_ = false;
    std::atomic<uint64_t> written_{0}, failed_{0};
    std::thread thread_;
};

}  // namespace pensieve
