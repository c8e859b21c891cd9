// POST /v1/embeddings (OpenAI): one vector per input of an embedding model (BERT), L2
// normalised as OpenAI's are (`"normalize": false`, our extension, gives the raw pooled
// vector), as JSON floats or base64 of little-endian float32 (`encoding_format`). A model
// that generates text has no embeddings here: 400. Requests arriving together share
// forward passes (engine/encoder_queue.h).
#include <algorithm>
#include <climits>
#include <cstring>

#include "engine/embed.h"
#include "server/json_fields.h"
#include "server/routes.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace pensieve::server {

namespace {

// OpenAI's own limit on inputs per request.
constexpr size_t kMaxInputs = 2048;

// `input`: a string, an array of strings, an array of token ids, or an array of arrays of
// token ids -> one token list per input (texts get the tokenizer's special tokens:
// [CLS] ... [SEP] for BERT).
std::vector<std::vector<int32_t>> parse_inputs(const json& body, const Tokenizer& tok) {
    const json* input = field(body, "input");
    if (!input) bad_request("input is required", "input");
    auto ids_of = [](const json& arr, const std::string& where) {
        std::vector<int32_t> ids;
        for (const json& v : arr) {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
                bad_request(where + " must hold token ids (non-negative integers)", "input");
            ids.push_back(int32_t(v.get<int64_t>()));
        }
        return ids;
    };
    std::vector<std::vector<int32_t>> out;
    if (input->is_string()) {
        out.push_back(tok.encode(input->get<std::string>(), true));
        return out;
    }
    if (!input->is_array() || input->empty())
        bad_request("input must be a string or a non-empty array of strings or token ids", "input");
    if (input->size() > kMaxInputs)
        bad_request("input has " + std::to_string(input->size()) + " items; at most " + std::to_string(kMaxInputs),
                    "input");
    if ((*input)[0].is_number()) {
        out.push_back(ids_of(*input, "input"));
        return out;
    }
    for (size_t i = 0; i < input->size(); ++i) {
        const json& item = (*input)[i];
        const std::string where = "input[" + std::to_string(i) + "]";
        if (item.is_string()) out.push_back(tok.encode(item.get<std::string>(), true));
        else if (item.is_array()) out.push_back(ids_of(item, where));
        else bad_request(where + " must be a string or an array of token ids, not " + json_type_name(item), "input");
    }
    return out;
}

std::string base64_of_floats(const std::vector<float>& v) {
    static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string bytes(v.size() * sizeof(float), '\0');
    std::memcpy(bytes.data(), v.data(), bytes.size());  // x86-64: already little-endian
    std::string out;
    for (size_t i = 0; i < bytes.size(); i += 3) {
        const size_t n = std::min<size_t>(3, bytes.size() - i);
        uint32_t w = 0;
        for (size_t j = 0; j < 3; ++j) w = (w << 8) | (j < n ? uint8_t(bytes[i + j]) : 0u);
        for (size_t j = 0; j < 4; ++j) out += j <= n ? kAlphabet[(w >> (18 - 6 * j)) & 63] : '=';
    }
    return out;
}

void embeddings(const httplib::Request& req, httplib::Response& res, Engine& e) {
    const ModelConfig& c = e.model.config();
    if (!c.embedding_only) throw ApiError(400, "this model does not produce embeddings", "model");
    const json body = parse_body(req.body);
    const std::string format = get_string(body, "encoding_format", "float");
    if (format != "float" && format != "base64")
        bad_request("encoding_format must be \"float\" or \"base64\"", "encoding_format");
    if (const auto dims = get_int(body, "dimensions", 1, INT32_MAX); dims && *dims != c.n_embd)
        bad_request("this model's embeddings have " + std::to_string(c.n_embd) + " dimensions; they cannot be " +
                        std::to_string(*dims), "dimensions");
    const bool normalize = get_bool(body, "normalize", true);
    const std::vector<std::vector<int32_t>> inputs = parse_inputs(body, e.tokenizer);

    std::vector<std::vector<float>> vectors;
    try {
        vectors = e.encoder.embed(inputs, c.pooling);  // "input[i]: ..." when several
    } catch (const Error& err) {
        bad_request((inputs.size() > 1 ? "" : "input: ") + std::string(err.what()), "input");
    }
    json data = json::array();
    int64_t n_tokens = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
        std::vector<float>& v = vectors[i];
        if (normalize) l2_normalize(v);
        n_tokens += int64_t(inputs[i].size());
        data.push_back({{"object", "embedding"},
                        {"index", i},
                        {"embedding", format == "base64" ? json(base64_of_floats(v)) : json(v)}});
    }
    write_json(res, {{"object", "list"},
                     {"data", std::move(data)},
                     {"model", e.model_id},
                     {"usage", {{"prompt_tokens", n_tokens}, {"total_tokens", n_tokens}}}});
}

}  // namespace

void register_embeddings_routes(Router& router, ServerContext& ctx) {
    router.post("/v1/embeddings", api_route(ctx, Dialect::OpenAI, embeddings));
    router.post("/embeddings", api_route(ctx, Dialect::OpenAI, embeddings));
}

}  // namespace pensieve::server
