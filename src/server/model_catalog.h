// What a models folder holds (`pensieve serve --models-dir DIR`): every `.gguf` in DIR and
// in its sub-folders one level down is a model, named by its file stem; DIR/models.json
// may add aliases and name the default:
//
//   {"aliases": {"llama3": "Meta-Llama-3-8B-Instruct-Q4_K_M", "gpt-4o": "qwen2.5-7b"},
//    "default": "llama3"}
//
// Each file's header is read once (and again when its size or time changes), so listing
// a folder of large models costs milliseconds. A file that is not a readable GGUF is left
// out with its reason in `skipped` (a half-written download never becomes a model).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace pensieve::server {

struct CatalogEntry {
    std::string name;                  // file stem ("sub/stem" when another folder has the stem)
    std::string path;
    std::vector<std::string> aliases;  // from models.json
    uint64_t bytes = 0;
    int64_t modified = 0;              // unix time of the file
    std::string architecture;          // general.architecture
    std::string quantization;          // the file type's mix ("Q4_K_M"), else the weights' main type
    int64_t context_length = 0;        // <arch>.context_length (0: not stated)
};

struct SkippedFile {
    std::string path;
    std::string reason;
};

class ModelCatalog {
public:
    // The folder's models; throws Error when DIR is not a readable folder or models.json is
    // malformed (at start-up; a later rescan keeps the previous aliases instead).
    static ModelCatalog folder(const std::string& dir);

    ModelCatalog() = default;
    ModelCatalog(ModelCatalog&& other) noexcept;
    ModelCatalog& operator=(ModelCatalog&& other) noexcept;

    // Reads the folder again: new files appear, removed ones go (no-op for an empty catalog).
    void rescan();

    // The entry a name or alias names (copy), or false.
    bool find(const std::string& name_or_alias, CatalogEntry& out) const;
    std::vector<CatalogEntry> entries() const;  // sorted by name
    std::vector<SkippedFile> skipped() const;
    std::vector<std::string> names() const;
    // The model for requests that name none: models.json's "default", else the only model.
    std::string default_name() const;

private:
    struct Cached {
        uint64_t bytes = 0;
        int64_t modified = 0;
        CatalogEntry entry;
        std::string error;  // not a usable GGUF
    };
    void scan_locked();

    std::string dir_;
    mutable std::mutex mutex_;
    std::map<std::string, Cached> by_path_;        // every .gguf seen, readable or not
    std::map<std::string, std::string> aliases_;   // alias -> name
    std::string default_;
    std::vector<CatalogEntry> entries_;            // readable ones, by name
};

// Reads one file's header into an entry (name left empty); throws Error when it is not a GGUF.
CatalogEntry describe_model_file(const std::string& path);

}  // namespace pensieve::server
