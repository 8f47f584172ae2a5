#!/usr/bin/env bash
# MLM training throughput on a GPU: medqa's step (a prebuilt bench_step binary, since GPU machines may
# have no Rust toolchain) against transformers + torch.optim.AdamW, same shapes, same run, with model
# FLOPs utilisation and peak GPU memory (nvidia-smi, sampled every 50 ms, the same way for both).
#
#   scripts/bench/mlm_gpu.sh BENCH_STEP_BINARY [bench options, default: xlm-roberta-base at 16×512, bf16]
#   PROFILE=DIR: then profile 3 steps of each side (libtorch's profiler; separate runs, so the timed ones
#   are undisturbed) into DIR/{medqa,transformers}.json and print scripts/tools/profile_summary.py's table.
#
# Needs python with torch and transformers; LD_LIBRARY_PATH is set to that torch's lib directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1; shift
args=${*:---hidden 768 --layers 12 --heads 12 --intermediate 3072 --vocab 250002 --batch 16 --seq 512 --warmup 3 --steps 10 --device cuda --precision bf16}
python=${PYTHON:-python3}
. scripts/bench/torch-lib.sh && use_torch_lib "$python"

# Runs a command while sampling GPU memory; prints the command's last line with peak_gpu_mib added.
sampled() {
  local log; log=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$log" &
  local smi=$!
  local out; out=$("$@" | tail -n 1)
  kill "$smi"; wait "$smi" 2>/dev/null || true
  $python - "$out" "$log" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
r["peak_gpu_mib"] = max((int(l) for l in open(sys.argv[2]) if l.strip().isdigit()), default=0)
print(json.dumps(r))
PY
  rm -f "$log"
}

# shellcheck disable=SC2086
ours=$(sampled "$bin" $args)
# shellcheck disable=SC2086
theirs=$(sampled $python scripts/bench/bench_mlm.py $args)
echo "$ours"
echo "$theirs"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
$python - "$ours" "$theirs" "$gpu" $args <<'PY'
import argparse, json, sys
o, t, gpu = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
ap = argparse.ArgumentParser()
for k in ["hidden", "layers", "intermediate", "vocab", "seq"]:
    ap.add_argument(f"--{k}", type=int)
a, _ = ap.parse_known_args(sys.argv[4:])
assert o["params"] == t["params"], (o["params"], t["params"])
H, L, I, V, S = a.hidden, a.layers, a.intermediate, a.vocab, a.seq
# Model FLOPs per token of a training step (3 × forward): the encoder's matrix products and attention,
# and the MLM head (dense + decoder) on the 15% masked positions, which is all the objective needs.
per_token = 3 * (L * (2 * (4 * H * H + 2 * H * I) + 4 * S * H) + 0.15 * 2 * (H * H + H * V))
# Dense bf16 peaks from NVIDIA's data sheets (no sparsity).
peak = 756e12 if "PCIe" in gpu else 989e12 if ("H100" in gpu or "H200" in gpu) else 312e12 if "A100" in gpu else None
for r in (o, t):
    mfu = r["tokens_per_sec"] * per_token / peak if peak else float("nan")
    print(f"{r['impl']:>12}: {r['tokens_per_sec']:,.0f} tokens/s, MFU {100 * mfu:.1f}% of {gpu} bf16 peak, "
          f"peak GPU memory {r['peak_gpu_mib']:,} MiB")
print(f"speed-up (tokens/s, medqa / transformers): {o['tokens_per_sec'] / t['tokens_per_sec']:.2f}x")
PY
if [ -n "${PROFILE:-}" ]; then
  mkdir -p "$PROFILE"
  # shellcheck disable=SC2086
  "$bin" $args --warmup 3 --steps 3 --profile "$PROFILE/medqa.json" >/dev/null
  # shellcheck disable=SC2086
  $python scripts/bench/bench_mlm.py $args --warmup 3 --steps 3 --profile "$PROFILE/transformers.json" >/dev/null 2>&1
  $python scripts/tools/profile_summary.py --steps 3 medqa="$PROFILE/medqa.json" \
    transformers="$PROFILE/transformers.json" --json "$PROFILE/summary.json"
fi
