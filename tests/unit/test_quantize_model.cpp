// `pensieve quantize`: the per-tensor type rules against files made by the reference
// GGUF quantizer, byte equality of the converted data, the streaming writer, errors.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <sys/wait.h>
#include <unistd.h>

#include "convert/quantize_model.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "test_paths.h"
#include "util/error.h"
#include "util/fp16.h"
#include "util/thread_pool.h"

namespace fs = std::filesystem;
using namespace pensieve;

namespace {

const std::string kModels = shared_dir() + "/models";
const std::string kTinyF16 = kModels + "/synth-tiny-F16.gguf";

// A fresh directory per test, removed at the end.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "pensieve-quantize-XXXXXX").string();
        path = mkdtemp(tmpl.data());
    }
    ~TempDir() { fs::remove_all(path); }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

QuantMix mix(const char* name) {
    auto m = quant_mix_from_name(name);
    if (!m) throw std::runtime_error(std::string("no mix ") + name);
    return *m;
}

std::string quantize(const std::string& in_path, const std::string& out_path, const char* type, int threads = 2) {
    auto in = GgufFile::open(in_path);
    const QuantizePlan plan = plan_quantization(*in, mix(type));
    ThreadPool pool(threads);
    write_quantized(*in, plan, out_path, pool);
    return out_path;
}

// --- mixes -------------------------------------------------------------------------

TEST(QuantizeMix, NamesAreCaseInsensitiveWithAliases) {
    EXPECT_EQ(uint32_t(mix("q4_k_m").ftype), 15u);
    EXPECT_EQ(mix("Q4_K_M").default_type, GgmlType::Q4_K);
    EXPECT_STREQ(mix("Q4_K").name, "Q4_K_M");
    EXPECT_STREQ(mix("q3_k").name, "Q3_K_M");
    EXPECT_EQ(uint32_t(mix("Q4_0").ftype), 2u);
    EXPECT_EQ(uint32_t(mix("Q8_0").ftype), 7u);
    EXPECT_EQ(uint32_t(mix("TQ2_0").ftype), 37u);
    EXPECT_EQ(uint32_t(mix("TQ1_0").ftype), 36u);
    EXPECT_EQ(uint32_t(mix("BF16").ftype), 32u);
    EXPECT_EQ(uint32_t(mix("F32").ftype), 0u);
    EXPECT_EQ(uint32_t(mix("IQ4_NL").ftype), 25u);
    EXPECT_FALSE(quant_mix_from_name("Q4_K_X"));
    EXPECT_FALSE(quant_mix_from_name(""));
    const std::string names = quant_mix_names();
    for (const char* n : {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M",
                          "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "TQ1_0", "TQ2_0"}) {
        EXPECT_NE(names.find(n), std::string::npos) << n;
        // Every mix's types can actually be produced.
        const QuantMix m = mix(n);
        EXPECT_NE(type_traits(m.default_type).from_float, nullptr) << n;
    }
}

// --- against the reference quantizer's files ----------------------------------------------

class ReferenceMix : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceMix, SameTypesAndBytesAsReferenceTool) {
    const char* type = GetParam();
    TempDir dir;
    const std::string out_path = quantize(kTinyF16, dir.file("out.gguf"), type);
    auto in = GgufFile::open(kTinyF16);
    auto ours = GgufFile::open(out_path);
    auto ref = GgufFile::open(kModels + "/synth-tiny-" + type + ".gguf");

    EXPECT_FALSE(fs::exists(out_path + ".tmp"));
    EXPECT_EQ(ours->get_int("general.file_type"), ref->get_int("general.file_type"));
    EXPECT_EQ(ours->get_int("general.quantization_version"), 2);
    EXPECT_EQ(ours->alignment(), in->alignment());
    // Every other key copied unchanged, in order.
    ASSERT_EQ(ours->metadata().size(), in->metadata().size() + 1);  // + quantization_version
    for (size_t i = 0; i < in->metadata().size(); ++i) EXPECT_EQ(ours->metadata()[i].first, in->metadata()[i].first);

    // Tensor order as in the input (the reference tool sorts by layer; order is free in GGUF).
    ASSERT_EQ(ours->tensors().size(), in->tensors().size());
    for (size_t i = 0; i < in->tensors().size(); ++i) EXPECT_EQ(ours->tensors()[i].name, in->tensors()[i].name);

    ASSERT_EQ(ours->tensors().size(), ref->tensors().size());
    for (const GgufTensor& r : ref->tensors()) {
        const GgufTensor* t = ours->find_tensor(r.name);
        ASSERT_NE(t, nullptr) << r.name;
        EXPECT_EQ(type_name(t->type), std::string(type_name(r.type))) << r.name;
        EXPECT_EQ(t->dims, r.dims) << r.name;
        ASSERT_EQ(t->nbytes, r.nbytes) << r.name;
        EXPECT_EQ(std::memcmp(t->data, r.data, r.nbytes), 0) << r.name << " (" << type_name(r.type) << ") bytes differ";
    }
    // Same data, so the same size up to tensor-order padding.
    EXPECT_NEAR(double(ours->file_size()), double(ref->file_size()), 32.0 * double(ref->tensors().size()));

    // And it loads as a model.
    EXPECT_NO_THROW(load_model(out_path));
}

INSTANTIATE_TEST_SUITE_P(SynthTiny, ReferenceMix, ::testing::Values("Q8_0", "Q4_0", "Q4_K_M", "TQ2_0"));

TEST(Quantize, ThreadCountDoesNotChangeBytes) {
    TempDir dir;
    quantize(kTinyF16, dir.file("a.gguf"), "Q4_K_M", 1);
    quantize(kTinyF16, dir.file("b.gguf"), "Q4_K_M", 3);
    auto a = GgufFile::open(dir.file("a.gguf"));
    auto b = GgufFile::open(dir.file("b.gguf"));
    ASSERT_EQ(a->file_size(), b->file_size());
    for (size_t i = 0; i < a->tensors().size(); ++i)
        EXPECT_EQ(std::memcmp(a->tensors()[i].data, b->tensors()[i].data, a->tensors()[i].nbytes), 0);
}

TEST(Quantize, RequantizingIsFlaggedAndSameTypeIsCopied) {
    auto q8 = GgufFile::open(kModels + "/synth-tiny-Q8_0.gguf");
    const QuantizePlan to_q4 = plan_quantization(*q8, mix("Q4_0"));
    EXPECT_EQ(to_q4.n_requantize, 30);  // every matrix
    const QuantizePlan to_q8 = plan_quantization(*q8, mix("Q8_0"));
    EXPECT_EQ(to_q8.n_convert, 0);      // already Q8_0: bytes copied
    EXPECT_EQ(to_q8.n_requantize, 0);

    TempDir dir;
    quantize(kModels + "/synth-tiny-Q8_0.gguf", dir.file("q4.gguf"), "Q4_0");
    auto out = GgufFile::open(dir.file("q4.gguf"));
    EXPECT_EQ(out->tensor("blk.0.attn_q.weight").type, GgmlType::Q4_0);
    EXPECT_EQ(out->tensor("output.weight").type, GgmlType::Q6_K);
    EXPECT_NO_THROW(load_model(dir.file("q4.gguf")));
}

TEST(Quantize, FloatMixesConvertOnlyMatrices) {
    auto in = GgufFile::open(kTinyF16);
    for (const char* type : {"F32", "BF16"}) {
        const QuantizePlan plan = plan_quantization(*in, mix(type));
        for (const TensorPlan& p : plan.tensors) {
            if (p.tensor->dims.size() == 1) EXPECT_EQ(p.type, GgmlType::F32) << p.tensor->name;
            else EXPECT_EQ(type_name(p.type), std::string(type)) << p.tensor->name;
        }
    }
    EXPECT_EQ(plan_quantization(*in, mix("F16")).n_convert, 0);
}

TEST(Quantize, MoeRouterStaysAndExpertsConvert) {
    auto in = GgufFile::open(kModels + "/synth-moe-tiny-Q8_0.gguf");
    const QuantizePlan plan = plan_quantization(*in, mix("Q4_K_M"));
    for (const TensorPlan& p : plan.tensors) {
        const std::string& n = p.tensor->name;
        if (n.find("ffn_gate_inp") != std::string::npos) {
            EXPECT_FALSE(p.convert) << n;
        } else if (n.find("attn_v.weight") != std::string::npos || n.find("attn_k.weight") != std::string::npos) {
            EXPECT_EQ(p.type, GgmlType::Q8_0) << n;  // 8-expert models keep K/V at Q8_0
        } else if (n.find("attn_output") != std::string::npos) {
            EXPECT_EQ(p.type, GgmlType::Q5_K) << n;
        } else if (n.find("ffn_gate_exps") != std::string::npos) {
            EXPECT_EQ(p.type, GgmlType::Q4_K) << n;
        }
    }
}

// --- rules on small synthetic models ----------------------------------------------------

// A LLaMA-like file with random F16 matrices: n_layer layers, embedding `dim`, FFN `ffn`.
std::vector<uint8_t> synthetic_model(int n_layer, int64_t dim, int64_t ffn, bool with_output) {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.block_count", uint32_t(n_layer));
    w.set_u32("llama.attention.head_count", 8);
    w.set_u32("llama.attention.head_count_kv", 8);
    std::mt19937 rng(7);
    std::normal_distribution<float> dist(0.0f, 0.02f);
    auto add = [&](const std::string& name, std::vector<int64_t> dims, GgmlType type) {
        int64_t n = 1;
        for (int64_t d : dims) n *= d;
        std::vector<uint8_t> bytes(size_t(n) * (type == GgmlType::F32 ? 4 : 2));
        for (int64_t i = 0; i < n; ++i) {
            const float v = dist(rng);
            if (type == GgmlType::F32) std::memcpy(&bytes[size_t(i) * 4], &v, 4);
            else {
                const fp16_t h = fp32_to_fp16(v);
                std::memcpy(&bytes[size_t(i) * 2], &h, 2);
            }
        }
        w.add_tensor(name, dims, type, bytes.data(), bytes.size());
    };
    add("token_embd.weight", {dim, 64}, GgmlType::F16);
    for (int l = 0; l < n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add(p + "attn_norm.weight", {dim}, GgmlType::F32);
        add(p + "attn_q.weight", {dim, dim}, GgmlType::F16);
        add(p + "attn_k.weight", {dim, dim}, GgmlType::F16);
        add(p + "attn_v.weight", {dim, dim}, GgmlType::F16);
        add(p + "attn_output.weight", {dim, dim}, GgmlType::F16);
        add(p + "ffn_gate.weight", {dim, ffn}, GgmlType::F16);
        add(p + "ffn_down.weight", {ffn, dim}, GgmlType::F16);
    }
    add("output_norm.weight", {dim}, GgmlType::F32);
    if (with_output) add("output.weight", {dim, 64}, GgmlType::F16);
    return w.to_bytes();
}

GgmlType planned(const QuantizePlan& plan, const std::string& name) {
    for (const TensorPlan& p : plan.tensors)
        if (p.tensor->name == name) return p.type;
    throw std::runtime_error("no tensor " + name);
}

TEST(QuantizeRules, UseMoreBitsLayersIn32LayerModel) {
    const auto bytes = synthetic_model(32, 256, 512, true);
    auto f = GgufFile::parse(bytes.data(), bytes.size());
    const QuantizePlan q4km = plan_quantization(*f, mix("Q4_K_M"));
    // Layers 0-3 and 28-31, and every third layer from 6 (i - 4) % 3 == 2.
    for (int l = 0; l < 32; ++l) {
        const bool more = l < 4 || l >= 28 || (l - 4) % 3 == 2;
        const std::string p = "blk." + std::to_string(l) + ".";
        EXPECT_EQ(planned(q4km, p + "attn_v.weight"), more ? GgmlType::Q6_K : GgmlType::Q4_K) << l;
        EXPECT_EQ(planned(q4km, p + "ffn_down.weight"), more ? GgmlType::Q6_K : GgmlType::Q4_K) << l;
        EXPECT_EQ(planned(q4km, p + "attn_q.weight"), GgmlType::Q4_K) << l;
        EXPECT_EQ(planned(q4km, p + "attn_norm.weight"), GgmlType::F32) << l;
    }
    EXPECT_EQ(planned(q4km, "output.weight"), GgmlType::Q6_K);
    EXPECT_EQ(planned(q4km, "token_embd.weight"), GgmlType::Q4_K);
    EXPECT_EQ(q4km.n_fallback, 0);

    const QuantizePlan q4ks = plan_quantization(*f, mix("Q4_K_S"));
    EXPECT_EQ(planned(q4ks, "blk.3.attn_v.weight"), GgmlType::Q5_K);
    EXPECT_EQ(planned(q4ks, "blk.4.attn_v.weight"), GgmlType::Q4_K);
    EXPECT_EQ(planned(q4ks, "blk.3.ffn_down.weight"), GgmlType::Q5_K);
    EXPECT_EQ(planned(q4ks, "blk.4.ffn_down.weight"), GgmlType::Q4_K);

    const QuantizePlan q3km = plan_quantization(*f, mix("Q3_K_M"));
    EXPECT_EQ(planned(q3km, "blk.1.attn_v.weight"), GgmlType::Q5_K);
    EXPECT_EQ(planned(q3km, "blk.2.attn_v.weight"), GgmlType::Q4_K);
    EXPECT_EQ(planned(q3km, "blk.1.ffn_down.weight"), GgmlType::Q5_K);
    EXPECT_EQ(planned(q3km, "blk.2.ffn_down.weight"), GgmlType::Q4_K);
    EXPECT_EQ(planned(q3km, "blk.2.attn_output.weight"), GgmlType::Q4_K);
    EXPECT_EQ(planned(q3km, "blk.2.attn_q.weight"), GgmlType::Q3_K);

    const QuantizePlan q2k = plan_quantization(*f, mix("Q2_K"));
    EXPECT_EQ(planned(q2k, "blk.9.attn_v.weight"), GgmlType::Q3_K);  // n_gqa 1 < 4
    EXPECT_EQ(planned(q2k, "blk.9.ffn_down.weight"), GgmlType::Q3_K);
    EXPECT_EQ(planned(q2k, "blk.9.attn_output.weight"), GgmlType::Q3_K);
    EXPECT_EQ(planned(q2k, "blk.9.attn_q.weight"), GgmlType::Q2_K);
}

TEST(QuantizeRules, FallbacksForRowsThatDoNotFit256) {
    // dim 256, FFN 704: ffn_down rows hold 704 values, not a multiple of 256.
    const auto bytes = synthetic_model(8, 256, 704, true);
    auto f = GgufFile::parse(bytes.data(), bytes.size());
    EXPECT_EQ(planned(plan_quantization(*f, mix("Q4_K_S")), "blk.5.ffn_down.weight"), GgmlType::Q5_0);
    EXPECT_EQ(planned(plan_quantization(*f, mix("Q4_K_S")), "blk.0.ffn_down.weight"), GgmlType::Q5_1);  // Q5_K
    EXPECT_EQ(planned(plan_quantization(*f, mix("Q6_K")), "blk.5.ffn_down.weight"), GgmlType::Q8_0);
    EXPECT_EQ(planned(plan_quantization(*f, mix("Q3_K_S")), "blk.5.ffn_down.weight"), GgmlType::IQ4_NL);
    EXPECT_EQ(planned(plan_quantization(*f, mix("TQ1_0")), "blk.5.ffn_down.weight"), GgmlType::Q4_0);
    EXPECT_EQ(planned(plan_quantization(*f, mix("Q4_0")), "blk.5.ffn_down.weight"), GgmlType::Q4_0);
    EXPECT_EQ(plan_quantization(*f, mix("Q4_K_S")).n_fallback, 8);
}

TEST(QuantizeRules, TiedEmbeddingsGetOutputTreatment) {
    const auto bytes = synthetic_model(2, 256, 512, /*with_output=*/false);
    auto f = GgufFile::parse(bytes.data(), bytes.size());
    EXPECT_EQ(planned(plan_quantization(*f, mix("Q4_0")), "token_embd.weight"), GgmlType::Q6_K);
    EXPECT_EQ(planned(plan_quantization(*f, mix("Q8_0")), "token_embd.weight"), GgmlType::Q8_0);
    EXPECT_EQ(planned(plan_quantization(*f, mix("TQ2_0")), "token_embd.weight"), GgmlType::Q6_K);
}

// --- errors ---------------------------------------------------------------------------

TEST(QuantizeErrors, MissingInput) {
    EXPECT_THROW(GgufFile::open("/nonexistent/model.gguf"), Error);
}

TEST(QuantizeErrors, UnconvertibleTensorType) {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    std::vector<uint8_t> raw(66 * 4, 0);  // 4 rows of one IQ2_XXS block (no dequantizer here)
    w.add_tensor("blk.0.attn_q.weight", {256, 4}, GgmlType::IQ2_XXS, raw.data(), raw.size());
    const auto bytes = w.to_bytes();
    auto f = GgufFile::parse(bytes.data(), bytes.size());
    try {
        plan_quantization(*f, mix("Q4_0"));
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("IQ2_XXS"), std::string::npos) << e.what();
    }
}

TEST(QuantizeErrors, UnwritableOutputLeavesNothing) {
    TempDir dir;
    const std::string out = dir.file("no/such/dir/out.gguf");
    EXPECT_THROW(quantize(kTinyF16, out, "Q4_0"), Error);
    EXPECT_FALSE(fs::exists(out));
}

TEST(QuantizeErrors, FailingProducerLeavesNoFile) {
    TempDir dir;
    GgufWriter w;
    std::vector<uint8_t> ok(64, 1);
    w.add_tensor("a", {16}, GgmlType::F32, ok.data(), ok.size());
    w.add_tensor("b", {16}, GgmlType::F32, 64, [](uint8_t*) { throw Error("boom"); });
    EXPECT_THROW(w.write(dir.file("x.gguf")), Error);
    EXPECT_FALSE(fs::exists(dir.file("x.gguf")));
    EXPECT_FALSE(fs::exists(dir.file("x.gguf.tmp")));
}

TEST(GgufWriterStreaming, ProducedTensorsMatchCopiedOnes) {
    std::vector<uint8_t> data(48 * 4);
    for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i * 7);
    GgufWriter a, b;
    a.add_tensor("t", {16, 3}, GgmlType::F32, data.data(), data.size());
    a.add_tensor("u", {16}, GgmlType::F32, data.data(), 64);
    b.add_tensor("t", {16, 3}, GgmlType::F32, data.size(), [&](uint8_t* out) { std::memcpy(out, data.data(), data.size()); });
    b.add_tensor("u", {16}, GgmlType::F32, 64, [&](uint8_t* out) { std::memcpy(out, data.data(), 64); });
    EXPECT_EQ(a.to_bytes(), b.to_bytes());
    TempDir dir;
    b.write(dir.file("b.gguf"));
    auto f = GgufFile::open(dir.file("b.gguf"));
    EXPECT_EQ(std::memcmp(f->tensor("t").data, data.data(), data.size()), 0);
    // Size checks apply to produced tensors too.
    EXPECT_THROW(b.add_tensor("v", {16}, GgmlType::F32, 60, [](uint8_t*) {}), Error);
}

// --- the command line (optional: needs the built binary) ----------------------------------

struct CliRun {
    int status;
    std::string out;
};

CliRun run_cli(const std::string& args) {
    const char* bin = std::getenv("PENSIEVE_BIN");
    const std::string cmd = std::string(bin ? bin : PENSIEVE_SOURCE_DIR "/build/pensieve") + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    CliRun r{-1, ""};
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

bool have_binary() {
    const char* bin = std::getenv("PENSIEVE_BIN");
    return fs::exists(bin ? bin : PENSIEVE_SOURCE_DIR "/build/pensieve");
}

TEST(QuantizeCli, ErrorsAreOneLineExit1) {
    if (!have_binary()) GTEST_SKIP() << "pensieve binary not built";
    TempDir dir;
    const std::string out = dir.file("o.gguf");
    for (const std::string& args : {"quantize " + kTinyF16 + " " + out + " Q4_K_X",
                                    "quantize /nonexistent/in.gguf " + out + " Q4_0",
                                    "quantize " + kTinyF16 + " " + dir.file("no/dir/o.gguf") + " Q4_0"}) {
        const CliRun r = run_cli(args);
        EXPECT_EQ(r.status, 1) << args << "\n" << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
        EXPECT_NE(r.out.find("error"), std::string::npos) << r.out;
    }
    EXPECT_NE(run_cli("quantize " + kTinyF16 + " " + out + " bogus").out.find("Q4_K_M"), std::string::npos);
    EXPECT_FALSE(fs::exists(out));
}

TEST(QuantizeCli, QuantizesAndReports) {
    if (!have_binary()) GTEST_SKIP() << "pensieve binary not built";
    TempDir dir;
    const CliRun r = run_cli("quantize " + kTinyF16 + " " + dir.file("o.gguf") + " q4_k_m -t 2");
    EXPECT_EQ(r.status, 0) << r.out;
    auto f = GgufFile::open(dir.file("o.gguf"));
    EXPECT_EQ(f->get_int("general.file_type"), 15);
}

}  // namespace
