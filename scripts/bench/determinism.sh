#!/usr/bin/env bash
# Same seed, same data, same GPU: the same numbers? The mlm-pretrain loop at xlm-roberta-base's shape (XLM-R's
# real tokenizer, the sample corpus in 512-token sequences, batch BATCH, bf16, STEPS steps, dropout on) twice
# with libtorch's default kernels and twice with train.full_determinism; for each pair, whether every logged
# loss and the final weights are bitwise the same (else the first step that differs), and the time per step
# of each setting (the loop's time less evaluation and checkpoints, over all its steps).
#
#   scripts/bench/determinism.sh BIN_DIR TOKENIZER_JSON        (PYTHON: a Python with torch; DEVICE=cpu
#                                                              rehearses it here)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1 tokenizer=$2
py=${PYTHON:-python3}
steps=${STEPS:-30} batch=${BATCH:-16} device=${DEVICE:-cuda}
. scripts/bench/torch-lib.sh && use_torch_lib "$py"
out=runs/bench-determinism
rm -rf "$out" && mkdir -p "$out"
"$bin/data-prep" corpus --config configs/corpus-demo.toml --set "tokenizer=$tokenizer" --out "$out/corpus" >"$out/corpus.log" 2>&1
run() { # NAME FULL_DETERMINISM
  "$bin/mlm-pretrain" --config configs/mlm-demo.toml --device "$device" --set "data.shards=$out/corpus" \
    --set data.max_seq_length=512 --set model.shape.hidden_size=768 --set model.shape.num_hidden_layers=12 \
    --set model.shape.num_attention_heads=12 --set model.shape.intermediate_size=3072 --set train.precision=bf16 \
    --set train.learning_rate=1e-4 --set "train.per_device_train_batch_size=$batch" --set "train.max_steps=$steps" \
    --set train.eval_steps=0 --set train.save_steps=0 --set train.logging_steps=1 --set data.max_eval_sequences=32 \
    --set "train.full_determinism=$2" --set "output_dir=$out/$1" >"$out/$1.log" 2>&1 \
    || { cat "$out/$1.log" >&2; exit 1; }
}
for name in default-a default-b; do run $name false; done
for name in deterministic-a deterministic-b; do run $name true; done
name=$( (nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "$device") | head -n 1)
"$py" - "$out" "$steps" "$name" <<'PY'
import hashlib, json, re, sys
out, steps, gpu = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def losses(run):
    return [(r["step"], r["train/loss"]) for r in map(json.loads, open(f"{out}/{run}/train_log.jsonl")) if "train/loss" in r]
def weights(run):
    return hashlib.sha256(open(f"{out}/{run}/final/model.safetensors", "rb").read()).hexdigest()
def step_ms(run):
    text = open(f"{out}/{run}.log").read()
    m = re.search(r"train runtime ([\d.]+) s, [\d.]+ tokens/s \(evaluation ([\d.]+) s, checkpoints ([\d.]+) s\)", text)
    return 1000 * (float(m[1]) - float(m[2]) - float(m[3])) / steps
print(f"determinism on {gpu}: mlm-pretrain, xlm-roberta-base shape, bf16, {steps} steps")
for setting in ("default", "deterministic"):
    a, b = losses(f"{setting}-a"), losses(f"{setting}-b")
    differs = [s for (s, x), (_, y) in zip(a, b) if x != y]
    same_weights = weights(f"{setting}-a") == weights(f"{setting}-b")
    verdict = "bitwise the same" if not differs and same_weights and len(a) == len(b) == steps else \
        f"differ (first loss at step {differs[0] if differs else '-'}; final weights {'same' if same_weights else 'differ'})"
    print(f"{setting}: two runs {verdict}; {step_ms(setting + '-a'):.1f} / {step_ms(setting + '-b'):.1f} ms per step")
PY
