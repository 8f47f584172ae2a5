#!/usr/bin/env bash
# Data-parallel MLM training (issue 17), both layouts in the same run on the same machine, same global
# batch (2 micro-batches of BATCH sequences of 256 tokens per step), STEPS steps of the demo's small
# XLM-R on a corpus made from the shipped sample data:
#
#   CPU (default): 1 process × 2 threads (accumulation 2) against 2 ranks × 1 thread under torchrun
#                  (c10d Gloo, accumulation 1). Prints both times and the ratio.
#   DEVICE=cuda:   1 process against torchrun --nproc-per-node 1 (c10d NCCL, a group of one: the only
#                  GPU shape available for testing), with an encoder of xlm-roberta-base's shape (hidden
#                  768, 12 layers; the demo's 4,000-piece vocabulary) in bf16, so that each step sums
#                  ~350 MB of gradients: checks the NCCL path runs and gives the same log; prints both
#                  times and the ratio (the cost of the collectives and their copies on one GPU).
#
# Each side's throughput is the training loop's ("train runtime" in its output: first step to the last
# one finished, the final evaluation included) and the whole run's (start-up and model writing too).
#
# MEDQA_BIN: where the binaries are (default target/release, built here); PYTHON: a Python with torch
# (for torchrun; default .venv/bin/python). Writes runs/bench-dist/.
set -euo pipefail
cd "$(dirname "$0")/../.."
device=${DEVICE:-cpu}
steps=${STEPS:-150}
batch=${BATCH:-16}
py=${PYTHON:-.venv/bin/python}
bin=${MEDQA_BIN:-}
if [ -z "$bin" ]; then
  scripts/setup.sh >/dev/null
  cargo build -q --release -p mlm-pretrain -p data-prep
  bin=target/release
else
  # Prebuilt binaries on a machine without the set-up: libtorch from that Python's torch.
  . scripts/bench/torch-lib.sh && use_torch_lib "$py"
fi
out=runs/bench-dist
rm -rf "$out" && mkdir -p "$out"
cfg=(--config configs/corpus-demo.toml --set "tokenizer=$out/tokenizer.json")
"$bin/data-prep" tokenizer "${cfg[@]}" --vocab-size 4000 --out "$out/tokenizer.json" >/dev/null 2>&1
"$bin/data-prep" corpus "${cfg[@]}" --out "$out/corpus" >/dev/null 2>&1

train=(--config configs/mlm-demo.toml --device "$device" --set "data.shards=$out/corpus"
  --set "train.max_steps=$steps" --set "train.per_device_train_batch_size=$batch"
  --set train.eval_steps=0 --set train.save_steps=0 --set train.logging_steps=50)
# seconds NAME COMMAND...: runs COMMAND with its output in $out/NAME.log; prints the whole run's seconds.
seconds() {
  local name=$1 t0=$EPOCHREALTIME; shift
  "$@" >"$out/$name.log" 2>&1 || { cat "$out/$name.log" >&2; exit 1; }
  "$py" -c "print($EPOCHREALTIME - $t0)"
}

if [ "$device" = cpu ]; then
  one=$(OMP_NUM_THREADS=2 seconds one "$bin/mlm-pretrain" "${train[@]}" --set "output_dir=$out/one" \
    --set train.gradient_accumulation_steps=2)
  two=$(OMP_NUM_THREADS=1 seconds two "$py" -m torch.distributed.run --standalone --nproc-per-node 2 --no-python \
    "$bin/mlm-pretrain" "${train[@]}" --set "output_dir=$out/two" --set train.gradient_accumulation_steps=1)
  label_one="1 process × 2 threads"; label_two="2 ranks × 1 thread (Gloo)"
else
  train+=(--set model.shape.hidden_size=768 --set model.shape.num_hidden_layers=12
    --set model.shape.num_attention_heads=12 --set model.shape.intermediate_size=3072 --set train.precision=bf16
    --set train.learning_rate=1e-4)
  one=$(seconds one "$bin/mlm-pretrain" "${train[@]}" --set "output_dir=$out/one" --set train.gradient_accumulation_steps=2)
  two=$(seconds two "$py" -m torch.distributed.run --standalone --nproc-per-node 1 --no-python \
    "$bin/mlm-pretrain" "${train[@]}" --set "output_dir=$out/two" --set train.gradient_accumulation_steps=2)
  grep -q "1 process(es) (Torchrun)" "$out/two.log" || { echo "bench/dist.sh: the torchrun run formed no group" >&2; exit 1; }
  if grep -q "destroy_process_group" "$out/two.log"; then echo "bench/dist.sh: the group was not shut down" >&2; exit 1; fi
  label_one="1 process, no group"; label_two="torchrun, NCCL group of one"
fi
"$py" - "$out" "$steps" "$batch" "$one" "$two" "$label_one" "$label_two" "$device" <<'PY'
import json, sys
out, steps, batch, one, two, l1, l2, device = sys.argv[1:]
steps, batch, one, two = int(steps), int(batch), float(one), float(two)
def loop(name):
    line = next(l for l in open(f"{out}/{name}.log") if l.startswith("train runtime"))
    return float(line.split()[2])
def log(name):
    rows = [json.loads(l) for l in open(f"{out}/{name}/train_log.jsonl")]
    return [r["train/loss"] for r in rows if "train/loss" in r]
a, b = log("one"), log("two")
assert len(a) == len(b) == steps, (len(a), len(b))
diff = max(abs(x - y) / abs(x) for x, y in zip(a, b))
tokens = steps * 2 * batch * 256
print(f"device {device}, {steps} steps of 2 × {batch} × 256 tokens (loop: the steps and the final evaluation; whole run: start-up and model writing too)")
l_one, l_two = loop("one"), loop("two")
print(f"{l1}: loop {l_one:.2f} s ({tokens / l_one:,.0f} tokens/s), whole run {one:.1f} s")
print(f"{l2}: loop {l_two:.2f} s ({tokens / l_two:,.0f} tokens/s), whole run {two:.1f} s")
print(f"ratio ({l2} / {l1}, throughput of the loop): {l_one / l_two:.2f}x (whole runs {one / two:.2f}x); "
      f"largest relative loss difference {diff:.2e}; final loss {a[-1]:.4f} / {b[-1]:.4f}")
PY
