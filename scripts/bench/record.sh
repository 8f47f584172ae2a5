#!/usr/bin/env bash
# Runs one benchmark driver and keeps its output as a dated log under docs/benchmarks/runs/, then
# rewrites docs/BENCHMARKS.md from every log there (scripts/tools/benchmarks_md.py): the figures in the
# docs come from runs, never typed.
#
#   scripts/bench/record.sh NAME [VAR=VALUE ...] [ARGS ...]    e.g. scripts/bench/record.sh mlm
#                                                                    scripts/bench/record.sh qa PARTS=train 20 40
# NAME is a driver in scripts/bench/ (mlm, qa, extract, eval, tokenize, dist). GPU runs keep their whole
# `scripts/bench/gpu.sh run` log instead (copy OUT/bench-gpu.log into docs/benchmarks/, then run
# scripts/tools/benchmarks_md.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: scripts/bench/record.sh NAME [VAR=VALUE ...] [ARGS ...]}; shift
[ -x "scripts/bench/$name.sh" ] || { echo "record.sh: no driver scripts/bench/$name.sh" >&2; exit 2; }
vars=(); while [ $# -gt 0 ] && [[ "$1" == *=* ]]; do vars+=("$1"); shift; done
dir=docs/benchmarks/runs; mkdir -p "$dir"
log=$dir/$(date -u +%Y-%m-%dT%H%M%SZ)-$name.log
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates scripts 2>/dev/null || echo "-dirty")
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1 || true)
{
  echo "# bench: $name"
  echo "# command: ${vars[*]:+${vars[*]} }scripts/bench/$name.sh $*"
  echo "# commit: $commit"
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# machine: ${cpu:-unknown CPU}, $(nproc) cores${gpu:+, $gpu}"
} > "$log.partial"
env ${vars[@]+"${vars[@]}"} "scripts/bench/$name.sh" "$@" 2>&1 | tee -a "$log.partial"
mv "$log.partial" "$log"
python3 scripts/tools/benchmarks_md.py
echo "kept $log; docs/BENCHMARKS.md rewritten"
