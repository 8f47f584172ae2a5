#!/usr/bin/env bash
# Checkpoints written in the background (train.async_checkpoints, the default) against written by the
# loop itself, as transformers' Trainer writes them: the mlm-pretrain loop with a checkpoint every SAVE
# steps, the two settings alternated (foreground, background, foreground, background) in one run. Each
# run's whole loop time ("train runtime", checkpoints and the wait for the last one included) and its
# checkpoint seconds (the loop's time spent capturing, writing or waiting); the figure is the ratio of the
# median loop times. The last checkpoint of each run is compared byte for byte with the first run's.
#
#   scripts/bench/checkpoints.sh BIN_DIR TOKENIZER_JSON      (PYTHON: a Python with torch, on CUDA)
# DEVICE=cpu (default): a model with XLM-R's 250,002-piece vocabulary, hidden 256, 2 layers (66 M
#   parameters: ~0.8 GB of weights and AdamW moments per checkpoint), 8×128, 24 steps, SAVE=4.
# DEVICE=cuda: xlm-roberta-base's shape in bf16 (278 M parameters, 3.3 GB per checkpoint), 32×512,
#   400 steps, SAVE=200: a write (~9 s on an H200) overlaps the next 200 steps (~9 s); the last one is
#   waited for, as every run's last is.
# REPEATS (default 2): pairs of runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1 tokenizer=$2
device=${DEVICE:-cpu}
out=${OUT_DIR:-runs/bench-checkpoints}
rm -rf "$out" && mkdir -p "$out"
if [ "$device" = cuda ]; then
  . scripts/bench/torch-lib.sh && use_torch_lib "${PYTHON:-python3}"
  steps=${STEPS:-400} save=${SAVE:-200}
  shape=(--set data.max_seq_length=512 --set model.shape.hidden_size=768 --set model.shape.num_hidden_layers=12
    --set model.shape.num_attention_heads=12 --set model.shape.intermediate_size=3072 --set train.precision=bf16
    --set train.per_device_train_batch_size=32)
else
  steps=${STEPS:-24} save=${SAVE:-4}
  shape=(--set data.max_seq_length=128 --set model.shape.hidden_size=256 --set model.shape.num_hidden_layers=2
    --set model.shape.num_attention_heads=4 --set model.shape.intermediate_size=1024
    --set train.per_device_train_batch_size=8)
fi
"$bin/data-prep" corpus --config configs/corpus-demo.toml --set "tokenizer=$tokenizer" --out "$out/corpus" >"$out/corpus.log" 2>&1
runs=()
for i in $(seq "${REPEATS:-2}"); do
  for mode in foreground background; do
    name=$mode-$i
    "$bin/mlm-pretrain" --config configs/mlm-demo.toml --device "$device" --set "data.shards=$out/corpus" "${shape[@]}" \
      --set train.learning_rate=1e-4 --set "train.max_steps=$steps" --set train.eval_steps=0 \
      --set "train.save_steps=$save" --set train.save_total_limit=1 --set train.logging_steps=10 \
      --set data.max_eval_sequences=8 --set "train.async_checkpoints=$([ $mode = background ] && echo true || echo false)" \
      --set "output_dir=$out/$name" >"$out/$name.log" 2>&1 || { cat "$out/$name.log" >&2; exit 1; }
    last=$out/$name/checkpoints/step-$(printf %06d "$steps")
    # The first run's last checkpoint is the one every other run's must equal.
    [ -d "$out/reference" ] || cp -r "$last" "$out/reference"
    for f in model.safetensors optimizer.safetensors state.json; do
      cmp -s "$last/$f" "$out/reference/$f" \
        || { echo "checkpoints.sh: $name's $f differs from foreground-1's" >&2; exit 1; }
    done
    runs+=("$name $(grep '^train runtime' "$out/$name.log" | tr -d '(,' | awk '{print $3, $11}')")
    rm -rf "$out/$name/checkpoints" "$out/$name/final"
  done
done
"${PYTHON:-python3}" - "$device" "$steps" "$save" "${runs[@]}" <<'PY'
import statistics, sys
device, steps, save = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
loop, ckpt = {}, {}
for run in sys.argv[4:]:
    name, total, seconds = run.split()
    mode = name.split("-")[0]
    loop.setdefault(mode, []).append(float(total))
    ckpt.setdefault(mode, []).append(float(seconds))
for mode in ("foreground", "background"):
    print(f"{mode}: loop {statistics.median(loop[mode]):.2f} s (runs: {', '.join(f'{t:.2f}' for t in loop[mode])}), "
          f"of which checkpoints {statistics.median(ckpt[mode]):.2f} s")
ratio = statistics.median(loop["foreground"]) / statistics.median(loop["background"])
print(f"{device}, {steps} steps, a checkpoint every {save}: background checkpoints {ratio:.2f}x the foreground loop's "
      f"speed; last checkpoints byte-identical")
PY
