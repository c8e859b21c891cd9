// `pensieve pull`: one GGUF file over HTTP(S) into a models folder, as a local model
// manager does it. The bytes go to a hidden `.NAME.partial` beside the target (the server's
// catalog skips hidden files), an interrupted download resumes from there (HTTP Range),
// and only a file whose size, SHA-256 (when known) and GGUF header check out is renamed
// to NAME: a half or damaged file is never served.
#pragma once

#include <cstdint>
#include <string>

namespace pensieve {

struct DownloadRequest {
    std::string url;     // http(s)://host/path/NAME.gguf, or hf://OWNER/REPO/PATH/NAME.gguf
    std::string dir;     // the models folder (created if missing)
    std::string sha256;  // expected checksum, hex (empty: the server's, if it offers one)
    bool progress = true;
};

struct DownloadResult {
    std::string path;       // the model file, in place
    uint64_t bytes = 0;
    std::string sha256;     // of the whole file
    uint64_t resumed_from = 0;  // bytes already there from an earlier, interrupted run
    bool already_there = false;
};

// Throws Error with what went wrong and what is left: an interrupted transfer keeps the
// partial file (run again to resume); a checksum or format failure removes it.
DownloadResult download_model(const DownloadRequest& request);

// hf://OWNER/REPO/PATH -> https://huggingface.co/OWNER/REPO/resolve/main/PATH; other URLs as given.
std::string expand_model_url(const std::string& url);

// SHA-256 of a file's bytes, lowercase hex.
std::string sha256_of_file(const std::string& path);

}  // namespace pensieve
