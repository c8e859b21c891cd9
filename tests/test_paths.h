// Where tests find the shared, read-only reference data (models, vocabularies, reference
// outputs): $PENSIEVE_SHARED if set, else ../shared next to the source tree.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#ifndef PENSIEVE_SOURCE_DIR
#error "PENSIEVE_SOURCE_DIR must be defined (the CMake test target does this)"
#endif

inline std::string shared_dir() {
    if (const char* env = std::getenv("PENSIEVE_SHARED"); env && *env) return env;
    return PENSIEVE_SOURCE_DIR "/../shared";
}

// A whole file's bytes ("" if it cannot be read).
inline std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}
