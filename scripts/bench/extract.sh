#!/usr/bin/env bash
# Concept extraction throughput (documents × concepts per second), end to end (load, read, windows,
# forward, post-processing, write): `extract` against a transformers question-answering pipeline over the
# same documents, questions, model, window settings, post-processing and threads (a run_qa-style loop:
# transformers 5 has no question-answering pipeline), in the same run; prints the ratio.
# Documents: the 42 held-out sample notes (7 languages) × the 34 concepts of configs/concepts-stroke.toml.
# Model: random XLM-R QA (scripts/bench/bench_qa.py make-model; MODEL_ARGS changes the shape, default hidden
# 256, 4 layers), a 4,000-piece tokenizer trained on the demo corpus, windows 384/128; 2 threads.
#
#   scripts/bench/extract.sh            MODEL_ARGS="--hidden 768 --layers 12 --heads 12 --intermediate 3072"
#   MEDQA_BIN=dir PYTHON=python3 TOKENIZER=tok.json DEVICE=cuda PRECISION=bf16 COPIES=10 scripts/bench/extract.sh
#       (prebuilt binaries, e.g. on a GPU machine without a Rust toolchain; torch from PYTHON; COPIES
#       repeats the notes under new names, for a run long enough to time throughput rather than start-up;
#       CONCEPTS_JSON=f.json gives the reference the catalogue as JSON where Python has no tomllib)
set -euo pipefail
cd "$(dirname "$0")/../.."
device=${DEVICE:-cpu}
precision=${PRECISION:-fp32}
work=${WORK:-runs/bench-extract}
if [ -n "${MEDQA_BIN:-}" ]; then
  bin=$MEDQA_BIN; py=${PYTHON:-python3}
  . scripts/bench/torch-lib.sh && use_torch_lib "$py"
else
  scripts/setup.sh --test >/dev/null
  cargo build --release -p data-prep -p extract >/dev/null
  bin=target/release; py=.venv/bin/python
fi
rm -rf "$work"; mkdir -p "$work/docs"
for copy in $(seq 1 "${COPIES:-1}"); do
  for f in data/sample/notes/stroke-*-1[5-9].*.txt data/sample/notes/stroke-*-20.*.txt; do
    name=$(basename "$f")
    [ "$copy" = 1 ] || name="c$copy-$name"
    cp "$f" "$work/docs/$name"
  done
done
if [ -n "${TOKENIZER:-}" ]; then
  cp "$TOKENIZER" "$work/tokenizer.json"
else
  "$bin"/data-prep tokenizer --config configs/corpus-demo.toml --set "tokenizer=$work/tokenizer.json" \
    --vocab-size 4000 --out "$work/tokenizer.json" >/dev/null
fi
# shellcheck disable=SC2086
$py scripts/bench/bench_qa.py make-model "$work/model" --tokenizer "$work/tokenizer.json" ${MODEL_ARGS:-}
export OMP_NUM_THREADS=2
start=$(date +%s%N)
"$bin"/extract --model "$work/model" --concepts configs/concepts-stroke.toml --docs "$work/docs" \
  --out "$work/medqa.csv" --device "$device" --precision "$precision" --batch-size 64 | tail -n 1
ours=$(( ($(date +%s%N) - start) / 1000000 ))
start=$(date +%s%N)
PYTHONPATH=scripts/bench${PYTHONPATH:+:$PYTHONPATH} $py scripts/bench/bench_extract.py --model "$work/model" --concepts "${CONCEPTS_JSON:-configs/concepts-stroke.toml}" \
  --docs "$work/docs" --out "$work/transformers.csv" --batch 64 --device "$device" --precision "$precision" \
  | tee "$work/transformers.log"
# Its window check is not run_qa's work: its seconds come off the reference's time.
check_ms=$(awk '/check_seconds/ { printf "%d", $NF * 1000 }' "$work/transformers.log")
theirs=$(( ($(date +%s%N) - start) / 1000000 - ${check_ms:-0} ))
n=$(( $(wc -l < "$work/medqa.csv") - 1 ))
# Same answers: the share of document × concept rows whose answer text is equal; where it differs, whether
# the two best spans' scores (start + end logit) are within 1% of the score range, i.e. a near-tie that
# rounding decides (a random model's logits are nearly flat; GPU kernels differ with the padded length).
$py - "$work/medqa.csv" "$work/transformers.csv" <<'PY'
import csv, sys
ours = {(r["doc_id"], r["concept"]): r for r in csv.DictReader(open(sys.argv[1], encoding="utf-8"))}
theirs = {(r["doc_id"], r["concept"]): r for r in csv.DictReader(open(sys.argv[2], encoding="utf-8"))}
differ = [k for k in ours if ours[k]["candidate"].strip() != theirs[k]["answer"].strip()]
scores = [float(r["score"]) for r in theirs.values() if r["score"]]
span = max(scores) - min(scores)
num = lambda x: float(x) if x else float("nan")
ties = sum(abs(num(ours[k]["score"]) - num(theirs[k]["score"])) <= 0.01 * span for k in differ)
print(f"same answer text: {len(ours) - len(differ)}/{len(ours)}; of the {len(differ)} others, {ties} are "
      f"near-ties (best scores within 1% of the score range {span:.3f})")
PY
awk -v n="$n" -v o="$ours" -v t="$theirs" -v d="$device" -v p="$precision" 'BEGIN {
  printf "%s %s: medqa extract: %.1f questions/s (%.2f s); transformers loop: %.1f questions/s (%.2f s); ratio %.2fx\n",
    d, p, n / (o / 1000), o / 1000, n / (t / 1000), t / 1000, t / o }'
