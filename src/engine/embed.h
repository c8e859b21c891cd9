// Embeddings of whole texts: each tokenized input runs through the model as one sequence
// in a memory of its own (an encoder's tokens see the whole input, so it cannot be cut
// into chunks), and its last-layer vectors are pooled into one vector. Several inputs
// share a forward pass (one sequence each), so a request with many short texts costs a
// few passes, not one per text.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "model/model.h"

namespace pensieve {

class ThreadPool;

// Most tokens one input may have: the model's learned positions, or its training context.
int embedding_max_tokens(const Model& model);

// Throws Error for an input forward() would refuse: empty, longer than
// embedding_max_tokens, or token ids outside the vocabulary.
void check_embedding_input(const Model& model, const std::vector<int32_t>& tokens);

// Tokens in one pass of several inputs (a longer input still gets a pass of its own).
constexpr size_t kEncoderPassTokens = 4096;

// Consecutive groups [first, last) of inputs with these lengths, each at most max_tokens
// tokens in all (or a single input), in order.
std::vector<std::pair<size_t, size_t>> pass_groups(const std::vector<size_t>& lengths, size_t max_tokens);

// One forward pass over inputs[first, last), one sequence each at positions 0.., with
// their segments (types empty, or one list per input), in a memory of its own, holding
// the model's forward_mutex; `out` gets what it asks for (pooled, scores: per input).
void encode_pass(Model& model, ThreadPool& pool, const std::vector<std::vector<int32_t>>& inputs,
                 const std::vector<std::vector<int32_t>>& types, size_t first, size_t last, const ForwardOutputs& out);

// check_embedding_input for each; the Error names the input's index when there are several.
void check_embedding_inputs(const Model& model, const std::vector<std::vector<int32_t>>& inputs);

// The pooled vector (n_embd floats) of each input's tokens (special tokens included, as
// the tokenizer's add_special gives them), in order, input i pooled as poolings[i] (or
// all as poolings[0] when it has one entry). Throws Error as check_embedding_inputs.
std::vector<std::vector<float>> embed_inputs(Model& model, ThreadPool& pool,
                                             const std::vector<std::vector<int32_t>>& inputs,
                                             const std::vector<Pooling>& poolings);
inline std::vector<std::vector<float>> embed_inputs(Model& model, ThreadPool& pool,
                                                    const std::vector<std::vector<int32_t>>& inputs, Pooling pooling) {
    return embed_inputs(model, pool, inputs, std::vector<Pooling>{pooling});
}

// One input.
std::vector<float> embed_tokens(Model& model, ThreadPool& pool, const std::vector<int32_t>& tokens,
                                Pooling pooling);

// v / |v| (Euclidean); a zero vector stays zero.
void l2_normalize(std::vector<float>& v);

}  // namespace pensieve
