#!/usr/bin/env bash
# pensieve against the reference engine (llama-bench) in alternating runs on the same files,
# with the read bandwidth measured in the same run. Usage and what it measures: bench/README.md.
#   bench/compare.sh [--threads 2] [--pairs 3] [--depth D] [--pp 512] [--tg 128] [--json] FILE_OR_TYPE...
exec /usr/bin/python3 "$(dirname "$0")/compare.py" "$@"
