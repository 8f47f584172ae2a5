#!/usr/bin/env bash
# Concept extraction throughput (documents × concepts per second), end to end (load, read, windows,
# forward, post-processing, write): `extract` against a transformers question-answering pipeline over the
# same documents, questions, model, window settings, post-processing and threads (a run_qa-style loop:
# transformers 5 has no question-answering pipeline), in the same run; prints the ratio.
# Documents: the 42 held-out sample notes (7 languages) × the 34 concepts of configs/concepts-stroke.toml.
# Model: random XLM-R QA (scripts/bench_qa.py make-model; MODEL_ARGS changes the shape, default hidden
# 256, 4 layers), a 4,000-piece tokenizer trained on the demo corpus, windows 384/128; 2 threads.
#
#   scripts/bench-extract.sh            MODEL_ARGS="--hidden 768 --layers 12 --heads 12 --intermediate 3072"
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test >/dev/null
cargo build --release -p data-prep -p extract >/dev/null
py=.venv/bin/python
work=runs/bench-extract
rm -rf "$work"; mkdir -p "$work/docs"
cp data/sample/notes/stroke-*-1[5-9].*.txt data/sample/notes/stroke-*-20.*.txt "$work/docs/"
target/release/data-prep tokenizer --config configs/corpus-demo.toml --set "tokenizer=$work/tokenizer.json" \
  --vocab-size 4000 --out "$work/tokenizer.json" >/dev/null
# shellcheck disable=SC2086
$py scripts/bench_qa.py make-model "$work/model" --tokenizer "$work/tokenizer.json" ${MODEL_ARGS:-}
export OMP_NUM_THREADS=2
start=$(date +%s%N)
target/release/extract --model "$work/model" --concepts configs/concepts-stroke.toml --docs "$work/docs" \
  --out "$work/medqa.csv" --device cpu --batch-size 64 | tail -n 1
ours=$(( ($(date +%s%N) - start) / 1000000 ))
start=$(date +%s%N)
PYTHONPATH=scripts $py scripts/bench_extract.py --model "$work/model" --concepts configs/concepts-stroke.toml --docs "$work/docs" \
  --out "$work/transformers.csv" --batch 64
theirs=$(( ($(date +%s%N) - start) / 1000000 ))
n=$(( $(wc -l < "$work/medqa.csv") - 1 ))
# Same answers: the share of document × concept rows whose answer text is equal.
$py - "$work/medqa.csv" "$work/transformers.csv" <<'PY'
import csv, sys
ours = {(r["doc_id"], r["concept"]): r["candidate"] for r in csv.DictReader(open(sys.argv[1], encoding="utf-8"))}
theirs = {(r["doc_id"], r["concept"]): r["answer"] for r in csv.DictReader(open(sys.argv[2], encoding="utf-8"))}
same = sum(ours[k].strip() == theirs.get(k, "").strip() for k in ours)
print(f"same answer text: {same}/{len(ours)}")
PY
awk -v n="$n" -v o="$ours" -v t="$theirs" 'BEGIN {
  printf "medqa extract: %.1f questions/s (%.2f s); transformers loop: %.1f questions/s (%.2f s); ratio %.2fx\n",
    n / (o / 1000), o / 1000, n / (t / 1000), t / 1000, t / o }'
