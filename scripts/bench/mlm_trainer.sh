#!/usr/bin/env bash
# The MLM training loop itself (mlm-pretrain, not bench_step) at xlm-roberta-base's shape on a GPU: XLM-R's
# real 250,002-piece tokenizer, the shipped sample corpus grouped into 512-token sequences, batch 32, bf16.
# Two runs, SHORT and LONG steps (default 10 and 70); each one's loop time ("train runtime") less its
# evaluation and checkpoint seconds, and the difference of the two leaves out start-up and the first
# steps' kernel selection, so
#   tokens/s = (LONG - SHORT) steps × 32 × 512 / (steps' time LONG - steps' time SHORT)
# is the steady state of the loop as users run it (no per-step host wait, masking on the host), to set
# beside bench_step's figure in the same run. MFU as scripts/bench/mlm_gpu.sh counts it.
#
#   scripts/bench/mlm_trainer.sh BIN_DIR TOKENIZER_JSON        (PYTHON: a Python with torch)
# GRAPHS=true: with train.cuda_graphs (the step captured as a CUDA graph and replayed); what the loop
# said about its graphs (captured, or why not) is printed. ACCUM=N: N micro-batches of BATCH per optimizer
# step (gradient accumulation, as users reach 64×512 or more on a smaller card); tokens count all of them.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1 tokenizer=$2
py=${PYTHON:-python3}
short=${SHORT:-10} long=${LONG:-70} batch=${BATCH:-32} graphs=${GRAPHS:-false} accum=${ACCUM:-1}
. scripts/bench/torch-lib.sh && use_torch_lib "$py"
out=runs/bench-mlm-trainer
rm -rf "$out" && mkdir -p "$out"
"$bin/data-prep" corpus --config configs/corpus-demo.toml --set "tokenizer=$tokenizer" --out "$out/corpus" >"$out/corpus.log" 2>&1
run() {
  "$bin/mlm-pretrain" --config configs/mlm-demo.toml --device cuda --set "data.shards=$out/corpus" \
    --set data.max_seq_length=512 --set model.shape.hidden_size=768 --set model.shape.num_hidden_layers=12 \
    --set model.shape.num_attention_heads=12 --set model.shape.intermediate_size=3072 --set train.precision=bf16 \
    --set train.learning_rate=1e-4 --set "train.per_device_train_batch_size=$batch" --set "train.gradient_accumulation_steps=$accum" --set "train.max_steps=$1" \
    --set train.eval_steps=0 --set train.save_steps=0 --set train.logging_steps=10 \
    --set data.max_eval_sequences=32 --set "train.cuda_graphs=$graphs" --set "output_dir=$out/steps-$1" >"$out/steps-$1.log" 2>&1 \
    || { cat "$out/steps-$1.log" >&2; exit 1; }
  # "train runtime S s, R tokens/s (evaluation E s, checkpoints C s)": S - E - C
  grep "^train runtime" "$out/steps-$1.log" | tr -d '(,' | awk '{print $3 - $8 - $11}'
}
t_short=$(run "$short")
t_long=$(run "$long")
grep -h "CUDA graph\|cuda_graphs" "$out"/steps-*.log || true
"$py" - "$t_short" "$t_long" "$short" "$long" "$batch" "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)" "$graphs" "$accum" <<'PY'
import sys
t_short, t_long, short, long, batch, gpu = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
graphs = " with cuda_graphs" if sys.argv[7] == "true" else ""
accum = int(sys.argv[8])
H, L, I, V, S = 768, 12, 3072, 250002, 512
shape = f"{batch}×{S}" + (f" × {accum} accumulated" if accum > 1 else "")
per_token = 3 * (L * (2 * (4 * H * H + 2 * H * I) + 4 * S * H) + 0.15 * 2 * (H * H + H * V))
peak = 756e12 if "PCIe" in gpu else 989e12 if ("H100" in gpu or "H200" in gpu) else 312e12 if "A100" in gpu else float("nan")
rate = (long - short) * batch * accum * S / (t_long - t_short)
print(f"mlm-pretrain loop{graphs}, {shape}, bf16, time in steps (no evaluation or checkpoint): {short} steps {t_short:.2f} s, {long} steps {t_long:.2f} s → "
      f"{rate:,.0f} tokens/s, {1000 * (t_long - t_short) / (long - short):.1f} ms per step, "
      f"MFU {100 * rate * per_token / peak:.1f}% of {gpu} bf16 peak")
PY
