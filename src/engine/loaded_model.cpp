#include "engine/loaded_model.h"

#include <cstdio>

#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/timer.h"

namespace pensieve {

LoadedModel::LoadedModel() = default;
LoadedModel::~LoadedModel() = default;
LoadedModel::LoadedModel(LoadedModel&&) noexcept = default;
LoadedModel& LoadedModel::operator=(LoadedModel&&) noexcept = default;

LoadedModel load_model_and_tokenizer(const std::string& path, int threads, bool quiet) {
    Timer timer;
    LoadedModel m;
    m.model = load_model(path);
    m.tokenizer = Tokenizer::from_gguf(m.model->file());
    if (m.tokenizer->n_vocab() != m.model->config().n_vocab)
        fail(path, ": the tokenizer has ", m.tokenizer->n_vocab(), " tokens but the model ",
             m.model->config().n_vocab);
    m.pool = std::make_unique<ThreadPool>(threads > 0 ? threads : default_thread_count());
    if (!quiet) {
        const ModelConfig& c = m.model->config();
        std::fprintf(stderr, "pensieve: loaded %s (%s, %d layers, dim %d, vocab %d) in %.2f s, %d threads\n",
                     path.c_str(), c.arch.c_str(), c.n_layer, c.n_embd, c.n_vocab, timer.seconds(),
                     m.pool->size());
    }
    return m;
}

}  // namespace pensieve
