#!/usr/bin/env bash
# One lever of medqa's MLM step, measured alone: the same bench_step run with and without it, alternated
# ROUNDS times (default 2) in the same run on the same device, so clock and thermal drift fall on both.
#
#   scripts/bench/mlm_levers.sh BENCH_STEP_BINARY "COMMON OPTIONS" NAME="OPTIONS" NAME="OPTIONS" ...
#   e.g. scripts/bench/mlm_levers.sh target/release/examples/bench_step "--batch 32 --seq 512 --device cuda" \
#          device="--masking device" host="--masking host"
#
# Prints each run's JSON line, then each variant's mean tokens/s and its ratio to the first variant.
# PYTHON: a Python with torch (its lib directory goes on LD_LIBRARY_PATH).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1 common=$2; shift 2
python=${PYTHON:-python3}
. scripts/bench/torch-lib.sh && use_torch_lib "$python"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for _ in $(seq "${ROUNDS:-2}"); do
  for variant in "$@"; do
    # shellcheck disable=SC2086
    line=$("$bin" $common ${variant#*=} | tail -n 1)
    echo "${variant%%=*} $line" | tee -a "$results"
  done
done
"$python" - "$results" "$@" <<'PY'
import json, sys
runs = {}
for l in open(sys.argv[1]):
    name, js = l.split(" ", 1)
    runs.setdefault(name, []).append(json.loads(js))
names = [v.split("=", 1)[0] for v in sys.argv[2:]]
first = sum(r["tokens_per_sec"] for r in runs[names[0]]) / len(runs[names[0]])
for n in names:
    rates = [r["tokens_per_sec"] for r in runs[n]]
    mean = sum(rates) / len(rates)
    host = sum(r["host_seconds"] for r in runs[n]) / len(rates)
    step = sum(r["seconds_per_step"] for r in runs[n]) / len(rates)
    print(f"lever {n}: {mean:,.0f} tokens/s (runs: {', '.join(f'{x:,.0f}' for x in rates)}), "
          f"{1000 * step:.1f} ms per step, host queues it in {1000 * host:.1f} ms; {mean / first:.3f}x of {names[0]}")
PY
