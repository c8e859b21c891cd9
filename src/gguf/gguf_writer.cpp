// GGUF writer: the inverse of the reader. Everything is validated when it is added, so
// a file this writes always reads back (and is accepted by other GGUF tools):
//   header | kv pairs (insertion order) | tensor infos | zero padding | data, data, ...
// with every tensor's data starting at a multiple of the alignment.

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <iterator>
#include <limits>
#include <unistd.h>

#include "gguf/gguf.h"
#include "gguf/gguf_format.h"
#include "util/error.h"
#include "util/utf8.h"

namespace pensieve {

using namespace gguf_format;

namespace {

// --- byte output ---

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

void pad_to(std::vector<uint8_t>& out, size_t alignment) {
    out.resize((out.size() + alignment - 1) / alignment * alignment, 0);
}

// Integers are stored in GgufValue as u64 / i64; refuse to silently truncate them.
uint64_t checked_unsigned(const std::string& key, const GgufValue& v, uint64_t max) {
    if (v.u > max)
        fail("GGUF writer: value ", v.u, " of key '", key, "' does not fit in a ",
             gguf_type_name(v.type));
    return v.u;
}

int64_t checked_signed(const std::string& key, const GgufValue& v, int64_t min, int64_t max) {
    if (v.i < min || v.i > max)
        fail("GGUF writer: value ", v.i, " of key '", key, "' does not fit in a ",
             gguf_type_name(v.type));
    return v.i;
}

void put_value(std::vector<uint8_t>& out, const std::string& key, const GgufValue& v, int depth) {
    switch (v.type) {
        case GgufType::UINT8: put<uint8_t>(out, uint8_t(checked_unsigned(key, v, 0xFF))); break;
        case GgufType::UINT16: put<uint16_t>(out, uint16_t(checked_unsigned(key, v, 0xFFFF))); break;
        case GgufType::UINT32: put<uint32_t>(out, uint32_t(checked_unsigned(key, v, 0xFFFFFFFF))); break;
        case GgufType::UINT64: put<uint64_t>(out, v.u); break;
        case GgufType::INT8: put<int8_t>(out, int8_t(checked_signed(key, v, INT8_MIN, INT8_MAX))); break;
        case GgufType::INT16: put<int16_t>(out, int16_t(checked_signed(key, v, INT16_MIN, INT16_MAX))); break;
        case GgufType::INT32: put<int32_t>(out, int32_t(checked_signed(key, v, INT32_MIN, INT32_MAX))); break;
        case GgufType::INT64: put<int64_t>(out, v.i); break;
        case GgufType::FLOAT32: put<float>(out, float(v.f)); break;
        case GgufType::FLOAT64: put<double>(out, v.f); break;
        case GgufType::BOOL: put<uint8_t>(out, v.u ? 1 : 0); break;
        case GgufType::STRING: put_string(out, v.str); break;
        case GgufType::ARRAY:
            put<uint32_t>(out, uint32_t(v.array_type));
            put<uint64_t>(out, v.array.size());
            for (const GgufValue& e : v.array) put_value(out, key, e, depth + 1);
            break;
    }
}

// Checks what the reader will check, so errors surface at set() time with the key name.
void validate_value(const std::string& key, const GgufValue& v, int depth) {
    if (!is_known_value_type(uint32_t(v.type)))
        fail("GGUF writer: key '", key, "' has unknown value type ", uint32_t(v.type));
    if (v.type != GgufType::ARRAY) return;
    if (depth + 1 > kMaxArrayDepth)
        fail("GGUF writer: key '", key, "' nests arrays more than ", kMaxArrayDepth, " levels deep");
    if (!is_known_value_type(uint32_t(v.array_type)))
        fail("GGUF writer: key '", key, "' has unknown array element type ", uint32_t(v.array_type));
    for (const GgufValue& e : v.array) {
        if (e.type != v.array_type)
            fail("GGUF writer: key '", key, "' is an array of ", gguf_type_name(v.array_type),
                 " but holds a ", gguf_type_name(e.type), " element");
        validate_value(key, e, depth + 1);
    }
}

void validate_name(const char* what, const std::string& name) {
    if (name.empty()) fail("GGUF writer: empty ", what);
    if (name.size() > kMaxKeyBytes)
        fail("GGUF writer: ", what, " is ", name.size(), " bytes long (limit ", kMaxKeyBytes, ")");
    if (!is_valid_utf8(name)) fail("GGUF writer: ", what, " '", name, "' is not valid UTF-8");
}

GgufValue scalar(GgufType t) {
    GgufValue v;
    v.type = t;
    return v;
}

template <typename T, typename Fill>
GgufValue array_of(GgufType elem_type, const std::vector<T>& items, Fill fill) {
    GgufValue v = scalar(GgufType::ARRAY);
    v.array_type = elem_type;
    v.array.reserve(items.size());
    for (const T& x : items) {
        GgufValue e = scalar(elem_type);
        fill(e, x);
        v.array.push_back(std::move(e));
    }
    return v;
}

// What the layout needs to know about one tensor (shared by to_bytes and write).
struct TensorLayout {
    const std::string* name;
    const std::vector<int64_t>* dims;
    GgmlType type;
    size_t nbytes;
};

// Everything before the data section, including the padding after the tensor infos.
// Tensor offsets: each tensor starts at the next multiple of the alignment.
std::vector<uint8_t> header_bytes(uint32_t version, size_t alignment,
                                  const std::vector<std::pair<std::string, GgufValue>>& kv,
                                  const std::vector<TensorLayout>& tensors) {
    // Built from the magic (GCC 12 misreads an insert into the empty vector as an overflow).
    std::vector<uint8_t> out(std::begin(kMagic), std::end(kMagic));
    put<uint32_t>(out, version);
    put<uint64_t>(out, tensors.size());
    put<uint64_t>(out, kv.size());
    for (const auto& [key, value] : kv) {
        put_string(out, key);
        put<uint32_t>(out, uint32_t(value.type));
        put_value(out, key, value, 0);
    }
    uint64_t offset = 0;
    for (const TensorLayout& t : tensors) {
        put_string(out, *t.name);
        put<uint32_t>(out, uint32_t(t.dims->size()));
        for (int64_t d : *t.dims) put<uint64_t>(out, uint64_t(d));
        put<uint32_t>(out, uint32_t(t.type));
        put<uint64_t>(out, offset);
        offset += (t.nbytes + alignment - 1) / alignment * alignment;
    }
    pad_to(out, alignment);
    return out;
}

// write(2) all of it, retrying on partial writes and EINTR.
bool write_all(int fd, const uint8_t* p, size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= size_t(w);
    }
    return true;
}

}  // namespace

GgufWriter::GgufWriter(uint32_t version, size_t alignment) : version_(version), alignment_(alignment) {
    if (version != 2 && version != 3)
        fail("GGUF writer: version ", version, " is not supported (only 2 and 3)");
    if (!is_power_of_two(alignment) || alignment > std::numeric_limits<uint32_t>::max())
        fail("GGUF writer: alignment ", alignment, " must be a power of two below 2^32");
    alignment_ = kDefaultAlignment;
    if (alignment != kDefaultAlignment) set_u32(kAlignmentKey, uint32_t(alignment));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
    validate_name("metadata key", key);
    validate_value(key, value, 0);
    std::vector<uint8_t> scratch;   // encoding once reports out-of-range integers now
    put_value(scratch, key, value, 0);
    if (key == kAlignmentKey) {
        // The layout must follow the key, so it is applied here; always stored as u32,
        // the type other GGUF readers insist on.
        if (!value.is_integer())
            fail("GGUF writer: ", kAlignmentKey, " must be an integer, not a ", gguf_type_name(value.type));
        const int64_t a = value.as_int();
        if (a <= 0 || !is_power_of_two(uint64_t(a)) || a > int64_t(std::numeric_limits<uint32_t>::max()))
            fail("GGUF writer: ", kAlignmentKey, " = ", a, " must be a power of two below 2^32");
        if (!tensors_.empty() && size_t(a) != alignment_)
            fail("GGUF writer: ", kAlignmentKey, " cannot change after tensors were added");
        alignment_ = size_t(a);
        GgufValue u = scalar(GgufType::UINT32);
        u.u = uint64_t(a);
        value = std::move(u);
    }
    for (auto& [k, v] : kv_) {
        if (k == key) {
            v = std::move(value);
            return;
        }
    }
    kv_.emplace_back(key, std::move(value));
}

void GgufWriter::set_string(const std::string& key, const std::string& v) {
    GgufValue x = scalar(GgufType::STRING);
    x.str = v;
    set(key, std::move(x));
}
void GgufWriter::set_u32(const std::string& key, uint32_t v) {
    GgufValue x = scalar(GgufType::UINT32);
    x.u = v;
    set(key, std::move(x));
}
void GgufWriter::set_i32(const std::string& key, int32_t v) {
    GgufValue x = scalar(GgufType::INT32);
    x.i = v;
    set(key, std::move(x));
}
void GgufWriter::set_u64(const std::string& key, uint64_t v) {
    GgufValue x = scalar(GgufType::UINT64);
    x.u = v;
    set(key, std::move(x));
}
void GgufWriter::set_f32(const std::string& key, float v) {
    GgufValue x = scalar(GgufType::FLOAT32);
    x.f = v;
    set(key, std::move(x));
}
void GgufWriter::set_bool(const std::string& key, bool v) {
    GgufValue x = scalar(GgufType::BOOL);
    x.u = v ? 1 : 0;
    set(key, std::move(x));
}
void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& v) {
    set(key, array_of(GgufType::STRING, v, [](GgufValue& e, const std::string& s) { e.str = s; }));
}
void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& v) {
    set(key, array_of(GgufType::FLOAT32, v, [](GgufValue& e, float f) { e.f = f; }));
}
void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
    set(key, array_of(GgufType::INT32, v, [](GgufValue& e, int32_t i) { e.i = i; }));
}

void GgufWriter::copy_metadata(const GgufFile& from) {
    for (const auto& [key, value] : from.metadata()) set(key, value);
}

void GgufWriter::check_tensor(const std::string& name, const std::vector<int64_t>& dims, GgmlType type,
                              size_t nbytes) const {
    validate_name("tensor name", name);
    for (const PendingTensor& t : tensors_)
        if (t.name == name) fail("GGUF writer: duplicate tensor name '", name, "'");
    if (dims.empty() || dims.size() > kMaxDims)
        fail("GGUF writer: tensor '", name, "' has ", dims.size(), " dimensions (must be 1 to ", kMaxDims, ")");
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d < 1) fail("GGUF writer: tensor '", name, "' has a dimension of ", d);
        if (__builtin_mul_overflow(n, d, &n)) fail("GGUF writer: tensor '", name, "' is too large");
    }
    const TypeTraits* tt = find_type_traits(uint32_t(type));
    if (!tt) fail("GGUF writer: tensor '", name, "' has unknown type ", uint32_t(type));
    if (dims[0] % tt->block_size != 0)
        fail("GGUF writer: tensor '", name, "' first dimension ", dims[0],
             " is not a multiple of the ", tt->name, " block size ", tt->block_size);
    uint64_t expected = 0;
    if (__builtin_mul_overflow(uint64_t(n / dims[0]), uint64_t(dims[0] / tt->block_size) * tt->block_bytes,
                               &expected))
        fail("GGUF writer: tensor '", name, "' is too large");
    if (nbytes != expected)
        fail("GGUF writer: tensor '", name, "' of type ", tt->name, " needs ", expected,
             " bytes of data, got ", nbytes);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& dims, GgmlType type,
                            const void* data, size_t nbytes) {
    check_tensor(name, dims, type, nbytes);
    if (nbytes > 0 && !data) fail("GGUF writer: tensor '", name, "' has no data");
    PendingTensor t{name, dims, type, nbytes, {}, nullptr};
    const auto* p = static_cast<const uint8_t*>(data);
    t.bytes.assign(p, p + nbytes);
    tensors_.push_back(std::move(t));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& dims, GgmlType type,
                            size_t nbytes, TensorProducer produce) {
    check_tensor(name, dims, type, nbytes);
    if (!produce) fail("GGUF writer: tensor '", name, "' has no producer");
    tensors_.push_back(PendingTensor{name, dims, type, nbytes, {}, std::move(produce)});
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
    std::vector<TensorLayout> layout;
    for (const PendingTensor& t : tensors_) layout.push_back({&t.name, &t.dims, t.type, t.nbytes});
    std::vector<uint8_t> out = header_bytes(version_, alignment_, kv_, layout);
    for (const PendingTensor& t : tensors_) {
        if (t.produce) {
            const size_t at = out.size();
            out.resize(at + t.nbytes);
            t.produce(out.data() + at);
        } else {
            out.insert(out.end(), t.bytes.begin(), t.bytes.end());
        }
        pad_to(out, alignment_);
    }
    return out;
}

// Streams the tensors straight from their buffers (a model can be gigabytes; to_bytes
// would hold a second copy); produced tensors are made one at a time into one reused
// buffer. Written to PATH.tmp and renamed, so a crash, a full disk or a failing
// producer never leaves a half-written PATH behind.
void GgufWriter::write(const std::string& path) const {
    std::vector<TensorLayout> layout;
    for (const PendingTensor& t : tensors_) layout.push_back({&t.name, &t.dims, t.type, t.nbytes});
    const std::vector<uint8_t> head = header_bytes(version_, alignment_, kv_, layout);

    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail(path, ": cannot create ", tmp, ": ", std::strerror(errno));
    auto give_up = [&](const char* what) {
        const int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        fail(path, ": cannot ", what, " ", tmp, ": ", std::strerror(err));
    };

    static const uint8_t zeros[4096] = {};
    if (!write_all(fd, head.data(), head.size())) give_up("write");
    std::vector<uint8_t> produced;
    for (const PendingTensor& t : tensors_) {
        const uint8_t* data = t.bytes.data();
        if (t.produce) {
            try {
                produced.resize(t.nbytes);
                t.produce(produced.data());
            } catch (...) {
                ::close(fd);
                ::unlink(tmp.c_str());
                throw;
            }
            data = produced.data();
        }
        if (!write_all(fd, data, t.nbytes)) give_up("write");
        size_t pad = (alignment_ - t.nbytes % alignment_) % alignment_;
        while (pad > 0) {
            const size_t n = std::min(pad, sizeof(zeros));
            if (!write_all(fd, zeros, n)) give_up("write");
            pad -= n;
        }
    }
    if (::fsync(fd) != 0) give_up("flush");
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail(path, ": cannot write ", tmp, ": ", std::strerror(err));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail(path, ": cannot rename ", tmp, " to it: ", std::strerror(err));
    }
}

}  // namespace pensieve
