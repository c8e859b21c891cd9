// pensieve: run, serve and inspect GGUF language models on the CPU.
#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "kernels/cpu_features.h"
#include "util/error.h"

int main(int argc, char** argv) {
    using namespace pensieve;
    // The binary is built for x86-64-v3; say so plainly instead of dying on SIGILL later.
    if (!cpu_features().has_x86_64_v3()) {
        std::fprintf(stderr, "pensieve: error: this CPU lacks AVX2/FMA/F16C, which this build needs\n");
        return 1;
    }

    CLI::App app{"pensieve: local LLM inference on the CPU (GGUF models)", "pensieve"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "pensieve 0.1.0");
    std::vector<Command> commands = {
        add_run_command(app),      add_info_command(app),  add_tokenize_command(app),
        add_embed_command(app),
        add_perplexity_command(app), add_bench_command(app),
        add_template_command(app),
        add_serve_command(app),
        add_quantize_command(app),
        add_cache_command(app),
        add_pull_command(app), add_ls_command(app), add_rm_command(app),
    };

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // One line, then a hint; never a wall of usage text for a typo.
        std::fprintf(stderr, "pensieve: error: %s (see --help)\n", e.what());
        return 2;
    }

    try {
        for (const Command& c : commands)
            if (c.app->parsed()) return c.execute();
    } catch (const Error& e) {
        std::fprintf(stderr, "pensieve: error: %s\n", e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "pensieve: error: out of memory\n");
        return 1;
    }
    return 0;
}
