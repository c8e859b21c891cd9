// `pensieve quantize IN.gguf OUT.gguf TYPE [-t THREADS]`: convert a model's weights to
// another GGUF type mix (Q4_K_M, Q8_0, TQ2_0, ...), with the reference tool's rules.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/progress.h"
#include "convert/quantize_model.h"
#include "gguf/gguf.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace pensieve {

namespace {

struct QuantizeOptions {
    std::string input;
    std::string output;
    std::string type;
    int threads = 0;
};

double mib(uint64_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

int run_quantize(const QuantizeOptions& o) {
    // The type first: a typo should not cost opening a multi-gigabyte file.
    const std::optional<QuantMix> mix = quant_mix_from_name(o.type);
    if (!mix) fail("unknown quantization type '", o.type, "' (valid: ", quant_mix_names(), ")");

    // Likewise an output that cannot be written (the writer would also refuse, atomically).
    const std::filesystem::path dir = std::filesystem::path(o.output).parent_path();
    const std::string dir_name = dir.empty() ? "." : dir.string();
    if (::access(dir_name.c_str(), W_OK) != 0)
        fail(o.output, ": cannot write to directory ", dir_name, ": ", std::strerror(errno));

    Timer timer;
    const std::unique_ptr<GgufFile> in = GgufFile::open(o.input);
    const QuantizePlan plan = plan_quantization(*in, *mix);
    if (plan.n_requantize > 0)
        std::fprintf(stderr,
                     "pensieve: warning: %d tensors are already quantized; requantizing them loses quality "
                     "(quantize from an F32/F16/BF16 file when you can)\n",
                     plan.n_requantize);
    if (plan.n_fallback > 0)
        std::fprintf(stderr,
                     "pensieve: note: %d tensors have rows that do not fit %s blocks and use a fallback type\n",
                     plan.n_fallback, type_name(mix->default_type));

    ThreadPool pool(o.threads > 0 ? o.threads : default_thread_count());
    std::fprintf(stderr, "pensieve: quantizing %s (%.2f MiB, %zu tensors) to %s with %d threads\n",
                 o.input.c_str(), mib(in->file_size()), in->tensors().size(), mix->name, pool.size());
    ProgressBar bar("quantize");
    write_quantized(*in, plan, o.output, pool, [&](size_t done, size_t total, const TensorPlan& p) {
        bar.update(long(done), long(total),
                   cat(p.tensor->name, " ", type_name(p.tensor->type), " -> ", type_name(p.type)));
    });
    bar.finish();

    const std::unique_ptr<GgufFile> out = GgufFile::open(o.output);  // also checks what we wrote
    std::printf("%s: %.2f MiB -> %s: %.2f MiB (%s, %d of %zu tensors converted) in %.2f s\n",
                o.input.c_str(), mib(in->file_size()), o.output.c_str(), mib(out->file_size()), mix->name,
                plan.n_convert, plan.tensors.size(), timer.seconds());
    return 0;
}

}  // namespace

Command add_quantize_command(CLI::App& root) {
    auto o = std::make_shared<QuantizeOptions>();
    CLI::App* app = root.add_subcommand("quantize", "Convert a GGUF model to another weight type mix");
    app->add_option("input", o->input, "Input GGUF file (F32/F16/BF16, or quantized: requantizing loses quality)")
        ->required();
    app->add_option("output", o->output, "Output GGUF file (written atomically)")->required();
    app->add_option("type", o->type, "Type mix: " + quant_mix_names())->required();
    app->add_option("-t,--threads", o->threads, "Threads (0: one per core)")->check(CLI::Range(0, 256));
    return {app, [o] { return run_quantize(*o); }};
}

}  // namespace pensieve
