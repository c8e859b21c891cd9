// GGUF reader: parses and validates the whole header up front, so that everything
// after `GgufFile::open` can trust the shapes, types and data pointers it is given.
//
// Ground rules (the input is untrusted — a model downloaded from anywhere):
//   - every read goes through Cursor, which checks the remaining length first;
//   - a count read from the file is checked against the bytes left BEFORE anything
//     is reserved, so a 2^60 "array length" costs nothing;
//   - all size arithmetic is overflow-checked; no pointer is formed outside the buffer.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "gguf/gguf.h"
#include "gguf/gguf_format.h"
#include "util/error.h"
#include "util/utf8.h"

namespace pensieve {

using namespace gguf_format;

// ---------------------------------------------------------------------------------
// Value and tensor helpers

const char* gguf_type_name(GgufType t) {
    switch (t) {
        case GgufType::UINT8: return "uint8";
        case GgufType::INT8: return "int8";
        case GgufType::UINT16: return "uint16";
        case GgufType::INT16: return "int16";
        case GgufType::UINT32: return "uint32";
        case GgufType::INT32: return "int32";
        case GgufType::FLOAT32: return "float32";
        case GgufType::BOOL: return "bool";
        case GgufType::STRING: return "string";
        case GgufType::ARRAY: return "array";
        case GgufType::UINT64: return "uint64";
        case GgufType::INT64: return "int64";
        case GgufType::FLOAT64: return "float64";
    }
    return "unknown";
}

static bool is_unsigned_type(GgufType t) {
    return t == GgufType::UINT8 || t == GgufType::UINT16 || t == GgufType::UINT32 ||
           t == GgufType::UINT64;
}
static bool is_signed_type(GgufType t) {
    return t == GgufType::INT8 || t == GgufType::INT16 || t == GgufType::INT32 ||
           t == GgufType::INT64;
}

bool GgufValue::is_integer() const { return is_unsigned_type(type) || is_signed_type(type); }
bool GgufValue::is_float() const { return type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }

int64_t GgufValue::as_int() const {
    if (is_unsigned_type(type) || type == GgufType::BOOL) {
        if (u > uint64_t(std::numeric_limits<int64_t>::max()))
            fail("value ", u, " does not fit in a signed 64-bit integer");
        return int64_t(u);
    }
    if (is_signed_type(type)) return i;
    if (is_float()) {
        // Only exact integers convert: silently truncating 0.5 to 0 would hide a bug.
        // 2^63 is the first double past INT64_MAX.
        if (!(std::isfinite(f) && f == std::trunc(f) && f >= -9223372036854775808.0 &&
              f < 9223372036854775808.0))
            fail("value ", f, " is not an integer");
        return int64_t(f);
    }
    fail("a ", gguf_type_name(type), " value is not a number");
}

double GgufValue::as_float() const {
    if (is_float()) return f;
    if (is_unsigned_type(type) || type == GgufType::BOOL) return double(u);
    if (is_signed_type(type)) return double(i);
    fail("a ", gguf_type_name(type), " value is not a number");
}

int64_t GgufTensor::n_elements() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
}

int64_t GgufTensor::rows() const {
    int64_t n = 1;
    for (size_t k = 1; k < dims.size(); ++k) n *= dims[k];
    return n;
}

// ---------------------------------------------------------------------------------
// Cursor: bounds-checked little-endian reads over the file bytes

namespace {

struct Cursor {
    const uint8_t* data;
    size_t size;
    const std::string& file;   // for messages
    size_t pos = 0;
    std::string context;       // what is being read, e.g. "metadata key 'general.name'"

    size_t remaining() const { return size - pos; }

    void need(size_t n, const char* what) const {
        if (n > remaining())
            fail(file, ": truncated file: ", what, context.empty() ? "" : " of ", context,
                 " needs ", n, " bytes at offset ", pos, " but the file is only ", size,
                 " bytes long");
    }

    template <typename T>
    T read(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, data + pos, sizeof(T));
        pos += sizeof(T);
        return v;
    }

    // u64 length + bytes. `max_len` bounds names and keys; value strings are bounded
    // only by the file itself.
    std::string read_string(const char* what, uint64_t max_len) {
        const uint64_t len = read<uint64_t>(what);
        if (len > max_len)
            fail(file, ": ", what, context.empty() ? "" : " of ", context, " at offset ",
                 pos - 8, " has length ", len, ", more than the limit of ", max_len, " bytes");
        need(size_t(len), what);
        std::string s(reinterpret_cast<const char*>(data + pos), size_t(len));
        pos += size_t(len);
        return s;
    }
};

// Parses the key-value section. Keeps a budget of array elements across the whole file:
// each element costs sizeof(GgufValue) in memory but may be a single byte on disk.
struct ValueReader {
    Cursor& in;
    uint64_t element_budget = kMaxArrayElements;

    GgufType read_type(const char* what) {
        const uint32_t t = in.read<uint32_t>(what);
        if (!is_known_value_type(t))
            fail(in.file, ": ", in.context, " has unknown value type ", t, " at offset ",
                 in.pos - 4, " (known types are 0..12)");
        return GgufType(t);
    }

    GgufValue read_value(GgufType type, int depth) {
        GgufValue v;
        v.type = type;
        switch (type) {
            case GgufType::UINT8: v.u = in.read<uint8_t>("a uint8 value"); break;
            case GgufType::INT8: v.i = in.read<int8_t>("an int8 value"); break;
            case GgufType::UINT16: v.u = in.read<uint16_t>("a uint16 value"); break;
            case GgufType::INT16: v.i = in.read<int16_t>("an int16 value"); break;
            case GgufType::UINT32: v.u = in.read<uint32_t>("a uint32 value"); break;
            case GgufType::INT32: v.i = in.read<int32_t>("an int32 value"); break;
            case GgufType::UINT64: v.u = in.read<uint64_t>("a uint64 value"); break;
            case GgufType::INT64: v.i = in.read<int64_t>("an int64 value"); break;
            case GgufType::FLOAT32: v.f = in.read<float>("a float32 value"); break;
            case GgufType::FLOAT64: v.f = in.read<double>("a float64 value"); break;
            case GgufType::BOOL: {
                const uint8_t b = in.read<uint8_t>("a bool value");
                if (b > 1)
                    fail(in.file, ": ", in.context, " has bool value ", int(b), " at offset ",
                         in.pos - 1, " (must be 0 or 1)");
                v.u = b;
                break;
            }
            case GgufType::STRING:
                v.str = in.read_string("a string value", std::numeric_limits<uint64_t>::max());
                break;
            case GgufType::ARRAY: read_array(v, depth + 1); break;
        }
        return v;
    }

    void read_array(GgufValue& v, int depth) {
        if (depth > kMaxArrayDepth)
            fail(in.file, ": ", in.context, " nests arrays more than ", kMaxArrayDepth,
                 " levels deep");
        v.array_type = read_type("an array element type");
        const uint64_t count = in.read<uint64_t>("an array length");
        const size_t min_bytes = min_encoded_bytes(v.array_type);
        if (count > in.remaining() / min_bytes)
            fail(in.file, ": ", in.context, " claims an array of ", count, " ",
                 gguf_type_name(v.array_type), " elements at offset ", in.pos - 8,
                 ", more than the remaining ", in.remaining(), " bytes can hold");
        if (count > element_budget)
            fail(in.file, ": ", in.context, " has too many array elements (limit ",
                 kMaxArrayElements, " in all metadata)");
        element_budget -= count;
        v.array.reserve(size_t(count));
        for (uint64_t k = 0; k < count; ++k) v.array.push_back(read_value(v.array_type, depth));
    }
};

uint64_t checked_mul(uint64_t a, uint64_t b, bool& overflow) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) overflow = true;
    return r;
}

}  // namespace

// ---------------------------------------------------------------------------------
// GgufFile

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
    auto map = std::make_unique<MappedFile>(path);
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->name_ = path;
    f->parse_all(map->data(), map->size());
    f->map_ = std::move(map);   // tensor data pointers point into this mapping
    return f;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* data, size_t size, std::string name) {
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->name_ = std::move(name);
    f->parse_all(data, size);
    return f;
}

// Header: magic, version, tensor count, kv count; then kv pairs, tensor infos, padding,
// data. Each step below validates what it reads before the next step relies on it.
void GgufFile::parse_all(const uint8_t* data, size_t size) {
    size_ = size;
    const std::string& file = name_;
    if (size == 0) fail(file, ": file is empty, not a GGUF model");
    if (size < 4 || std::memcmp(data, kMagic, 4) != 0)
        fail(file, ": not a GGUF file (the first bytes are not \"GGUF\")");

    Cursor in{data, size, file, 0, {}};
    in.pos = 4;
    version_ = in.read<uint32_t>("the version");
    if (version_ == 1)
        fail(file, ": GGUF version 1 is not supported (only versions 2 and 3); "
                   "re-convert the model with a current llama.cpp");
    if (version_ != 2 && version_ != 3) {
        // A big-endian file reads as e.g. 0x03000000 here.
        if (version_ != 0 && (version_ & 0x00FFFFFF) == 0)
            fail(file, ": big-endian GGUF files are not supported");
        fail(file, ": unsupported GGUF version ", version_, " (only versions 2 and 3)");
    }
    const uint64_t n_tensors = in.read<uint64_t>("the tensor count");
    const uint64_t n_kv = in.read<uint64_t>("the metadata count");

    // Cheapest possible entries: a kv pair is key length + 1-byte key + type + 1-byte
    // value; a tensor info is name length + n_dims + one dim + type + offset.
    if (n_kv > in.remaining() / 14)
        fail(file, ": header claims ", n_kv, " metadata entries but only ", in.remaining(),
             " bytes follow; the file is truncated or corrupt");
    if (n_tensors > in.remaining() / 32)
        fail(file, ": header claims ", n_tensors, " tensors but only ", in.remaining(),
             " bytes follow; the file is truncated or corrupt");

    // --- key-value pairs ---
    ValueReader values{in};
    for (uint64_t k = 0; k < n_kv; ++k) {
        in.context = cat("metadata entry #", k);
        std::string key = in.read_string("a key", kMaxKeyBytes);
        if (key.empty()) fail(file, ": ", in.context, " has an empty key");
        if (!is_valid_utf8(key))
            fail(file, ": ", in.context, " has a key that is not valid UTF-8");
        in.context = cat("metadata key '", key, "'");
        if (kv_index_.count(key)) fail(file, ": duplicate metadata key '", key, "'");
        const GgufType type = values.read_type("a value type");
        GgufValue value = values.read_value(type, 0);
        kv_index_.emplace(key, kv_.size());
        kv_.emplace_back(std::move(key), std::move(value));
    }

    // --- alignment (must be known before tensor offsets can be checked) ---
    alignment_ = kDefaultAlignment;
    if (const GgufValue* a = find(kAlignmentKey)) {
        if (!a->is_integer())
            fail(file, ": ", kAlignmentKey, " is a ", gguf_type_name(a->type),
                 ", expected an integer");
        const bool negative = is_signed_type(a->type) && a->i < 0;
        const uint64_t v = is_signed_type(a->type) ? uint64_t(a->i) : a->u;
        if (negative || !is_power_of_two(v) || v > std::numeric_limits<uint32_t>::max())
            fail(file, ": ", kAlignmentKey, " is ",
                 negative ? cat(a->i) : cat(v), ", must be a power of two between 1 and 2^31");
        alignment_ = size_t(v);
    }

    // --- tensor infos ---
    for (uint64_t k = 0; k < n_tensors; ++k) {
        in.context = cat("tensor #", k);
        GgufTensor t;
        t.name = in.read_string("a tensor name", kMaxKeyBytes);
        if (t.name.empty()) fail(file, ": ", in.context, " has an empty name");
        if (!is_valid_utf8(t.name))
            fail(file, ": ", in.context, " has a name that is not valid UTF-8");
        in.context = cat("tensor '", t.name, "'");
        if (tensor_index_.count(t.name)) fail(file, ": duplicate tensor name '", t.name, "'");

        const uint32_t n_dims = in.read<uint32_t>("the number of dimensions");
        if (n_dims < 1 || n_dims > kMaxDims)
            fail(file, ": ", in.context, " has ", n_dims, " dimensions (must be 1 to ",
                 kMaxDims, ")");
        int64_t n_elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t dim = in.read<uint64_t>("a dimension");
            if (dim < 1)
                fail(file, ": ", in.context, " has dimension ", d, " = 0 (must be at least 1)");
            if (dim > uint64_t(std::numeric_limits<int64_t>::max()))
                fail(file, ": ", in.context, " has dimension ", d, " = ", dim,
                     ", too large (more than 2^63 - 1)");
            if (__builtin_mul_overflow(n_elements, int64_t(dim), &n_elements))
                fail(file, ": ", in.context, " has too many elements (the product of its "
                     "dimensions overflows 64 bits)");
            t.dims.push_back(int64_t(dim));
        }

        const uint32_t type_id = in.read<uint32_t>("a tensor type");
        const TypeTraits* tt = find_type_traits(type_id);
        if (!tt) fail(file, ": ", in.context, " has unknown tensor type ", type_id);
        t.type = tt->type;
        if (t.dims[0] % tt->block_size != 0)
            fail(file, ": ", in.context, " has a first dimension of ", t.dims[0],
                 ", not a multiple of the ", tt->name, " block size ", tt->block_size);

        bool overflow = false;
        const uint64_t row_bytes_ =
            checked_mul(uint64_t(t.dims[0] / tt->block_size), tt->block_bytes, overflow);
        const uint64_t nbytes = checked_mul(uint64_t(t.rows()), row_bytes_, overflow);
        if (overflow || nbytes > std::numeric_limits<size_t>::max())
            fail(file, ": ", in.context, " is too large (its size overflows 64 bits)");
        t.nbytes = size_t(nbytes);

        t.offset = in.read<uint64_t>("a tensor data offset");
        if (t.offset % alignment_ != 0)
            fail(file, ": ", in.context, " has data offset ", t.offset,
                 ", not a multiple of the alignment ", alignment_);

        tensor_index_.emplace(t.name, tensors_.size());
        tensors_.push_back(std::move(t));
    }
    in.context.clear();

    // --- data section: starts at the first multiple of the alignment after the infos ---
    const size_t pad = (alignment_ - in.pos % alignment_) % alignment_;
    const bool data_start_overflows = in.pos > std::numeric_limits<size_t>::max() - pad;
    const size_t data_start = data_start_overflows ? size : in.pos + pad;
    for (GgufTensor& t : tensors_) {
        // Written so that no intermediate sum can overflow.
        if (data_start_overflows || data_start > size || t.offset > size - data_start ||
            t.nbytes > size - data_start - t.offset)
            fail(file, ": tensor '", t.name, "' data (offset ", t.offset, ", ", t.nbytes,
                 " bytes) extends past the end of the file (", size,
                 " bytes); the file is truncated or corrupt");
        t.data = data + data_start + t.offset;
    }

    // --- no two tensors may share bytes: sort by offset, compare neighbours ---
    std::vector<size_t> order(tensors_.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
        const GgufTensor& prev = tensors_[order[k - 1]];
        const GgufTensor& next = tensors_[order[k]];
        if (prev.offset + prev.nbytes > next.offset)   // both in range: no overflow
            fail(file, ": tensors '", prev.name, "' (data bytes ", prev.offset, "..",
                 prev.offset + prev.nbytes, ") and '", next.name, "' (starting at ",
                 next.offset, ") overlap");
    }
}

// ---------------------------------------------------------------------------------
// Lookups and typed getters

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(std::string_view name) const {
    const GgufTensor* t = find_tensor(name);
    if (!t) fail(name_, ": missing tensor ", name);
    return *t;
}

namespace {

const GgufValue& require(const GgufFile& f, std::string_view key) {
    const GgufValue* v = f.find(key);
    if (!v) fail(f.path(), ": missing metadata key '", key, "'");
    return *v;
}

[[noreturn]] void wrong_type(const GgufFile& f, std::string_view key, const GgufValue& v,
                             const char* expected) {
    if (v.type == GgufType::ARRAY)
        fail(f.path(), ": metadata key '", key, "' is an array of ",
             gguf_type_name(v.array_type), ", expected ", expected);
    fail(f.path(), ": metadata key '", key, "' is a ", gguf_type_name(v.type), ", expected ",
         expected);
}

int64_t to_int(const GgufFile& f, std::string_view key, const GgufValue& v) {
    if (!v.is_integer()) wrong_type(f, key, v, "an integer");
    if (is_unsigned_type(v.type) && v.u > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(f.path(), ": metadata key '", key, "' = ", v.u,
             " is too large (more than 2^63 - 1)");
    return is_unsigned_type(v.type) ? int64_t(v.u) : v.i;
}

double to_float(const GgufFile& f, std::string_view key, const GgufValue& v) {
    if (!v.is_float() && !v.is_integer()) wrong_type(f, key, v, "a number");
    return v.as_float();
}

const std::vector<GgufValue>& array_of(const GgufFile& f, std::string_view key,
                                        const GgufValue& v, bool (*ok)(GgufType),
                                        const char* expected) {
    if (v.type != GgufType::ARRAY || !ok(v.array_type)) wrong_type(f, key, v, expected);
    return v.array;
}

bool is_string_type(GgufType t) { return t == GgufType::STRING; }
bool is_integer_type(GgufType t) { return is_unsigned_type(t) || is_signed_type(t); }
bool is_number_type(GgufType t) {
    return is_integer_type(t) || t == GgufType::FLOAT32 || t == GgufType::FLOAT64;
}

}  // namespace

std::string GgufFile::get_string(std::string_view key) const {
    const GgufValue& v = require(*this, key);
    if (v.type != GgufType::STRING) wrong_type(*this, key, v, "a string");
    return v.str;
}

int64_t GgufFile::get_int(std::string_view key) const { return to_int(*this, key, require(*this, key)); }

double GgufFile::get_float(std::string_view key) const { return to_float(*this, key, require(*this, key)); }

bool GgufFile::get_bool(std::string_view key) const {
    const GgufValue& v = require(*this, key);
    if (v.type != GgufType::BOOL) wrong_type(*this, key, v, "a bool");
    return v.u != 0;
}

std::string GgufFile::get_string(std::string_view key, const std::string& def) const {
    return has(key) ? get_string(key) : def;
}
int64_t GgufFile::get_int(std::string_view key, int64_t def) const {
    return has(key) ? get_int(key) : def;
}
double GgufFile::get_float(std::string_view key, double def) const {
    return has(key) ? get_float(key) : def;
}
bool GgufFile::get_bool(std::string_view key, bool def) const {
    return has(key) ? get_bool(key) : def;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
    const auto& arr = array_of(*this, key, require(*this, key), is_string_type, "an array of strings");
    std::vector<std::string> out;
    out.reserve(arr.size());
    for (const GgufValue& e : arr) out.push_back(e.str);
    return out;
}

std::vector<double> GgufFile::get_float_array(std::string_view key) const {
    const auto& arr = array_of(*this, key, require(*this, key), is_number_type, "an array of numbers");
    std::vector<double> out;
    out.reserve(arr.size());
    for (const GgufValue& e : arr) out.push_back(to_float(*this, key, e));
    return out;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
    const auto& arr = array_of(*this, key, require(*this, key), is_integer_type, "an array of integers");
    std::vector<int64_t> out;
    out.reserve(arr.size());
    for (const GgufValue& e : arr) out.push_back(to_int(*this, key, e));
    return out;
}

}  // namespace pensieve
