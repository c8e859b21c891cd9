// `pensieve pull URL`, `pensieve ls`, `pensieve rm NAME`: a models folder kept the way a
// local model manager keeps one, and served by `pensieve serve --models-dir` (the folder
// is $PENSIEVE_MODELS, else ~/.local/share/pensieve/models, unless --models-dir says).
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/model_download.h"
#include "server/model_catalog.h"
#include "util/error.h"

namespace pensieve {

namespace {

namespace fs = std::filesystem;

std::string default_models_dir() {
    if (const char* d = std::getenv("PENSIEVE_MODELS"); d && *d) return d;
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : ".") + "/.local/share/pensieve/models";
}

void add_dir_option(CLI::App& app, std::string& dir) {
    dir = default_models_dir();
    app.add_option("-o,--models-dir", dir, "The models folder ($PENSIEVE_MODELS)")->capture_default_str();
}

std::string size_text(uint64_t bytes) {
    char buf[32];
    if (bytes >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.1f GB", double(bytes) / 1e9);
    else std::snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / 1e6);
    return buf;
}

struct PullOptions {
    std::string url, dir, sha256;
    bool quiet = false;
};

int pull(const PullOptions& o) {
    DownloadRequest r{o.url, o.dir, o.sha256, !o.quiet};
    const DownloadResult d = download_model(r);
    if (d.already_there) {
        std::fprintf(stderr, "pensieve: %s is already there (%s)\n", d.path.c_str(), size_text(d.bytes).c_str());
    } else {
        std::fprintf(stderr, "pensieve: pulled %s (%s%s), sha256 %s\n", d.path.c_str(), size_text(d.bytes).c_str(),
                     d.resumed_from ? (", resumed after " + size_text(d.resumed_from)).c_str() : "", d.sha256.c_str());
    }
    std::printf("%s\n", d.path.c_str());
    return 0;
}

int list(const std::string& dir) {
    if (!fs::is_directory(dir)) {
        std::fprintf(stderr, "pensieve: no models folder at %s yet (pensieve pull URL makes it)\n", dir.c_str());
        return 0;
    }
    const server::ModelCatalog c = server::ModelCatalog::folder(dir);
    std::printf("%-40s %10s  %-12s %-8s %8s  %s\n", "NAME", "SIZE", "ARCH", "QUANT", "CONTEXT", "MODIFIED");
    for (const server::CatalogEntry& e : c.entries()) {
        char when[32];
        const std::time_t t = e.modified;
        std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", std::localtime(&t));
        std::string name = e.name;
        for (const std::string& a : e.aliases) name += " (" + a + ")";
        std::printf("%-40s %10s  %-12s %-8s %8lld  %s\n", name.c_str(), size_text(e.bytes).c_str(), e.architecture.c_str(),
                    e.quantization.c_str(), static_cast<long long>(e.context_length), when);
    }
    for (const server::SkippedFile& s : c.skipped()) std::printf("skipped %s: %s\n", s.path.c_str(), s.reason.c_str());
    for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
        const std::string n = e.path().filename().string();
        if (n.size() > 9 && n[0] == '.' && n.compare(n.size() - 8, 8, ".partial") == 0)
            std::printf("partial download %s (%s; pull again to resume)\n", n.substr(1, n.size() - 9).c_str(),
                        size_text(e.file_size()).c_str());
    }
    return 0;
}

int remove_models(const std::string& dir, const std::vector<std::string>& names) {
    const server::ModelCatalog c = server::ModelCatalog::folder(dir);
    for (const std::string& n : names) {
        server::CatalogEntry e;
        if (!c.find(n, e)) fail("no model \"", n, "\" in ", dir, " (pensieve ls lists them)");
    }
    for (const std::string& n : names) {
        server::CatalogEntry e;
        c.find(n, e);
        fs::remove(e.path);  // a link goes, not what it points at
        std::fprintf(stderr, "pensieve: removed %s\n", e.path.c_str());
    }
    return 0;
}

}  // namespace

Command add_pull_command(CLI::App& root) {
    auto o = std::make_shared<PullOptions>();
    CLI::App* app = root.add_subcommand("pull", "Download a GGUF model into the models folder (resumes, checks)");
    app->add_option("url", o->url, "http(s)://.../NAME.gguf, or hf://OWNER/REPO/NAME.gguf")->required();
    add_dir_option(*app, o->dir);
    app->add_option("--sha256", o->sha256, "Expected SHA-256 (hex); by default the server's, when it states one");
    app->add_flag("-q,--quiet", o->quiet, "No progress bar");
    return {app, [o] { return pull(*o); }};
}

Command add_ls_command(CLI::App& root) {
    auto dir = std::make_shared<std::string>();
    CLI::App* app = root.add_subcommand("ls", "List the models of the models folder");
    add_dir_option(*app, *dir);
    return {app, [dir] { return list(*dir); }};
}

Command add_rm_command(CLI::App& root) {
    auto dir = std::make_shared<std::string>();
    auto names = std::make_shared<std::vector<std::string>>();
    CLI::App* app = root.add_subcommand("rm", "Remove models from the models folder");
    app->add_option("names", *names, "Model names (as pensieve ls shows them)")->required();
    add_dir_option(*app, *dir);
    return {app, [dir, names] { return remove_models(*dir, *names); }};
}

}  // namespace pensieve
