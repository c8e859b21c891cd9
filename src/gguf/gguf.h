// GGUF v2/v3 files: reading (by mmap, fully validated) and the in-memory model of their
// contents. Layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 kv
// count, kv pairs, tensor infos, padding to `general.alignment` (default 32), tensor data.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quant/types.h"
#include "util/mmap_file.h"

namespace pensieve {

enum class GgufType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
    BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars live in the matching field; arrays hold their elements
// (which may themselves be arrays) in `array`, all of type `array_type`.
struct GgufValue {
    GgufType type = GgufType::UINT8;
    uint64_t u = 0;      // UINT8..UINT64 and BOOL (0/1)
    int64_t i = 0;       // INT8..INT64
    double f = 0.0;      // FLOAT32, FLOAT64
    std::string str;     // STRING
    GgufType array_type = GgufType::UINT8;
    std::vector<GgufValue> array;

    bool is_integer() const;   // any of the integer types (not BOOL)
    bool is_float() const;     // FLOAT32 or FLOAT64
    // Numeric value of an integer, float or bool; throws Error for strings and arrays.
    int64_t as_int() const;
    double as_float() const;
};

// One tensor: shape in GGUF order (dims[0] is the contiguous, innermost dimension).
struct GgufTensor {
    std::string name;
    std::vector<int64_t> dims;   // 1..4 entries, each >= 1
    GgmlType type = GgmlType::F32;
    uint64_t offset = 0;         // relative to the start of the data section
    const uint8_t* data = nullptr;  // points into the mapping (reader) or caller memory (writer)
    size_t nbytes = 0;

    int64_t n_elements() const;
    int64_t rows() const;        // product of dims[1..]
    int64_t cols() const { return dims.empty() ? 1 : dims[0]; }
};

class GgufFile {
public:
    // Opens and validates a file; throws Error naming the file and what is wrong
    // (truncated, bad magic, unknown version or type, counts or offsets out of range,
    // overlapping tensors, invalid UTF-8 in a key or tensor name, duplicate names).
    static std::unique_ptr<GgufFile> open(const std::string& path);
    // Parses a file already in memory (fuzzing, tests). `data` must outlive the result.
    static std::unique_ptr<GgufFile> parse(const uint8_t* data, size_t size, std::string name = "<memory>");

    uint32_t version() const { return version_; }
    size_t alignment() const { return alignment_; }
    const std::string& path() const { return name_; }
    size_t file_size() const { return size_; }

    // --- metadata ---
    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
    const GgufValue* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }
    // Typed getters: throw Error if the key is missing or has an incompatible type.
    std::string get_string(std::string_view key) const;
    int64_t get_int(std::string_view key) const;
    double get_float(std::string_view key) const;
    bool get_bool(std::string_view key) const;
    // Getters with a default for optional keys (still throw on a wrong type).
    std::string get_string(std::string_view key, const std::string& def) const;
    int64_t get_int(std::string_view key, int64_t def) const;
    double get_float(std::string_view key, double def) const;
    bool get_bool(std::string_view key, bool def) const;
    // Array getters (throw if missing, not an array, or elements of the wrong kind).
    std::vector<std::string> get_string_array(std::string_view key) const;
    std::vector<double> get_float_array(std::string_view key) const;
    std::vector<int64_t> get_int_array(std::string_view key) const;

    // --- tensors ---
    const std::vector<GgufTensor>& tensors() const { return tensors_; }
    const GgufTensor* find_tensor(std::string_view name) const;
    // Throws Error("<file>: missing tensor NAME") when absent.
    const GgufTensor& tensor(std::string_view name) const;

private:
    GgufFile() = default;
    void parse_all(const uint8_t* data, size_t size);

    std::unique_ptr<MappedFile> map_;
    std::string name_;
    size_t size_ = 0;
    uint32_t version_ = 0;
    size_t alignment_ = 32;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::map<std::string, size_t, std::less<>> kv_index_;
    std::vector<GgufTensor> tensors_;
    std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF file: metadata in insertion order, tensors laid out aligned.
// Used by `pensieve quantize` and by tests that make small or malformed files.
class GgufWriter {
public:
    explicit GgufWriter(uint32_t version = 3, size_t alignment = 32);

    void set(const std::string& key, GgufValue value);   // replaces an existing key
    void set_string(const std::string& key, const std::string& v);
    void set_u32(const std::string& key, uint32_t v);
    void set_i32(const std::string& key, int32_t v);
    void set_u64(const std::string& key, uint64_t v);
    void set_f32(const std::string& key, float v);
    void set_bool(const std::string& key, bool v);
    void set_string_array(const std::string& key, const std::vector<std::string>& v);
    void set_f32_array(const std::string& key, const std::vector<float>& v);
    void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
    // Copies all metadata from another file (e.g. when quantizing).
    void copy_metadata(const GgufFile& from);

    // `data` holds nbytes = row_bytes(type, dims[0]) * rows bytes; it is copied.
    void add_tensor(const std::string& name, const std::vector<int64_t>& dims, GgmlType type,
                    const void* data, size_t nbytes);

    // Fills `out` with exactly the tensor's nbytes bytes.
    using TensorProducer = std::function<void(uint8_t* out)>;
    // A tensor whose bytes are made only when the file is written (to_bytes / write),
    // one tensor at a time, so a model never needs to be held in memory whole (used by
    // `pensieve quantize`). Producers run in tensor order; an exception from one aborts
    // the write and leaves no output file.
    void add_tensor(const std::string& name, const std::vector<int64_t>& dims, GgmlType type,
                    size_t nbytes, TensorProducer produce);

    std::vector<uint8_t> to_bytes() const;
    // Writes atomically (temporary file + rename); throws Error on I/O failure.
    void write(const std::string& path) const;

private:
    struct PendingTensor {
        std::string name;
        std::vector<int64_t> dims;
        GgmlType type;
        size_t nbytes;
        std::vector<uint8_t> bytes;   // the data, unless produced at write time
        TensorProducer produce;       // set for tensors added with a producer
    };
    void check_tensor(const std::string& name, const std::vector<int64_t>& dims, GgmlType type,
                      size_t nbytes) const;
    uint32_t version_;
    size_t alignment_;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::vector<PendingTensor> tensors_;
};

}  // namespace pensieve
