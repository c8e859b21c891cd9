// Embeddings of whole texts: a tokenized input runs through the model as one batch in a
// memory of its own (an encoder's tokens see the whole input, so it cannot be cut into
// chunks), and its last-layer vectors are pooled into one vector.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"

namespace pensieve {

class ThreadPool;

// Most tokens one input may have: the model's learned positions, or its training context.
int embedding_max_tokens(const Model& model);

// The pooled vector (n_embd floats) of one input's tokens (special tokens included, as
// the tokenizer's add_special gives them). Takes the model's forward_mutex for its pass.
// Throws Error for an empty input, one longer than embedding_max_tokens, or token ids
// outside the vocabulary.
std::vector<float> embed_tokens(Model& model, ThreadPool& pool, const std::vector<int32_t>& tokens,
                                Pooling pooling);

// v / |v| (Euclidean); a zero vector stays zero.
void l2_normalize(std::vector<float>& v);

}  // namespace pensieve
