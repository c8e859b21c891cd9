#include "cli/model_download.h"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <httplib.h>

#include "cli/progress.h"
#include "gguf/gguf.h"
#include "util/error.h"

namespace pensieve {

namespace fs = std::filesystem;

namespace {

struct Url {
    std::string origin;  // scheme://host[:port]
    std::string path;    // /... with the query
};

Url split_url(const std::string& url) {
    const size_t scheme_end = url.find("://");
    if (scheme_end == std::string::npos) fail(url, ": not a URL (expected http://, https:// or hf://)");
    const std::string scheme = url.substr(0, scheme_end);
    if (scheme != "http" && scheme != "https") fail(url, ": only http://, https:// and hf:// URLs can be pulled");
    const size_t path_start = url.find('/', scheme_end + 3);
    Url u;
    u.origin = url.substr(0, path_start);
    u.path = path_start == std::string::npos ? "/" : url.substr(path_start);
    return u;
}

// The file name a URL ends with (query and fragment dropped).
std::string file_name_of(const std::string& url) {
    std::string path = split_url(url).path;
    path = path.substr(0, path.find_first_of("?#"));
    const size_t slash = path.find_last_of('/');
    return httplib::detail::decode_url(path.substr(slash + 1), false);
}

bool is_sha256_hex(std::string s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

std::string lower(std::string s) {
    for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// A checksum the server states: Hugging Face sends a large file's SHA-256 as the
// X-Linked-Etag of its redirect (and as the ETag of the file itself).
std::string offered_sha256(const httplib::Response& r) {
    for (const char* h : {"X-Linked-Etag", "ETag"}) {
        std::string v = r.get_header_value(h);
        if (v.rfind("W/", 0) == 0) v = v.substr(2);
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
        if (is_sha256_hex(v)) return lower(v);
    }
    return "";
}

std::string human(uint64_t bytes) {
    char buf[32];
    if (bytes >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(1ull << 30));
    else std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / double(1ull << 20));
    return buf;
}

// The file is in place only once its bytes are on disk (a crash after the rename must not
// leave a name pointing at missing data).
void sync_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

void check_and_install(const std::string& partial, const std::string& target, std::string expected,
                       DownloadResult& result) {
    result.sha256 = sha256_of_file(partial);
    if (!expected.empty() && result.sha256 != lower(expected)) {
        fs::remove(partial);
        fail("checksum mismatch: expected ", lower(expected), ", the download has ", result.sha256,
             "; the partial file was removed");
    }
    try {
        GgufFile::open(partial);
    } catch (const Error& e) {
        fs::remove(partial);
        fail("the download is not a usable GGUF file (", e.what(), "); it was removed");
    }
    sync_file(partial);
    fs::rename(partial, target);
    result.path = target;
    result.bytes = fs::file_size(target);
}

}  // namespace

std::string expand_model_url(const std::string& url) {
    const std::string hf = "hf://";
    if (url.rfind(hf, 0) != 0) return url;
    const std::string rest = url.substr(hf.size());  // OWNER/REPO/PATH
    const size_t owner_end = rest.find('/');
    const size_t repo_end = owner_end == std::string::npos ? owner_end : rest.find('/', owner_end + 1);
    if (repo_end == std::string::npos || repo_end + 1 >= rest.size())
        fail(url, ": expected hf://OWNER/REPO/FILE.gguf");
    return "https://huggingface.co/" + rest.substr(0, repo_end) + "/resolve/main/" + rest.substr(repo_end + 1);
}

std::string sha256_of_file(const std::string& path) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f) fail(path, ": cannot open");
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    std::vector<unsigned char> buf(1 << 20);
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) EVP_DigestUpdate(ctx.get(), buf.data(), n);
    if (std::ferror(f.get())) fail(path, ": read error");
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), digest, &len);
    std::string hex;
    char two[3];
    for (unsigned int i = 0; i < len; ++i) {
        std::snprintf(two, sizeof two, "%02x", digest[i]);
        hex += two;
    }
    return hex;
}

DownloadResult download_model(const DownloadRequest& req) {
    std::string url = expand_model_url(req.url);
    const std::string name = file_name_of(url);
    if (name.size() <= 5 || name.compare(name.size() - 5, 5, ".gguf") != 0)
        fail(url, ": the URL must name a .gguf file (got \"", name, "\")");
    if (name.find('/') != std::string::npos || name[0] == '.') fail(url, ": unusable file name \"", name, "\"");
    fs::create_directories(req.dir);
    const std::string target = (fs::path(req.dir) / name).string();
    const std::string partial = (fs::path(req.dir) / ("." + name + ".partial")).string();
    DownloadResult result;
    if (fs::exists(target)) {
        result.already_there = true;
        result.path = target;
        result.bytes = fs::file_size(target);
        if (!req.sha256.empty()) {
            result.sha256 = sha256_of_file(target);
            if (result.sha256 != lower(req.sha256))
                fail(target, " exists with another checksum (", result.sha256, "); remove it first (pensieve rm)");
        }
        return result;
    }
    if (!req.sha256.empty() && !is_sha256_hex(req.sha256)) fail("--sha256 must be 64 hex digits");

    std::string expected = req.sha256;
    uint64_t offset = fs::exists(partial) ? fs::file_size(partial) : 0;
    result.resumed_from = offset;
    ProgressBar bar("pull " + name);
    for (int redirects = 0;; ++redirects) {
        if (redirects > 10) fail(req.url, ": too many redirects");
        const Url u = split_url(url);
        httplib::Client client(u.origin);
        client.set_connection_timeout(30);
        client.set_read_timeout(60);
        httplib::Headers headers = {{"User-Agent", "pensieve"}};
        if (offset > 0) headers.emplace("Range", "bytes=" + std::to_string(offset) + "-");

        std::string location;
        int status = 0;
        uint64_t total = 0;
        bool complete_already = false;
        std::unique_ptr<FILE, int (*)(FILE*)> out(nullptr, std::fclose);
        uint64_t written = offset;
        auto on_response = [&](const httplib::Response& r) {
            status = r.status;
            if (expected.empty()) expected = offered_sha256(r);
            if (status >= 300 && status < 400 && r.has_header("Location")) {
                location = r.get_header_value("Location");
                return false;  // follow it ourselves (its headers may carry the checksum)
            }
            if (status == 416 && offset > 0) {  // nothing after `offset`: the partial file is whole
                complete_already = true;
                return false;
            }
            if (status != 200 && status != 206) return false;
            const uint64_t length = r.has_header("Content-Length") ? std::stoull(r.get_header_value("Content-Length")) : 0;
            if (status == 200 && offset > 0) {
                offset = 0;  // the server ignored the range: start over
                written = 0;
                result.resumed_from = 0;
            }
            total = length ? offset + length : 0;
            out.reset(std::fopen(partial.c_str(), offset > 0 ? "ab" : "wb"));
            return out != nullptr;
        };
        auto on_data = [&](const char* data, size_t n) {
            if (std::fwrite(data, 1, n, out.get()) != n) return false;
            written += n;
            if (req.progress && total > 0) bar.update(long(written >> 10), long(total >> 10), human(written));
            return true;
        };
        httplib::Result r = client.Get(u.path, headers, on_response, on_data);
        if (out) std::fflush(out.get());
        const bool wrote_all = r && (status == 200 || status == 206) && (total == 0 || written == total);
        out.reset();
        if (!location.empty()) {
            url = location.rfind("/", 0) == 0 ? u.origin + location : location;
            continue;
        }
        if (complete_already) break;
        if (status != 0 && status != 200 && status != 206)
            fail(url, ": the server answered HTTP ", status, offset > 0 ? " (to a resumed download)" : "");
        if (!wrote_all) {
            if (!fs::exists(partial) || fs::file_size(partial) == 0) {
                fs::remove(partial);
                fail(url, ": download failed (", r ? "connection closed" : "HTTP client error: " + httplib::to_string(r.error()), ")");
            }
            fail(url, ": download interrupted after ", human(fs::file_size(partial)),
                 total ? " of " + human(total) : std::string(), " (", r ? "connection closed" : httplib::to_string(r.error()),
                 "); run the same command again to resume");
        }
        if (req.progress) bar.finish();
        break;
    }
    check_and_install(partial, target, expected, result);
    return result;
}

}  // namespace pensieve
