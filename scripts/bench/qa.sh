#!/usr/bin/env bash
# QA throughput, medqa against transformers on the same data, model and threads, in the same run:
#  - training features/s: our loop (windows padded to the batch's longest, grouped by length) against
#    transformers' XLMRobertaForQuestionAnswering + AdamW on run_qa.py's features (padded to 384);
#  - prediction on COVID-QA's long contexts, end to end (read, windows, forward, post-processing, write):
#    `qa-finetune predict` against a transformers loop doing the same windows and post-processing.
# Model: random XLM-R QA, hidden 256, 4 layers, 4 heads, intermediate 1024, a 16k tokenizer trained on
# the corpus; 2 threads. Uses ../shared/data when present, else the project's sample questions.
#
#   scripts/bench/qa.sh [TRAIN_ARTICLES=20] [PREDICT_ARTICLES=4]
#   MEDQA_BIN=dir PYTHON=python3 DEVICE=cuda PRECISION=bf16 STEPS=200 scripts/bench/qa.sh 20 40
#       (prebuilt binaries, e.g. on a GPU machine without a Rust toolchain; torch from PYTHON)
#   MODEL_ARGS="--hidden 768 --layers 12 --heads 12 --intermediate 3072": the xlm-roberta-base shape
#   TRAIN_SET=../shared/data/qa/bioasq-7b-train-factoid.en.json: train on BioASQ's short snippets instead
#   SHARED_DATA=dir: where the real data sets are (default ../shared/data; needs qa/, and corpus/ unless
#   TOKENIZER names an existing 16k tokenizer); PARTS=predict (or train) runs one half only.
#   COMPARE_KERNELS=1: also train with every CUDA attention kernel allowed (MEDQA_ATTENTION_KERNELS=libtorch).
# Prediction is timed twice: the whole process on both sides (start-up, loading, CUDA set-up included),
# and from after the model is loaded (medqa: its windows + forward + post-processing seconds).
set -euo pipefail
cd "$(dirname "$0")/../.."
device=${DEVICE:-cpu}
precision=${PRECISION:-fp32}
if [ -n "${MEDQA_BIN:-}" ]; then
  bin=$MEDQA_BIN; py=${PYTHON:-python3}; bench=$bin/bench_train
  . scripts/bench/torch-lib.sh && use_torch_lib "$py"
else
  scripts/setup.sh --test >/dev/null
  cargo build --release -p data-prep -p qa-finetune --bins --example bench_train >/dev/null
  bin=target/release; py=.venv/bin/python
  bench=target/release/examples/bench_train
fi
opts=(--device "$device" --precision "$precision")
work=${WORK:-runs/bench-qa}
mkdir -p "$work"
shared=${SHARED_DATA:-../shared/data}
parts=${PARTS:-train,predict}
if [ -d "$shared/qa" ] && { [ -d "$shared/corpus" ] || [ -f "${TOKENIZER:-}" ]; }; then
  corpus=configs/corpus-shared.toml; tok=${TOKENIZER:-runs/real/tokenizer.json}
  train_src=${TRAIN_SET:-$shared/qa/squad-v1.1-dev.en.json}; pred_src=$shared/qa/covid-qa-200423.en.json
else
  echo "(../shared/data absent: benchmarking on the project's sample data)"
  corpus=configs/corpus-demo.toml; tok=runs/demo/tokenizer.json
  train_src=data/sample/qa/train.json; pred_src=data/sample/qa/dev.json
fi
[ -f "$tok" ] || "$bin"/data-prep tokenizer --config "$corpus" --vocab-size 16000 --out "$tok" >/dev/null
$py - "$train_src" "$work/train.json" "${1:-20}" "$pred_src" "$work/predict.json" "${2:-4}" <<'PY'
import json, sys
for src, dst, n in [(sys.argv[1], sys.argv[2], int(sys.argv[3])), (sys.argv[4], sys.argv[5], int(sys.argv[6]))]:
    d = json.load(open(src, encoding="utf-8"))
    d["data"] = d["data"][:n]
    json.dump(d, open(dst, "w", encoding="utf-8"), ensure_ascii=False)
PY
# shellcheck disable=SC2086
$py scripts/bench/bench_qa.py make-model "$work/model" --tokenizer "$tok" ${MODEL_ARGS:-}
steps=${STEPS:-30}

if [[ $parts == *train* ]]; then
  echo "== training ($steps steps of 16 windows)"
  ours=$("$bench" --model "$work/model" --data "$work/train.json" --steps "$steps" "${opts[@]}" | tail -n 1)
  ungrouped=$("$bench" --model "$work/model" --data "$work/train.json" --group-by-length false --steps "$steps" "${opts[@]}" | tail -n 1)
  if [[ -n ${COMPARE_KERNELS:-} ]]; then
    # The same grouped run with every attention kernel libtorch offers (cuDNN's included): what medqa's
    # choice of kernels (model::device::AttentionKernels) is worth.
    all_kernels=$(MEDQA_ATTENTION_KERNELS=libtorch "$bench" --model "$work/model" --data "$work/train.json" --steps "$steps" "${opts[@]}" | tail -n 1)
    echo "medqa grouped, libtorch's attention kernels: $all_kernels"
  fi
  theirs=$($py scripts/bench/bench_qa.py train --model "$work/model" --data "$work/train.json" --steps "$steps" "${opts[@]}" | tail -n 1)
  printf '%s\n%s\n%s\n' "$ours" "$ungrouped" "$theirs"
  $py - "$ours" "$ungrouped" "$theirs" <<'PY'
import json, sys
o, u, t = (json.loads(a) for a in sys.argv[1:4])
print(f"training speed-up (features/s, medqa / transformers): {o['features_per_sec'] / t['features_per_sec']:.2f}x "
      f"(without length grouping: {u['features_per_sec'] / t['features_per_sec']:.2f}x; counting medqa's final "
      f"checkpoint write, which the reference loop does not do: "
      f"{o['features_per_sec_with_checkpoint'] / t['features_per_sec']:.2f}x)")
PY
fi
[[ $parts == *predict* ]] || exit 0

echo "== prediction (COVID-QA contexts, end to end)"
wall() { local start; start=$(date +%s%N); "$@"; ns=$(( $(date +%s%N) - start )); }
secs() { printf '%d.%09d' $((ns / 1000000000)) $((ns % 1000000000)); }
wall "$bin"/qa-finetune predict --model "$work/model" --data "$work/predict.json" --out "$work/pred-medqa" \
  --batch-size 32 "${opts[@]}" >"$work/pred-medqa.log"
ours_s=$(secs)
pred=$(tail -n 1 "$work/pred-medqa.log")
echo "medqa: $pred; ${ours_s} s"
wall $py scripts/bench/bench_qa.py predict --model "$work/model" --data "$work/predict.json" --out "$work/pred-transformers" \
  "${opts[@]}" >"$work/pred-transformers.log"
theirs_s=$(secs)
theirs_p=$(tail -n 1 "$work/pred-transformers.log")
echo "$theirs_p; process ${theirs_s} s"
$py - "$pred" "$ours_s" "$theirs_p" "$theirs_s" "$work" <<'PY'
import json, re, sys
ours_line, ours_s, p, theirs_s = sys.argv[1], float(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4])
theirs_s -= p["check_seconds"]  # the reference's window check, not part of its work
ours_in = sum(float(x) for x in re.findall(r"(?:windows|forward|post-processing) ([0-9.]+) s", ours_line))
print(f"prediction speed-up ({p['questions']} questions, {p['windows']} windows): whole process {theirs_s:.2f} s / "
      f"{ours_s:.2f} s = {theirs_s / ours_s:.2f}x; after loading {p['seconds']:.2f} s / {ours_in:.2f} s = "
      f"{p['seconds'] / ours_in:.2f}x")
a = json.load(open(f"{sys.argv[5]}/pred-medqa/predictions.json", encoding="utf-8"))
b = json.load(open(f"{sys.argv[5]}/pred-transformers/predictions.json", encoding="utf-8"))
same = sum(a.get(k) == v for k, v in b.items())
print(f"same answers from both: {same}/{len(b)}")
PY
