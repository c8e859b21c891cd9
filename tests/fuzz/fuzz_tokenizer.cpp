// libFuzzer target for the tokenizers: the first byte picks one of the vocabularies in
// ../shared/vocab (plus stories260K) and the encoding flags, the rest is text (any
// bytes, invalid UTF-8 included). Encoding must give ids in the vocabulary; decoding
// them and spelling each token must not crash.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "fuzz_common.h"

using namespace pensieve;

namespace {

std::vector<fuzz::LoadedTokenizer> all_tokenizers() {
    std::vector<std::string> names = {"models/stories260K.gguf"};
    std::vector<std::string> vocabs;
    for (const auto& e : std::filesystem::directory_iterator(shared_dir() + "/vocab"))
        if (e.path().extension() == ".gguf") vocabs.push_back("vocab/" + e.path().filename().string());
    std::sort(vocabs.begin(), vocabs.end());
    names.insert(names.end(), vocabs.begin(), vocabs.end());
    std::vector<fuzz::LoadedTokenizer> out;
    for (const std::string& n : names) {
        try {
            out.push_back(fuzz::load_tokenizer(n));
        } catch (const Error& e) {
            std::fprintf(stderr, "fuzz_tokenizer: skipping %s: %s\n", n.c_str(), e.what());
        }
    }
    return out;
}

std::vector<fuzz::LoadedTokenizer> toks;

}  // namespace

// Loading every vocabulary takes > 10 s under ASan: done here, outside libFuzzer's
// per-input timeout (it used to count against the first input and fail as a timeout).
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    toks = all_tokenizers();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0 || toks.empty()) return 0;
    const Tokenizer& tok = *toks[(data[0] >> 2) % toks.size()].tokenizer;
    const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    fuzz::expect_clean([&] {
        const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/data[0] & 1, /*parse_special=*/data[0] & 2);
        for (int32_t id : ids) {
            if (id < 0 || id >= tok.n_vocab()) abort();
            tok.token_to_piece(id);
        }
        tok.decode(ids);
    });
    return 0;
}
