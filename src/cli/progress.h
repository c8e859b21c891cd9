// A one-line progress bar on stderr for long work (perplexity, quantize, bench). Drawn
// only when stderr is a terminal; otherwise a line at each 10% so logs stay readable.
#pragma once

#include <cstdio>
#include <string>
#include <unistd.h>

#include "util/timer.h"

namespace pensieve {

class ProgressBar {
public:
    explicit ProgressBar(std::string label) : label_(std::move(label)), tty_(isatty(2)) {}

    void update(long done, long total, const std::string& note = "") {
        if (total <= 0) return;
        const int pct = int(100 * done / total);
        if (tty_) {
            const int width = 30, filled = int(width * done / total);
            std::fprintf(stderr, "\r%s [%s%s] %3d%% %ld/%ld %.1fs %s\033[K", label_.c_str(),
                         std::string(size_t(filled), '#').c_str(), std::string(size_t(width - filled), '.').c_str(),
                         pct, done, total, timer_.seconds(), note.c_str());
        } else if (pct / 10 != last_decile_ || done == total) {
            last_decile_ = pct / 10;
            std::fprintf(stderr, "%s: %3d%% (%ld/%ld) %.1fs %s\n", label_.c_str(), pct, done, total,
                         timer_.seconds(), note.c_str());
        }
        std::fflush(stderr);
    }
    void finish() {
        if (tty_) std::fputc('\n', stderr);
    }

private:
    std::string label_;
    bool tty_;
    int last_decile_ = -1;
    Timer timer_;
};

}  // namespace pensieve
