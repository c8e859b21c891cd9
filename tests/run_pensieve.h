// Runs the built `pensieve` binary, for tests of the command line: $PENSIEVE_BIN (ctest
// sets it), else build/pensieve in the source tree.
#pragma once

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/wait.h>

inline std::string pensieve_binary() {
    const char* b = std::getenv("PENSIEVE_BIN");
    return b ? b : PENSIEVE_SOURCE_DIR "/build/pensieve";
}

struct CommandResult {
    int status;       // exit status, -1 if it did not exit normally
    std::string out;  // stdout (and stderr when merged)
};

// `pensieve ARGS` through the shell; stderr is discarded unless merge_stderr.
inline CommandResult run_pensieve(const std::string& args, bool merge_stderr = false) {
    const std::string cmd = pensieve_binary() + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null");
    CommandResult r{-1, ""};
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    for (size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) r.out.append(buf.data(), n);
    const int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}
