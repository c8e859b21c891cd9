// GGUF reader/writer: round trips, the real files in ../shared, and a table of malformed
// files that must each be rejected with pensieve::Error (never a crash or another
// exception type). Run under ASan+UBSan: every byte buffer handed to the parser is
// exactly as long as the file, so any over-read is caught.

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <unistd.h>

#include "gguf/gguf.h"
#include "test_paths.h"
#include "util/error.h"

using namespace pensieve;
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------
// Raw little-endian builder for hand-made (mostly malformed) files

struct Bytes {
    std::vector<uint8_t> b;

    template <typename T>
    Bytes& put(T v) {
        uint8_t tmp[sizeof(T)];
        std::memcpy(tmp, &v, sizeof(T));
        b.insert(b.end(), tmp, tmp + sizeof(T));
        return *this;
    }
    Bytes& u8(uint8_t v) { return put(v); }
    Bytes& u32(uint32_t v) { return put(v); }
    Bytes& u64(uint64_t v) { return put(v); }
    Bytes& raw(std::string_view s) {
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    Bytes& str(std::string_view s) { return u64(s.size()).raw(s); }
    Bytes& zeros(size_t n) {
        b.resize(b.size() + n, 0);
        return *this;
    }
    Bytes& pad(size_t align) {
        b.resize((b.size() + align - 1) / align * align, 0);
        return *this;
    }
    // A kv pair with a u32 value.
    Bytes& kv_u32(std::string_view key, uint32_t v) {
        return str(key).u32(uint32_t(GgufType::UINT32)).u32(v);
    }
    Bytes& tensor(std::string_view name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
        str(name).u32(uint32_t(dims.size()));
        for (uint64_t d : dims) u64(d);
        return u32(type).u64(offset);
    }
};

Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Bytes h;
    h.b = {'G', 'G', 'U', 'F'};   // not raw() into the empty vector: GCC 12 warns (a false -Wstringop-overflow)
    h.u32(version).u64(n_tensors).u64(n_kv);
    return h;
}

// A file with one tensor described by the arguments, followed by `data_bytes` of data.
std::vector<uint8_t> one_tensor(std::vector<uint64_t> dims, uint32_t type, uint64_t offset,
                                size_t data_bytes) {
    Bytes f = header(1, 0);
    f.tensor("w", std::move(dims), type, offset).pad(32).zeros(data_bytes);
    return f.b;
}

const uint32_t F32 = uint32_t(GgmlType::F32);
const uint32_t Q8_0 = uint32_t(GgmlType::Q8_0);

std::unique_ptr<GgufFile> parse(const std::vector<uint8_t>& b) {
    return GgufFile::parse(b.data(), b.size(), "test.gguf");
}

// Deep equality of two values (the reader's output vs what went into the writer).
bool same(const GgufValue& a, const GgufValue& b) {
    if (a.type != b.type) return false;
    switch (a.type) {
        case GgufType::STRING: return a.str == b.str;
        case GgufType::FLOAT32: return float(a.f) == float(b.f);
        case GgufType::FLOAT64: return a.f == b.f;
        case GgufType::ARRAY:
            if (a.array_type != b.array_type || a.array.size() != b.array.size()) return false;
            for (size_t k = 0; k < a.array.size(); ++k)
                if (!same(a.array[k], b.array[k])) return false;
            return true;
        default: return a.u == b.u && a.i == b.i;
    }
}

GgufValue scalar(GgufType t, uint64_t u = 0, int64_t i = 0, double f = 0, std::string s = {}) {
    GgufValue v;
    v.type = t;
    v.u = u;
    v.i = i;
    v.f = f;
    v.str = std::move(s);
    return v;
}

GgufValue array(GgufType elem, std::vector<GgufValue> items) {
    GgufValue v;
    v.type = GgufType::ARRAY;
    v.array_type = elem;
    v.array = std::move(items);
    return v;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> out(n);
    for (auto& x : out) x = uint8_t(rng());
    return out;
}

// A small valid file used by several tests: metadata of several kinds and two tensors.
// The last tensor is 128 bytes (a multiple of the alignment), so the file has no trailing
// padding and every proper prefix is missing real data.
std::vector<uint8_t> small_valid_file() {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.context_length", 128);
    w.set_f32("llama.rope.freq_base", 10000.0f);
    w.set_string_array("tokenizer.ggml.tokens", {"<s>", "</s>", "a"});
    w.set("test.nested", array(GgufType::ARRAY, {array(GgufType::INT8, {scalar(GgufType::INT8, 0, -3)})}));
    const auto q = random_bytes(2 * 34, 1);
    w.add_tensor("blk.0.q", {64}, GgmlType::Q8_0, q.data(), q.size());
    const auto f = random_bytes(128, 2);
    w.add_tensor("blk.0.norm", {8, 4}, GgmlType::F32, f.data(), f.size());
    return w.to_bytes();
}

}  // namespace

// ---------------------------------------------------------------------------------
// Writer -> reader round trips

TEST(Gguf, RoundTripEveryValueType) {
    std::vector<std::pair<std::string, GgufValue>> kv = {
        {"t.u8", scalar(GgufType::UINT8, 255)},
        {"t.i8", scalar(GgufType::INT8, 0, -128)},
        {"t.u16", scalar(GgufType::UINT16, 65535)},
        {"t.i16", scalar(GgufType::INT16, 0, -32768)},
        {"t.u32", scalar(GgufType::UINT32, 4000000000u)},
        {"t.i32", scalar(GgufType::INT32, 0, -2000000000)},
        {"t.f32", scalar(GgufType::FLOAT32, 0, 0, 1.5)},
        {"t.bool_true", scalar(GgufType::BOOL, 1)},
        {"t.bool_false", scalar(GgufType::BOOL, 0)},
        {"t.string", scalar(GgufType::STRING, 0, 0, 0, "héllo, wörld ✓")},
        {"t.empty_string", scalar(GgufType::STRING)},
        {"t.u64", scalar(GgufType::UINT64, std::numeric_limits<uint64_t>::max())},
        {"t.i64", scalar(GgufType::INT64, 0, std::numeric_limits<int64_t>::min())},
        {"t.f64", scalar(GgufType::FLOAT64, 0, 0, -0.1)},
        {"t.arr_u8", array(GgufType::UINT8, {scalar(GgufType::UINT8, 1), scalar(GgufType::UINT8, 2)})},
        {"t.arr_f64", array(GgufType::FLOAT64, {scalar(GgufType::FLOAT64, 0, 0, 3.25)})},
        {"t.arr_bool", array(GgufType::BOOL, {scalar(GgufType::BOOL, 1), scalar(GgufType::BOOL, 0)})},
        {"t.arr_str", array(GgufType::STRING, {scalar(GgufType::STRING, 0, 0, 0, "x"),
                                               scalar(GgufType::STRING)})},
        {"t.arr_empty", array(GgufType::UINT32, {})},
        {"t.arr_empty_str", array(GgufType::STRING, {})},
        {"t.nested", array(GgufType::ARRAY,
                           {array(GgufType::STRING, {scalar(GgufType::STRING, 0, 0, 0, "a")}),
                            array(GgufType::INT64, {}),
                            array(GgufType::ARRAY, {array(GgufType::INT16, {scalar(GgufType::INT16, 0, 7)})})})},
    };
    for (uint32_t version : {2u, 3u}) {
        for (size_t alignment : {size_t(32), size_t(1), size_t(64)}) {
            SCOPED_TRACE(cat("version ", version, " alignment ", alignment));
            GgufWriter w(version, alignment);
            for (const auto& [k, v] : kv) w.set(k, v);
            const auto a = random_bytes(4 * 3, 7);    // F32 [3]: 12 bytes, needs padding
            const auto b = random_bytes(34 * 2 * 5, 8);  // Q8_0 [64, 5]
            const auto c = random_bytes(2 * 7 * 2 * 3 * 2, 9);  // F16 [7, 2, 3, 2]
            w.add_tensor("a", {3}, GgmlType::F32, a.data(), a.size());
            w.add_tensor("b", {64, 5}, GgmlType::Q8_0, b.data(), b.size());
            w.add_tensor("c", {7, 2, 3, 2}, GgmlType::F16, c.data(), c.size());
            const std::vector<uint8_t> bytes = w.to_bytes();
            EXPECT_EQ(bytes.size() % alignment, 0u);

            auto f = parse(bytes);
            EXPECT_EQ(f->version(), version);
            EXPECT_EQ(f->alignment(), alignment);
            // Metadata comes back in insertion order (after general.alignment when set).
            const auto& md = f->metadata();
            const size_t skip = alignment == 32 ? 0 : 1;
            ASSERT_EQ(md.size(), kv.size() + skip);
            if (skip) {
                EXPECT_EQ(md[0].first, "general.alignment");
            }
            for (size_t k = 0; k < kv.size(); ++k) {
                EXPECT_EQ(md[k + skip].first, kv[k].first);
                EXPECT_TRUE(same(md[k + skip].second, kv[k].second)) << kv[k].first;
            }
            ASSERT_EQ(f->tensors().size(), 3u);
            const GgufTensor& tb = f->tensor("b");
            EXPECT_EQ(tb.dims, (std::vector<int64_t>{64, 5}));
            EXPECT_EQ(tb.type, GgmlType::Q8_0);
            EXPECT_EQ(tb.rows(), 5);
            EXPECT_EQ(tb.cols(), 64);
            EXPECT_EQ(tb.n_elements(), 320);
            const GgufTensor& tc = f->tensor("c");
            EXPECT_EQ(tc.dims, (std::vector<int64_t>{7, 2, 3, 2}));
            EXPECT_EQ(tc.rows(), 12);
            for (auto [name, data] : {std::pair{"a", &a}, std::pair{"b", &b}, std::pair{"c", &c}}) {
                const GgufTensor& t = f->tensor(name);
                ASSERT_EQ(t.nbytes, data->size());
                EXPECT_EQ(t.offset % alignment, 0u);
                EXPECT_EQ(size_t(t.data - bytes.data()) % alignment, 0u);
                EXPECT_EQ(std::memcmp(t.data, data->data(), t.nbytes), 0) << name;
            }
        }
    }
}

TEST(Gguf, EmptyFileWithoutTensors) {
    GgufWriter w;
    auto f = parse(w.to_bytes());
    EXPECT_TRUE(f->metadata().empty());
    EXPECT_TRUE(f->tensors().empty());
    // Files with no tensors need not carry the padding after the (empty) info section.
    const std::vector<uint8_t> bare = header(0, 0).b;
    EXPECT_EQ(parse(bare)->tensors().size(), 0u);
}

TEST(Gguf, WriterSetReplacesInPlace) {
    GgufWriter w;
    w.set_u32("a", 1);
    w.set_string("b", "x");
    w.set_i32("a", -5);
    auto f = parse(w.to_bytes());
    ASSERT_EQ(f->metadata().size(), 2u);
    EXPECT_EQ(f->metadata()[0].first, "a");
    EXPECT_EQ(f->get_int("a"), -5);
}

TEST(Gguf, WriteAndOpenFile) {
    const fs::path dir = fs::temp_directory_path() / cat("pensieve_gguf_test_", ::getpid());
    fs::create_directories(dir);
    const std::string path = (dir / "out.gguf").string();
    const std::vector<uint8_t> expected = small_valid_file();
    // Round trip the small file through copy_metadata + add_tensor + write.
    auto src = parse(expected);
    GgufWriter w;
    w.copy_metadata(*src);
    for (const GgufTensor& t : src->tensors()) w.add_tensor(t.name, t.dims, t.type, t.data, t.nbytes);
    w.write(path);
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->path(), path);
    EXPECT_EQ(f->file_size(), expected.size());
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(got, expected);
    EXPECT_EQ(f->get_string("general.architecture"), "llama");
    EXPECT_EQ(std::memcmp(f->tensor("blk.0.norm").data, src->tensor("blk.0.norm").data, 128), 0);
    // Errors name the file.
    try {
        w.write((dir / "no" / "such" / "dir.gguf").string());
        ADD_FAILURE() << "expected an Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("dir.gguf"), std::string::npos) << e.what();
    }
    EXPECT_THROW(GgufFile::open((dir / "missing.gguf").string()), Error);
    fs::remove_all(dir);
}

TEST(Gguf, WriterRejectsInvalidInput) {
    GgufWriter w;
    const std::vector<uint8_t> data(64 * 4);
    EXPECT_THROW(GgufWriter(1), Error);
    EXPECT_THROW(GgufWriter(3, 0), Error);
    EXPECT_THROW(GgufWriter(3, 48), Error);
    EXPECT_THROW(w.set_u32("general.alignment", 3), Error);
    EXPECT_THROW(w.set_u32("general.alignment", 0), Error);
    EXPECT_THROW(w.set_string("general.alignment", "32"), Error);
    EXPECT_THROW(w.set_u32("", 1), Error);
    EXPECT_THROW(w.set_u32("bad\xC0\xAF", 1), Error);
    EXPECT_THROW(w.set("t", scalar(GgufType::UINT8, 256)), Error);
    EXPECT_THROW(w.set("t", scalar(GgufType::INT16, 0, 40000)), Error);
    EXPECT_THROW(w.set("t", array(GgufType::UINT8, {scalar(GgufType::INT8)})), Error);
    GgufValue deep = scalar(GgufType::UINT8);
    for (int k = 0; k < 9; ++k) deep = array(deep.type, {deep});
    EXPECT_THROW(w.set("t", deep), Error);
    EXPECT_THROW(w.add_tensor("t", {64}, GgmlType::F32, data.data(), 100), Error);   // wrong size
    EXPECT_THROW(w.add_tensor("t", {}, GgmlType::F32, data.data(), 4), Error);
    EXPECT_THROW(w.add_tensor("t", {1, 1, 1, 1, 1}, GgmlType::F32, data.data(), 4), Error);
    EXPECT_THROW(w.add_tensor("t", {0}, GgmlType::F32, data.data(), 0), Error);
    EXPECT_THROW(w.add_tensor("t", {33}, GgmlType::Q8_0, data.data(), 34), Error);  // not whole blocks
    EXPECT_THROW(w.add_tensor("t", {1}, GgmlType(4), data.data(), 4), Error);         // unknown type
    w.add_tensor("t", {64}, GgmlType::F32, data.data(), data.size());
    EXPECT_THROW(w.add_tensor("t", {64}, GgmlType::F32, data.data(), data.size()), Error);
    EXPECT_THROW(w.set_u32("general.alignment", 64), Error);   // layout already fixed
    // Nothing invalid got in: the file still reads back.
    EXPECT_EQ(parse(w.to_bytes())->tensors().size(), 1u);
}

// ---------------------------------------------------------------------------------
// Typed getters

TEST(Gguf, TypedGetters) {
    GgufWriter w;
    w.set_string("s", "text");
    w.set_u32("u", 7);
    w.set_i32("i", -7);
    w.set_u64("big", std::numeric_limits<uint64_t>::max());
    w.set_u64("fits", uint64_t(std::numeric_limits<int64_t>::max()));
    w.set_f32("f", 0.25f);
    w.set_bool("b", true);
    w.set("u8", scalar(GgufType::UINT8, 200));
    w.set("f64", scalar(GgufType::FLOAT64, 0, 0, 2.5));
    w.set_string_array("sa", {"x", "y"});
    w.set_f32_array("fa", {1.0f, 2.5f});
    w.set_i32_array("ia", {3, -4});
    w.set("ua", array(GgufType::UINT64, {scalar(GgufType::UINT64, 9), scalar(GgufType::UINT64, ~0ull)}));
    auto f = parse(w.to_bytes());

    EXPECT_EQ(f->get_string("s"), "text");
    EXPECT_EQ(f->get_int("u"), 7);
    EXPECT_EQ(f->get_int("i"), -7);
    EXPECT_EQ(f->get_int("u8"), 200);
    EXPECT_EQ(f->get_int("fits"), std::numeric_limits<int64_t>::max());
    EXPECT_DOUBLE_EQ(f->get_float("f"), 0.25);
    EXPECT_DOUBLE_EQ(f->get_float("f64"), 2.5);
    EXPECT_DOUBLE_EQ(f->get_float("i"), -7.0);   // integers are acceptable floats
    EXPECT_TRUE(f->get_bool("b"));
    EXPECT_EQ(f->get_string_array("sa"), (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(f->get_float_array("fa"), (std::vector<double>{1.0, 2.5}));
    EXPECT_EQ(f->get_float_array("ia"), (std::vector<double>{3.0, -4.0}));
    EXPECT_EQ(f->get_int_array("ia"), (std::vector<int64_t>{3, -4}));

    // Defaults apply only to missing keys; a present key of the wrong type still throws.
    EXPECT_EQ(f->get_string("nope", "dflt"), "dflt");
    EXPECT_EQ(f->get_int("nope", 42), 42);
    EXPECT_DOUBLE_EQ(f->get_float("nope", 1.5), 1.5);
    EXPECT_FALSE(f->get_bool("nope", false));
    EXPECT_EQ(f->get_int("u", 42), 7);
    EXPECT_THROW(f->get_int("s", 42), Error);

    // Wrong types and missing keys: the message names the file, the key and the type.
    auto expect_message = [&](auto&& call, std::vector<std::string> needles) {
        try {
            call();
            ADD_FAILURE() << "expected an Error";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.rfind("test.gguf: ", 0), 0u) << msg;
            for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg << " / " << n;
        }
    };
    expect_message([&] { f->get_int("s"); }, {"'s'", "string"});
    expect_message([&] { f->get_int("f"); }, {"'f'", "float32"});
    expect_message([&] { f->get_int("big"); }, {"'big'", "18446744073709551615"});
    expect_message([&] { f->get_float("s"); }, {"'s'", "string"});
    expect_message([&] { f->get_string("u"); }, {"'u'", "uint32"});
    expect_message([&] { f->get_bool("u"); }, {"'u'", "uint32"});
    expect_message([&] { f->get_string("missing"); }, {"missing", "'missing'"});
    expect_message([&] { f->get_string_array("ia"); }, {"'ia'", "int32"});
    expect_message([&] { f->get_int_array("fa"); }, {"'fa'", "float32"});
    expect_message([&] { f->get_int_array("ua"); }, {"'ua'", "18446744073709551615"});
    expect_message([&] { f->get_float_array("s"); }, {"'s'", "string"});
    expect_message([&] { f->tensor("nope"); }, {"missing tensor nope"});

    EXPECT_EQ(f->find("nope"), nullptr);
    EXPECT_EQ(f->find_tensor("nope"), nullptr);
    ASSERT_NE(f->find("u"), nullptr);
    EXPECT_TRUE(f->find("u")->is_integer());
    EXPECT_FALSE(f->find("u")->is_float());
    EXPECT_TRUE(f->find("f")->is_float());
    EXPECT_FALSE(f->find("b")->is_integer());
    EXPECT_EQ(f->find("b")->as_int(), 1);
    EXPECT_EQ(f->find("i")->as_int(), -7);
    EXPECT_DOUBLE_EQ(f->find("u8")->as_float(), 200.0);
    EXPECT_THROW(f->find("s")->as_int(), Error);
    EXPECT_THROW(f->find("sa")->as_float(), Error);
    EXPECT_THROW(f->find("big")->as_int(), Error);
    EXPECT_THROW(f->find("f")->as_int(), Error);          // 0.25 is not an integer
    EXPECT_EQ(f->find("f64")->as_float(), 2.5);
}

TEST(Gguf, TypeNames) {
    EXPECT_STREQ(gguf_type_name(GgufType::UINT8), "uint8");
    EXPECT_STREQ(gguf_type_name(GgufType::FLOAT64), "float64");
    EXPECT_STREQ(gguf_type_name(GgufType::ARRAY), "array");
    EXPECT_STREQ(gguf_type_name(GgufType(77)), "unknown");
}

// ---------------------------------------------------------------------------------
// Real files in ../shared

std::vector<fs::path> shared_gguf_files() {
    std::vector<fs::path> out;
    for (const char* sub : {"models", "vocab"}) {
        const fs::path dir = fs::path(shared_dir()) / sub;
        if (!fs::is_directory(dir)) continue;
        for (const auto& e : fs::directory_iterator(dir))
            if (e.path().extension() == ".gguf") out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

TEST(GgufReal, OpensEverySharedFile) {
    const auto files = shared_gguf_files();
    ASSERT_GE(files.size(), 10u) << "no GGUF files found under " << shared_dir()
                                 << " (set PENSIEVE_SHARED)";
    for (const fs::path& p : files) {
        SCOPED_TRACE(p.string());
        std::unique_ptr<GgufFile> f;
        ASSERT_NO_THROW(f = GgufFile::open(p.string()));
        EXPECT_TRUE(f->version() == 2 || f->version() == 3);
        EXPECT_EQ(f->file_size(), fs::file_size(p));
        EXPECT_FALSE(f->get_string("general.architecture").empty());
        const auto tokens = f->get_string_array("tokenizer.ggml.tokens");
        EXPECT_GT(tokens.size(), 100u);
        const bool is_model = p.parent_path().filename() == "models";
        if (is_model) {
            EXPECT_GT(f->tensors().size(), 5u);
            const std::string arch = f->get_string("general.architecture");
            EXPECT_GT(f->get_int(arch + ".embedding_length"), 0);
            EXPECT_GT(f->get_int(arch + ".block_count"), 0);
        }
        for (const GgufTensor& t : f->tensors()) {
            EXPECT_NE(t.data, nullptr);
            EXPECT_EQ(t.nbytes, row_bytes(t.type, t.cols()) * size_t(t.rows())) << t.name;
            EXPECT_EQ(t.offset % f->alignment(), 0u);
        }
    }
}

TEST(GgufReal, Stories260KContents) {
    const std::string path = shared_dir() + "/models/stories260K.gguf";
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->get_string("general.architecture"), "llama");
    EXPECT_EQ(f->get_int("llama.embedding_length"), 64);
    EXPECT_EQ(f->get_int("llama.block_count"), 5);
    EXPECT_EQ(f->get_int("llama.attention.head_count"), 8);
    EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 4);
    EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens").size(), 512u);
    const GgufTensor& emb = f->tensor("token_embd.weight");
    EXPECT_EQ(emb.dims, (std::vector<int64_t>{64, 512}));
    EXPECT_EQ(emb.type, GgmlType::F32);
    EXPECT_EQ(emb.nbytes, 64u * 512u * 4u);
    EXPECT_EQ(f->alignment(), 32u);

    // Rebuilding the file with our writer must give back the same bytes: the layout we
    // write is the one other GGUF tools write (and hence read).
    GgufWriter w(f->version(), f->alignment());
    w.copy_metadata(*f);
    for (const GgufTensor& t : f->tensors()) w.add_tensor(t.name, t.dims, t.type, t.data, t.nbytes);
    const std::vector<uint8_t> bytes = w.to_bytes();
    MappedFile original(path);
    ASSERT_EQ(bytes.size(), original.size());
    EXPECT_EQ(std::memcmp(bytes.data(), original.data(), bytes.size()), 0);
}

TEST(GgufReal, SynthTinyContents) {
    for (const char* name : {"synth-tiny-F16", "synth-tiny-Q8_0", "synth-tiny-Q4_0", "synth-tiny-Q4_K_M",
                             "synth-tiny-TQ2_0"}) {
        SCOPED_TRACE(name);
        auto f = GgufFile::open(shared_dir() + "/models/" + name + ".gguf");
        EXPECT_EQ(f->get_string("general.architecture"), "llama");
        EXPECT_EQ(f->get_int("llama.embedding_length"), 256);
        EXPECT_EQ(f->get_int("llama.block_count"), 4);
        EXPECT_EQ(f->get_int("llama.feed_forward_length"), 704);
        EXPECT_EQ(f->tensor("token_embd.weight").dims, (std::vector<int64_t>{256, 32000}));
        EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens").size(), 32000u);
        EXPECT_EQ(f->get_float_array("tokenizer.ggml.scores").size(), 32000u);
    }
}

// ---------------------------------------------------------------------------------
// Malformed files: each must throw pensieve::Error with a message naming the file

struct BadCase {
    std::string what;
    std::vector<uint8_t> bytes;
    std::string needle;   // expected somewhere in the message
};

std::vector<BadCase> bad_cases() {
    const uint64_t huge = 1ull << 62;
    std::vector<BadCase> c;
    c.push_back({"empty file", {}, "empty"});
    c.push_back({"shorter than the magic", Bytes().raw("GG").b, "not a GGUF file"});
    c.push_back({"bad magic", Bytes().raw("GGML").u32(3).u64(0).u64(0).b, "not a GGUF file"});
    c.push_back({"version 1", header(0, 0, 1).b, "version 1"});
    c.push_back({"version 99", header(0, 0, 99).b, "version 99"});
    c.push_back({"version 0", header(0, 0, 0).b, "version 0"});
    c.push_back({"big-endian", Bytes().raw("GGUF").u32(0x03000000).u64(0).u64(0).b, "big-endian"});
    c.push_back({"header cut short", Bytes().raw("GGUF").u32(3).u64(0).b, "truncated"});
    c.push_back({"huge tensor count", header(huge, 0).b, "tensors"});
    c.push_back({"max tensor count", header(~0ull, 0).b, "tensors"});
    c.push_back({"huge kv count", header(0, huge).b, "metadata entries"});
    c.push_back({"huge key length", header(0, 1).u64(huge).zeros(20).b, "key"});
    c.push_back({"key longer than the limit", header(0, 1).u64(65537).zeros(65537 + 5).b, "limit"});
    c.push_back({"empty key", header(0, 1).kv_u32("", 1).b, "empty key"});
    c.push_back({"huge string length",
                 header(0, 1).str("k").u32(uint32_t(GgufType::STRING)).u64(huge).raw("abc").b, "truncated"});
    c.push_back({"max string length",
                 header(0, 1).str("k").u32(uint32_t(GgufType::STRING)).u64(~0ull).b, "truncated"});
    c.push_back({"huge array count",
                 header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::UINT32)).u64(huge).b,
                 "array of"});
    c.push_back({"huge array of strings",
                 header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::STRING)).u64(1000).b,
                 "array of"});
    c.push_back({"array count just above the bytes left",
                 header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY)).u32(uint32_t(GgufType::UINT16)).u64(3)
                     .zeros(5).b,
                 "array of"});
    {
        Bytes deep = header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY));
        for (int k = 0; k < 20; ++k) deep.u32(uint32_t(GgufType::ARRAY)).u64(1);
        deep.u32(uint32_t(GgufType::UINT8)).u64(1).u8(0);
        c.push_back({"deep nesting", deep.b, "nests arrays"});
    }
    c.push_back({"unknown value type", header(0, 1).str("k").u32(13).u32(0).b, "unknown value type 13"});
    c.push_back({"unknown array element type",
                 header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY)).u32(0xFFFFFFFF).u64(0).b,
                 "unknown value type"});
    c.push_back({"bool value 2", header(0, 1).str("k").u32(uint32_t(GgufType::BOOL)).u8(2).b, "bool value 2"});
    c.push_back({"duplicate key", header(0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2).b, "duplicate metadata key 'a.b'"});
    c.push_back({"invalid UTF-8 key (bare continuation)", header(0, 1).kv_u32("k\x80", 1).b, "UTF-8"});
    c.push_back({"invalid UTF-8 key (overlong)", header(0, 1).kv_u32("\xC0\xAF", 1).b, "UTF-8"});
    c.push_back({"invalid UTF-8 key (surrogate)", header(0, 1).kv_u32("\xED\xA0\x80", 1).b, "UTF-8"});
    c.push_back({"invalid UTF-8 key (> U+10FFFF)", header(0, 1).kv_u32("\xF4\x90\x80\x80", 1).b, "UTF-8"});
    c.push_back({"invalid UTF-8 key (truncated sequence)", header(0, 1).kv_u32("ab\xE2\x82", 1).b, "UTF-8"});
    c.push_back({"alignment 0", header(0, 1).kv_u32("general.alignment", 0).b, "general.alignment"});
    c.push_back({"alignment 3", header(0, 1).kv_u32("general.alignment", 3).b, "general.alignment"});
    c.push_back({"alignment negative",
                 header(0, 1).str("general.alignment").u32(uint32_t(GgufType::INT32)).u32(uint32_t(-32)).b,
                 "general.alignment"});
    c.push_back({"alignment 2^32",
                 header(0, 1).str("general.alignment").u32(uint32_t(GgufType::UINT64)).u64(1ull << 32).b,
                 "general.alignment"});
    c.push_back({"alignment is a string",
                 header(0, 1).str("general.alignment").u32(uint32_t(GgufType::STRING)).str("32").b,
                 "general.alignment"});

    // Tensor infos.
    c.push_back({"unknown tensor type 4", one_tensor({32}, 4, 0, 128), "unknown tensor type 4"});
    c.push_back({"unknown tensor type 1000", one_tensor({32}, 1000, 0, 128), "unknown tensor type 1000"});
    c.push_back({"n_dims 0", one_tensor({}, F32, 0, 128), "0 dimensions"});
    c.push_back({"n_dims 5", one_tensor({1, 1, 1, 1, 1}, F32, 0, 128), "5 dimensions"});
    c.push_back({"zero dim", one_tensor({4, 0}, F32, 0, 128), "dimension 1 = 0"});
    c.push_back({"dim above INT64_MAX", one_tensor({~0ull}, F32, 0, 128), "too large"});
    c.push_back({"overflowing dims", one_tensor({1ull << 32, 1ull << 32}, F32, 0, 128), "overflows"});
    c.push_back({"overflowing byte size", one_tensor({1ull << 40, 1ull << 22}, F32, 0, 128), "too large"});
    c.push_back({"dim 0 not whole blocks", one_tensor({33}, Q8_0, 0, 128), "block size"});
    c.push_back({"offset past end", one_tensor({8}, F32, 1ull << 40, 32), "past the end"});
    c.push_back({"offset at max", one_tensor({8}, F32, ~0ull - 31, 32), "past the end"});
    c.push_back({"data cut short", one_tensor({8}, F32, 0, 31), "past the end"});
    c.push_back({"misaligned offset", one_tensor({8}, F32, 4, 64), "not a multiple of the alignment"});
    c.push_back({"tensor info cut short", Bytes(header(1, 0)).str("a_long_tensor_name_here").u32(2).u64(4).b, "truncated"});
    c.push_back({"empty tensor name", Bytes(header(1, 0)).tensor("", {8}, F32, 0).pad(32).zeros(32).b,
                 "empty name"});
    c.push_back({"invalid UTF-8 tensor name",
                 Bytes(header(1, 0)).tensor("w\xFF", {8}, F32, 0).pad(32).zeros(32).b, "UTF-8"});
    c.push_back({"duplicate tensor name",
                 Bytes(header(2, 0)).tensor("w", {8}, F32, 0).tensor("w", {8}, F32, 32).pad(32).zeros(64).b,
                 "duplicate tensor name 'w'"});
    c.push_back({"overlapping tensors",
                 Bytes(header(2, 0)).tensor("a", {16}, F32, 0).tensor("b", {16}, F32, 32).pad(32).zeros(96).b,
                 "overlap"});
    c.push_back({"tensors at the same offset",
                 Bytes(header(2, 0)).tensor("a", {8}, F32, 32).tensor("b", {8}, F32, 32).pad(32).zeros(64).b,
                 "overlap"});
    c.push_back({"offset misaligned for a custom alignment",
                 Bytes(header(1, 1)).kv_u32("general.alignment", 64).tensor("w", {8}, F32, 32).pad(64).zeros(96).b,
                 "alignment 64"});
    return c;
}

TEST(GgufMalformed, EveryCaseThrowsError) {
    for (const BadCase& bc : bad_cases()) {
        SCOPED_TRACE(bc.what);
        // Copy into a buffer of exactly the file's length so ASan sees any over-read.
        std::unique_ptr<uint8_t[]> buf(new uint8_t[bc.bytes.size() + (bc.bytes.empty() ? 1 : 0)]);
        if (!bc.bytes.empty()) std::memcpy(buf.get(), bc.bytes.data(), bc.bytes.size());
        try {
            GgufFile::parse(buf.get(), bc.bytes.size(), "test.gguf");
            ADD_FAILURE() << "accepted a malformed file";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.rfind("test.gguf: ", 0), 0u) << msg;
            EXPECT_NE(msg.find(bc.needle), std::string::npos) << msg;
        } catch (const std::exception& e) {
            ADD_FAILURE() << "threw a non-pensieve exception: " << e.what();
        }
    }
}

// The well-formed neighbours of some malformed cases are accepted, so the checks above
// test what they claim to test.
TEST(GgufMalformed, ControlCasesAreAccepted) {
    EXPECT_NO_THROW(parse(one_tensor({8}, F32, 0, 32)));
    EXPECT_NO_THROW(parse(one_tensor({32}, Q8_0, 0, 34)));
    EXPECT_NO_THROW(parse(Bytes(header(2, 0)).tensor("a", {8}, F32, 32).tensor("b", {8}, F32, 0).pad(32).zeros(64).b));
    EXPECT_NO_THROW(parse(header(0, 1).kv_u32("general.alignment", 1).b));
    EXPECT_NO_THROW(parse(header(0, 1).kv_u32("ключ.✓", 1).b));
    Bytes deep = header(0, 1).str("k").u32(uint32_t(GgufType::ARRAY));
    for (int k = 0; k < 7; ++k) deep.u32(uint32_t(GgufType::ARRAY)).u64(1);
    deep.u32(uint32_t(GgufType::UINT8)).u64(1).u8(0);
    EXPECT_NO_THROW(parse(deep.b));   // 8 levels: the limit
}

TEST(GgufMalformed, EveryTruncationThrowsError) {
    const std::vector<uint8_t> full = small_valid_file();
    ASSERT_NO_THROW(parse(full));
    for (size_t n = 0; n < full.size(); ++n) {
        std::unique_ptr<uint8_t[]> buf(new uint8_t[n + 1]);
        std::memcpy(buf.get(), full.data(), n);
        EXPECT_THROW(GgufFile::parse(buf.get(), n, "cut.gguf"), Error) << "prefix of " << n << " bytes";
    }
}

// Single-byte corruptions of a valid file: anything may happen except a crash or a
// non-pensieve exception (a few flips land in tensor data and are still valid files).
TEST(GgufMalformed, ByteFlipsNeverCrash) {
    const std::vector<uint8_t> full = small_valid_file();
    for (size_t pos = 0; pos < full.size(); ++pos) {
        for (uint8_t x : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xFF)}) {
            std::vector<uint8_t> bad = full;
            bad[pos] ^= x;
            try {
                auto f = parse(bad);
                for (const GgufTensor& t : f->tensors()) ASSERT_LE(t.data + t.nbytes, bad.data() + bad.size());
            } catch (const Error&) {
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Fuzzer seed corpus (tests/fuzz/corpus/gguf). Always checked; written to the directory
// in $PENSIEVE_WRITE_FUZZ_CORPUS when that is set.

std::vector<std::pair<std::string, std::vector<uint8_t>>> fuzz_seeds() {
    std::vector<std::pair<std::string, std::vector<uint8_t>>> seeds;
    seeds.push_back({"minimal.gguf", GgufWriter().to_bytes()});
    {
        GgufWriter w(2);
        w.set("u8", scalar(GgufType::UINT8, 1));
        w.set("i8", scalar(GgufType::INT8, 0, -1));
        w.set("u16", scalar(GgufType::UINT16, 2));
        w.set("i16", scalar(GgufType::INT16, 0, -2));
        w.set_u32("u32", 3);
        w.set_i32("i32", -3);
        w.set_f32("f32", 0.5f);
        w.set_bool("bool", true);
        w.set_string("str", "value");
        w.set_u64("u64", 4);
        w.set("i64", scalar(GgufType::INT64, 0, -4));
        w.set("f64", scalar(GgufType::FLOAT64, 0, 0, 0.25));
        w.set_string_array("strs", {"a", "", "ü"});
        w.set("empty", array(GgufType::FLOAT32, {}));
        w.set("nested", array(GgufType::ARRAY, {array(GgufType::UINT16, {scalar(GgufType::UINT16, 5)}),
                                                array(GgufType::STRING, {})}));
        seeds.push_back({"v2-metadata.gguf", w.to_bytes()});
    }
    {
        GgufWriter w;
        w.set_string("general.architecture", "llama");
        w.set_u32("llama.embedding_length", 32);
        w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "▁a", "b"});
        w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0, -1, -2});
        w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
        const auto f32 = random_bytes(32 * 2 * 4, 11), f16 = random_bytes(32 * 2, 12);
        const auto q8 = random_bytes(34 * 3, 13), q4 = random_bytes(18 * 2, 14);
        const auto q4k = random_bytes(144, 15);
        w.add_tensor("token_embd.weight", {32, 2}, GgmlType::F32, f32.data(), f32.size());
        w.add_tensor("output_norm.weight", {32}, GgmlType::F16, f16.data(), f16.size());
        w.add_tensor("blk.0.attn_q.weight", {32, 3}, GgmlType::Q8_0, q8.data(), q8.size());
        w.add_tensor("blk.0.attn_k.weight", {32, 2}, GgmlType::Q4_0, q4.data(), q4.size());
        w.add_tensor("blk.0.ffn_up.weight", {256, 1, 1, 1}, GgmlType::Q4_K, q4k.data(), q4k.size());
        seeds.push_back({"model-tensors.gguf", w.to_bytes()});
    }
    {
        GgufWriter w(3, 64);
        const auto d = random_bytes(4 * 5, 16);
        w.add_tensor("a", {5}, GgmlType::F32, d.data(), d.size());
        w.add_tensor("b", {5}, GgmlType::F32, d.data(), d.size());
        seeds.push_back({"align64.gguf", w.to_bytes()});
    }
    seeds.push_back({"small.gguf", small_valid_file()});
    const std::vector<uint8_t> small = small_valid_file();
    seeds.push_back({"truncated-in-metadata.gguf", {small.begin(), small.begin() + 60}});
    seeds.push_back({"truncated-in-tensor-infos.gguf", {small.begin(), small.begin() + 260}});
    seeds.push_back({"truncated-in-data.gguf", {small.begin(), small.end() - 40}});
    return seeds;
}

TEST(GgufCorpus, SeedsAreSmallAndAsExpected) {
    const auto seeds = fuzz_seeds();
    for (const auto& [name, bytes] : seeds) {
        SCOPED_TRACE(name);
        EXPECT_LT(bytes.size(), 10u * 1024);
        if (name.rfind("truncated", 0) == 0)
            EXPECT_THROW(parse(bytes), Error);
        else
            EXPECT_NO_THROW(parse(bytes));
    }
    if (const char* dir = std::getenv("PENSIEVE_WRITE_FUZZ_CORPUS"); dir && *dir) {
        fs::create_directories(dir);
        for (const auto& [name, bytes] : seeds) {
            std::ofstream out(fs::path(dir) / name, std::ios::binary);
            out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
            ASSERT_TRUE(out.good()) << name;
        }
    }
}
