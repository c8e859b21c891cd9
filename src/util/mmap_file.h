// A read-only memory map of a whole file. Model weights stay in this mapping for the
// life of the model: nothing is copied at load (see DESIGN.md, "Weights stay in the mmap").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pensieve {

class MappedFile {
public:
    // Throws Error if the file cannot be opened or mapped. An empty file maps to size 0.
    explicit MappedFile(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace pensieve
