// A model ready to run: its weights (mmap), its tokenizer and a thread pool for its passes.
// Every command that runs a model loads one; the server loads one per model it serves.
#pragma once

#include <memory>
#include <string>

namespace pensieve {

class Model;
class Tokenizer;
class ThreadPool;

struct LoadedModel {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<ThreadPool> pool;
    ~LoadedModel();
    LoadedModel();
    LoadedModel(LoadedModel&&) noexcept;
    LoadedModel& operator=(LoadedModel&&) noexcept;
    explicit operator bool() const { return model != nullptr; }
};

// Loads model + tokenizer (throws Error naming the file when either is unusable) and
// starts a pool of `threads` threads (0: one per core). Prints a one-line summary on
// stderr unless quiet.
LoadedModel load_model_and_tokenizer(const std::string& path, int threads, bool quiet = false);

}  // namespace pensieve
