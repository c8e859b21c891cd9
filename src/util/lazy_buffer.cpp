#include "util/lazy_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <new>
#include <utility>
#include <vector>

namespace pensieve {

LazyBuffer::LazyBuffer(size_t bytes) : size_(bytes) {
    if (bytes == 0) return;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<uint8_t*>(p);
}

LazyBuffer::~LazyBuffer() { release(); }

LazyBuffer::LazyBuffer(LazyBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

LazyBuffer& LazyBuffer::operator=(LazyBuffer&& other) noexcept {
    if (this != &other) {
        release();
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

void LazyBuffer::release() {
    if (data_) munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
}

size_t LazyBuffer::resident_bytes() const {
    if (!data_) return 0;
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> in_core((size_ + page - 1) / page);
    if (mincore(data_, size_, in_core.data()) != 0) return 0;
    size_t pages = 0;
    for (unsigned char c : in_core) pages += c & 1;
    return pages * page;
}

}  // namespace pensieve
