#include "server/model_catalog.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "convert/quantize_model.h"
#include "gguf/gguf.h"
#include "util/error.h"
#include "util/json.h"

namespace pensieve::server {

namespace fs = std::filesystem;

namespace {

int64_t unix_mtime(const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? int64_t(st.st_mtime) : 0;
}

// The weights' main type: the one holding the most bytes among matrices.
std::string main_weight_type(const GgufFile& f) {
    std::map<GgmlType, size_t> bytes;
    for (const GgufTensor& t : f.tensors())
        if (t.dims.size() >= 2) bytes[t.type] += t.nbytes;
    if (bytes.empty()) return "";
    auto best = std::max_element(bytes.begin(), bytes.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    return type_name(best->first);
}

struct Aliases {
    std::map<std::string, std::string> to_name;
    std::string default_name;
};

// DIR/models.json: {"aliases": {"alias": "name", ...}, "default": "name"}; absent: none.
Aliases read_aliases(const fs::path& dir) {
    Aliases a;
    const fs::path p = dir / "models.json";
    if (!fs::exists(p)) return a;
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    const json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail(p.string(), ": not a JSON object");
    if (j.contains("aliases")) {
        const json& al = j["aliases"];
        if (!al.is_object()) fail(p.string(), ": \"aliases\" must map alias names to model names");
        for (const auto& [alias, name] : al.items()) {
            if (!name.is_string()) fail(p.string(), ": alias \"", alias, "\" must name a model (a string)");
            a.to_name[alias] = name.get<std::string>();
        }
    }
    if (j.contains("default")) {
        if (!j["default"].is_string()) fail(p.string(), ": \"default\" must be a model name");
        a.default_name = j["default"].get<std::string>();
    }
    return a;
}

// NAME-00001-of-00003.gguf: the naming of split GGUF files.
bool is_split_part(const std::string& file) {
    static const std::regex split(R"(.*-\d{5}-of-\d{5}\.gguf)");
    return std::regex_match(file, split);
}

bool is_gguf(const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_regular_file(ec) && e.path().extension() == ".gguf";
}

// Every .gguf in dir and one level of sub-folders (hidden entries skipped: a download in
// progress is written under a hidden name).
std::vector<fs::path> gguf_files(const fs::path& dir) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name[0] == '.') continue;
        if (is_gguf(e)) {
            out.push_back(e.path());
        } else if (e.is_directory(ec)) {
            std::error_code sub_ec;
            for (const fs::directory_entry& s : fs::directory_iterator(e.path(), sub_ec))
                if (is_gguf(s) && s.path().filename().string()[0] != '.') out.push_back(s.path());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

CatalogEntry describe_model_file(const std::string& path) {
    const std::unique_ptr<GgufFile> f = GgufFile::open(path);
    CatalogEntry e;
    e.path = path;
    e.bytes = f->file_size();
    e.modified = unix_mtime(path);
    e.architecture = f->get_string("general.architecture", "");
    if (const GgufValue* ft = f->find("general.file_type"); ft && ft->is_integer())
        if (auto mix = quant_mix_of_file_type(uint32_t(ft->as_int()))) e.quantization = mix->name;
    if (e.quantization.empty()) e.quantization = main_weight_type(*f);
    if (const GgufValue* n = f->find(e.architecture + ".context_length"); n && n->is_integer()) e.context_length = n->as_int();
    return e;
}

ModelCatalog::ModelCatalog(ModelCatalog&& o) noexcept { *this = std::move(o); }

ModelCatalog& ModelCatalog::operator=(ModelCatalog&& o) noexcept {
    if (this == &o) return *this;
    std::scoped_lock lock(mutex_, o.mutex_);
    dir_ = std::move(o.dir_);
    by_path_ = std::move(o.by_path_);
    aliases_ = std::move(o.aliases_);
    default_ = std::move(o.default_);
    entries_ = std::move(o.entries_);
    return *this;
}

ModelCatalog ModelCatalog::folder(const std::string& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) fail(dir, ": not a folder (--models-dir)");
    ModelCatalog c;
    c.dir_ = dir;
    const Aliases a = read_aliases(dir);
    c.aliases_ = a.to_name;
    c.default_ = a.default_name;
    std::lock_guard<std::mutex> lock(c.mutex_);
    c.scan_locked();
    return c;
}

void ModelCatalog::rescan() {
    if (dir_.empty()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    try {
        const Aliases a = read_aliases(dir_);
        aliases_ = a.to_name;
        default_ = a.default_name;
    } catch (const Error& e) {
        std::fprintf(stderr, "pensieve: %s (keeping the aliases read before)\n", e.what());
    }
    scan_locked();
}

void ModelCatalog::scan_locked() {
    std::map<std::string, Cached> seen;
    for (const fs::path& p : gguf_files(dir_)) {
        std::error_code ec;
        const uint64_t bytes = fs::file_size(p, ec);
        if (ec) continue;  // gone since the listing
        const int64_t modified = unix_mtime(p);
        auto old = by_path_.find(p.string());
        if (old != by_path_.end() && old->second.bytes == bytes && old->second.modified == modified) {
            seen[p.string()] = old->second;
            continue;
        }
        Cached c;
        c.bytes = bytes;
        c.modified = modified;
        if (is_split_part(p.filename().string())) {
            c.error = "one part of a split GGUF; pensieve loads single files (merge the parts with the "
                      "reference tools' gguf-split --merge)";
        } else {
            try {
                c.entry = describe_model_file(p.string());
            } catch (const Error& e) {
                c.error = e.what();
            }
        }
        seen[p.string()] = std::move(c);
    }
    by_path_ = std::move(seen);

    // Names: the stem, or "folder/stem" for a sub-folder's file whose stem another file has.
    std::map<std::string, int> stem_count;
    for (const auto& [path, c] : by_path_)
        if (c.error.empty()) ++stem_count[fs::path(path).stem().string()];
    const fs::path root(dir_);
    entries_.clear();
    for (auto& [path, c] : by_path_) {
        if (!c.error.empty()) continue;
        const fs::path p(path);
        std::string name = p.stem().string();
        if (stem_count[name] > 1 && p.parent_path() != root) name = p.parent_path().filename().string() + "/" + name;
        c.entry.name = name;
        c.entry.aliases.clear();
        for (const auto& [alias, target] : aliases_)
            if (target == name) c.entry.aliases.push_back(alias);
        entries_.push_back(c.entry);
    }
    std::sort(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
}

bool ModelCatalog::find(const std::string& name_or_alias, CatalogEntry& out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string name = name_or_alias;
    if (auto a = aliases_.find(name); a != aliases_.end()) name = a->second;
    for (const CatalogEntry& e : entries_)
        if (e.name == name) {
            out = e;
            return true;
        }
    return false;
}

std::vector<CatalogEntry> ModelCatalog::entries() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_;
}

std::vector<SkippedFile> ModelCatalog::skipped() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<SkippedFile> out;
    for (const auto& [path, c] : by_path_)
        if (!c.error.empty()) out.push_back({path, c.error});
    return out;
}

std::vector<std::string> ModelCatalog::names() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    for (const CatalogEntry& e : entries_) out.push_back(e.name);
    return out;
}

std::string ModelCatalog::default_name() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!default_.empty()) {
        auto a = aliases_.find(default_);
        return a != aliases_.end() ? a->second : default_;
    }
    return entries_.size() == 1 ? entries_[0].name : "";
}

}  // namespace pensieve::server
