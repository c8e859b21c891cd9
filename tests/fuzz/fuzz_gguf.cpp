// libFuzzer target for the GGUF parser: any byte string must either parse into a file
// whose every tensor lies inside the input, or throw pensieve::Error. Anything else
// (a crash, a sanitizer report, another exception type, a huge allocation) is a bug.
// How to build and run: tests/fuzz/README.md.

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "gguf/gguf.h"
#include "util/error.h"

using namespace pensieve;

// Reads every value so that ASan/UBSan see all of what the parser built.
static size_t touch_value(const GgufValue& v) {
    size_t h = size_t(v.type) + v.str.size();
    if (v.is_integer() || v.is_float() || v.type == GgufType::BOOL) {
        try { h += size_t(v.as_int()); } catch (const Error&) {}
        h += size_t(v.as_float() != 0.0);
    }
    for (const GgufValue& e : v.array) {
        if (e.type != v.array_type) abort();   // the reader promises homogeneous arrays
        h += touch_value(e);
    }
    return h;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::unique_ptr<GgufFile> f;
    try {
        f = GgufFile::parse(data, size, "fuzz.gguf");
    } catch (const Error&) {
        return 0;   // rejected cleanly: fine
    }

    volatile size_t sink = 0;
    for (const auto& [key, value] : f->metadata()) {
        if (f->find(key) != &value) abort();
        sink = sink + key.size() + touch_value(value);
        // The typed getters must either succeed or throw Error, whatever the type.
        try { sink = sink + size_t(f->get_int(key)); } catch (const Error&) {}
        try { sink = sink + size_t(f->get_float(key) > 0); } catch (const Error&) {}
        try { sink = sink + f->get_string(key).size(); } catch (const Error&) {}
        try { sink = sink + f->get_bool(key); } catch (const Error&) {}
        try { sink = sink + f->get_string_array(key).size(); } catch (const Error&) {}
        try { sink = sink + f->get_int_array(key).size(); } catch (const Error&) {}
        try { sink = sink + f->get_float_array(key).size(); } catch (const Error&) {}
    }
    for (const GgufTensor& t : f->tensors()) {
        if (f->find_tensor(t.name) != &t) abort();
        if (t.nbytes == 0 || t.data < data || t.data + t.nbytes > data + size) abort();
        if (t.offset % f->alignment() != 0) abort();
        // First and last byte: ASan flags them if the range were outside the input.
        sink = sink + t.data[0] + t.data[t.nbytes - 1];
        sink = sink + size_t(t.n_elements() + t.rows() + t.cols());
    }
    (void)sink;
    return 0;
}
