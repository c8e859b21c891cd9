// The `pensieve` subcommands. Each adds its own CLI11 subcommand and returns the action
// to run when it was chosen; main.cpp dispatches. Actions return the process exit code
// and may throw pensieve::Error (printed as one line by main).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace pensieve {

struct Command {
    CLI::App* app;
    std::function<int()> execute;
};

Command add_run_command(CLI::App& root);
Command add_info_command(CLI::App& root);
Command add_tokenize_command(CLI::App& root);
Command add_embed_command(CLI::App& root);
Command add_perplexity_command(CLI::App& root);
Command add_bench_command(CLI::App& root);
Command add_template_command(CLI::App& root);
Command add_serve_command(CLI::App& root);
Command add_quantize_command(CLI::App& root);
Command add_cache_command(CLI::App& root);
Command add_pull_command(CLI::App& root);
Command add_ls_command(CLI::App& root);
Command add_rm_command(CLI::App& root);

}  // namespace pensieve
