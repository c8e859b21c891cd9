#!/usr/bin/python3
"""pensieve against the reference engine (llama.cpp's llama-bench), on the same files, in
alternating runs (ref, pensieve, ref, pensieve, ...), with the machine's read bandwidth
measured before and after each file. Run through bench/compare.sh; see bench/README.md.

The host is shared and noisy (2-thread read bandwidth swings 34-77 GB/s between minutes),
so a speed claim is the median of per-pair ratios, never one engine's figure against the
other's from another time. Python standard library only.
"""
import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("PENSIEVE_SHARED", os.path.join(REPO, "..", "shared"))
RUN_TIMEOUT_S = 3600


def weight_bytes_per_token(pensieve, path):
    """Bytes of weights one generated token reads (`pensieve info`: every tensor but the
    token-embedding lookup, unless the embedding doubles as the output head)."""
    out = subprocess.run([pensieve, "info", path], capture_output=True, text=True, check=True).stdout
    key = "weights read per generated token: "
    line = next((l for l in out.splitlines() if l.startswith(key)), None)
    if line is None:
        sys.exit(f"compare: `pensieve info` does not print {key!r} (an older binary?)")
    return int(line[len(key):].split()[0])


# ---------------------------------------------------------------- models and tools


def model_path(arg, models_dir, pensieve):
    """A file as given, or a type name's synth-1b file in models_dir (made if missing)."""
    if os.path.isfile(arg):
        return arg, os.path.basename(arg)
    qtype = arg.upper()
    path = os.path.join(models_dir, f"synth-1b-{qtype}.gguf")
    if os.path.isfile(path):
        return path, qtype
    if "/" in arg or arg.endswith(".gguf"):
        sys.exit(f"compare: no such file: {arg}")
    os.makedirs(models_dir, exist_ok=True)
    f16 = os.path.join(models_dir, "synth-1b-F16.gguf")
    if not os.path.isfile(f16):
        log(f"making {f16} (synth_gguf.py --preset 1b)")
        subprocess.run(["/usr/bin/python3", os.path.join(SHARED, "tools", "synth_gguf.py"), "--vocab",
                        os.path.join(SHARED, "vocab", "ggml-vocab-llama-spm.gguf"), "--preset", "1b",
                        "-o", f16 + ".tmp"], check=True)
        os.replace(f16 + ".tmp", f16)
    if qtype != "F16":
        log(f"making {path} (pensieve quantize)")
        subprocess.run([pensieve, "quantize", f16, path + ".tmp", qtype], check=True)
        os.replace(path + ".tmp", path)
    return path, qtype


def reference_tools(cache):
    """The reference build's bin folder, building it first if llama-bench is missing."""
    script = os.path.join(REPO, "bench", "ref_engine.sh")
    bin_dir = subprocess.run([script, "--bin-dir", cache], check=True, capture_output=True,
                             text=True).stdout.strip()
    if not os.access(os.path.join(bin_dir, "llama-bench"), os.X_OK):
        log("reference engine not built yet: bench/ref_engine.sh (~15 min or more, once per machine)")
        subprocess.run([script, cache], check=True, stdout=subprocess.DEVNULL)
    version = ""
    try:
        with open(os.path.join(cache, "VERSION")) as f:
            version = f.read()
    except OSError:
        pass
    return bin_dir, version


def log(msg):
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def run_json(cmd, pick):
    """Runs cmd, parses its stdout as JSON, returns pick(parsed) or an error string."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"timed out after {RUN_TIMEOUT_S}s"
    if p.returncode != 0:
        lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
        return f"exit {p.returncode}: {lines[-1][:160] if lines else 'no message'}"
    try:
        return pick(json.loads(p.stdout))
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return f"unreadable output ({e}): {p.stdout[:160]!r}"


# ---------------------------------------------------------------- one run of each


def bandwidth(pensieve, threads):
    r = run_json([pensieve, "bench", "--bandwidth", "-t", str(threads), "--json"], lambda j: float(j["read_gbs"]))
    if isinstance(r, str):
        sys.exit(f"compare: bandwidth probe failed: {r}")
    return r


def reference_cmd(bin_dir, path, a):
    cmd = [os.path.join(bin_dir, "llama-bench"), "-m", path, "-p", str(a.pp), "-n", str(a.tg),
           "-t", str(a.threads), "-r", "1", "-o", "json"]
    if a.depth > 0:
        cmd += ["-d", str(a.depth), "-fa", "on"]
    return cmd


def pensieve_cmd(pensieve, path, a):
    cmd = [pensieve, "bench", "-m", path, "-p", str(a.pp), "-n", str(a.tg), "-t", str(a.threads), "-r", "1", "--json"]
    if a.depth > 0:
        cmd += ["-d", str(a.depth)]
    return cmd


def reference_speeds(records):
    """{"pp": tok/s, "tg": tok/s} from llama-bench's JSON array (one record per test)."""
    out = {}
    for r in records:
        out["pp" if r["n_prompt"] > 0 and r["n_gen"] == 0 else "tg"] = float(r["avg_ts"])
    return out


def pensieve_speeds(j):
    return {"pp": float(j["pp_tps"]), "tg": float(j["tg_tps"])}


# ---------------------------------------------------------------- one file


def tests_of(a):
    """The tests measured: (key, label) for pp and tg, those with a non-zero size."""
    d = f"@d{a.depth}" if a.depth > 0 else ""
    return [(k, f"{k}{n}{d}") for k, n in (("pp", a.pp), ("tg", a.tg)) if n > 0]


def compare_file(path, label, bin_dir, pensieve, a):
    res = {"label": label, "file": path, "bytes_per_token": weight_bytes_per_token(pensieve, path),
           "reference_cmd": shlex.join(reference_cmd(bin_dir, path, a)),
           "pensieve_cmd": shlex.join(pensieve_cmd(pensieve, path, a)),
           "pairs": [], "reference_error": None, "pensieve_error": None}
    res["read_gbs_before"] = bandwidth(pensieve, a.threads)
    for i in range(a.pairs):
        pair = {}
        for engine, cmd, pick in (("reference", reference_cmd(bin_dir, path, a), reference_speeds),
                                  ("pensieve", pensieve_cmd(pensieve, path, a), pensieve_speeds)):
            if res[engine + "_error"]:
                continue  # it failed on this file once: do not spend the time again
            r = run_json(cmd, pick)
            if isinstance(r, str):
                res[engine + "_error"] = r
                log(f"{label}: {engine} failed: {r}")
            else:
                pair[engine] = r
        log(f"{label} pair {i + 1}/{a.pairs}: {json.dumps(pair)}")
        res["pairs"].append(pair)
    res["read_gbs_after"] = bandwidth(pensieve, a.threads)
    summarize(res, a)
    return res


def summarize(res, a):
    """Per-test ratios per pair, their median, and generation's share of the bandwidth limit."""
    bw = (res["read_gbs_before"] + res["read_gbs_after"]) / 2
    res["limit_tok_s"] = bw * 1e9 / res["bytes_per_token"]
    res["tests"] = {}
    for key, name in tests_of(a):
        t = {"name": name,
             "reference": [p["reference"][key] for p in res["pairs"] if "reference" in p],
             "pensieve": [p["pensieve"][key] for p in res["pairs"] if "pensieve" in p],
             "ratios": [p["pensieve"][key] / p["reference"][key] for p in res["pairs"]
                        if "reference" in p and "pensieve" in p]}
        t["median_ratio"] = statistics.median(t["ratios"]) if t["ratios"] else None
        if key == "tg":
            for engine in ("pensieve", "reference"):
                t[engine + "_share"] = statistics.median(t[engine]) / res["limit_tok_s"] if t[engine] else None
        res["tests"][key] = t


# ---------------------------------------------------------------- output


def fmt_list(values, spec):
    return ", ".join(format(v, spec) for v in values) if values else "—"


def markdown(results, a, header):
    lines = [header, "",
             "| type | test | reference tok/s | pensieve tok/s | ratio per pair | median ratio "
             "| read GB/s before, after | share of bytes/token limit (pensieve, ref) |",
             "|---|---|---|---|---|---:|---|---|"]
    for r in results:
        bw = f"{r['read_gbs_before']:.1f}, {r['read_gbs_after']:.1f}"
        for key, _ in tests_of(a):
            t = r["tests"][key]
            ref = fmt_list(t["reference"], ".2f") if not r["reference_error"] else \
                f"failed: {r['reference_error']}".replace("|", "/")
            pen = fmt_list(t["pensieve"], ".2f") if not r["pensieve_error"] else \
                f"failed: {r['pensieve_error']}".replace("|", "/")
            median = f"**{t['median_ratio']:.2f}x**" if t["median_ratio"] else "—"
            share = ""
            if key == "tg":
                share = ", ".join(f"{t[e + '_share'] * 100:.0f}%" if t[e + "_share"] else "—"
                                  for e in ("pensieve", "reference"))
                share += f" of {r['limit_tok_s']:.1f} tok/s"
            lines.append(f"| {r['label']} | {t['name']} | {ref} | {pen} | {fmt_list(t['ratios'], '.2f')} "
                         f"| {median} | {bw} | {share} |")
    lines += ["", "Bytes of weights per generated token (all tensors but the token embedding lookup): " +
              ", ".join(f"{r['label']} {r['bytes_per_token'] / 1e6:.1f} MB" for r in results) + "."]
    lines += ["Per file, in this order: read bandwidth; then, per pair, the reference then pensieve:"]
    for r in results[:1]:
        lines += [f"    {r['reference_cmd']}", f"    {r['pensieve_cmd']}"]
    return "\n".join(lines)


def git_commit():
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description="pensieve vs llama-bench, alternating runs on the same files",
                                 usage="bench/compare.sh [options] FILE_OR_TYPE...")
    ap.add_argument("models", nargs="+", metavar="FILE_OR_TYPE",
                    help="GGUF files, or type names (Q4_0, Q8_0, ...) for MODELS/synth-1b-TYPE.gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=3, help="alternating reference/pensieve pairs (at least 3)")
    ap.add_argument("--depth", type=int, default=0, help="tokens in the cache before each test "
                    "(reference with flash attention on)")
    ap.add_argument("--pp", type=int, default=512, help="prompt tokens (0: skip)")
    ap.add_argument("--tg", type=int, default=128, help="generated tokens (0: skip)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    ap.add_argument("--models-dir", default=os.environ.get("PENSIEVE_MODELS", "/work/wt/models"))
    ap.add_argument("--ref-cache", default=os.environ.get("PENSIEVE_REF_CACHE",
                                                          os.path.expanduser("~/.cache/pensieve-ref")))
    ap.add_argument("--pensieve", default=os.path.join(REPO, "build", "pensieve"))
    a = ap.parse_args()
    if a.pairs < 3:
        ap.error("--pairs must be at least 3 (the claim is a median over pairs)")
    if a.pp <= 0 and a.tg <= 0:
        ap.error("nothing to measure: --pp and --tg are both 0")
    if not os.access(a.pensieve, os.X_OK):
        ap.error(f"no pensieve binary at {a.pensieve} (build it, or --pensieve PATH)")

    bin_dir, ref_version = reference_tools(a.ref_cache)
    files = [model_path(m, a.models_dir, a.pensieve) for m in a.models]
    started = datetime.datetime.now().astimezone()
    load = open("/proc/loadavg").read().split()[:3]
    results = [compare_file(path, label, bin_dir, a.pensieve, a) for path, label in files]
    ref_line = " ".join(l for l in ref_version.splitlines() if l.startswith(("release:", "commit:")))
    header = (f"`bench/compare.sh {shlex.join(sys.argv[1:])}` — {started:%Y-%m-%d %H:%M %Z}, pensieve "
              f"{git_commit()}, reference llama.cpp ({ref_line or 'version unknown'}), {a.threads} threads, "
              f"{a.pairs} pairs, load average at start {' '.join(load)}")
    load_end = open("/proc/loadavg").read().split()[:3]
    header += f", at the end {' '.join(load_end)}"
    busy = max(float(load[0]), float(load_end[0])) > os.cpu_count()
    if busy:
        # Oversubscribed, the reference's spin-waiting threads lose far more than pensieve's
        # (seen: its tg128 at 0.5-1 tok/s at load 14): such ratios say nothing.
        header += (f"\n\n**Not valid for claims: load average above {os.cpu_count()} cores "
                   "(other work running).**")
        log(f"warning: load average {max(load[0], load_end[0], key=float)} exceeds {os.cpu_count()} cores; figures are not valid for claims")
    if a.json:
        print(json.dumps({"busy": busy, "command": ["bench/compare.sh"] + sys.argv[1:], "started": started.isoformat(),
                          "pensieve_commit": git_commit(), "reference": ref_version, "threads": a.threads,
                          "load_average": load, "load_average_end": load_end, "results": results}, indent=2))
    else:
        print(markdown(results, a, header))


if __name__ == "__main__":
    main()
