#!/usr/bin/env bash
# The main job end to end on data the project ships (data/sample), as far as the pipeline exists today:
#   set-up → release build → data-prep (tokenizer + corpus shards) → mlm-pretrain (a small XLM-R from
#   scratch) → fill-mask probe → qa-finetune on the sample questions → predict → eval (EM/F1 per
#   language) → parity report of our XLM-R against transformers' reference outputs.
# Concept extraction into tables (#7) joins here when it lands.
# Same command, same numbers: every step is seeded. Results: runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${DEVICE:-auto}
out=runs/demo
steps=300
qa_steps=""
if [ "${1:-}" = "--quick" ]; then steps=40; qa_steps="--set train.max_steps=40"; fi

scripts/setup.sh
echo "== build (release)"
cargo build --release --workspace --examples
target/release/mlm-pretrain --check-device --device "$device"

echo "== data-prep: tokenizer and corpus shards from data/sample/corpus (7 languages)"
mkdir -p "$out"
target/release/data-prep tokenizer --config configs/corpus-demo.toml --vocab-size 1000 --out "$out/tokenizer.json"
target/release/data-prep corpus --config configs/corpus-demo.toml --out "$out/corpus"

echo "== mlm-pretrain: small XLM-R from scratch ($steps steps)"
target/release/mlm-pretrain --config configs/mlm-demo.toml --overwrite --device "$device" --set "train.max_steps=$steps"
target/release/mlm-pretrain fill-mask --model "$out/mlm/final" --top-k 5 --device "$device" \
  "Pacientul a fost internat cu accident vascular cerebral <mask> acut."

echo "== qa-finetune: extractive QA on data/sample/qa (7 languages; own-language and English questions)"
# shellcheck disable=SC2086
target/release/qa-finetune --config configs/qa-demo.toml --overwrite --device "$device" $qa_steps
target/release/qa-finetune predict --model "$out/qa/final" --data data/sample/qa/dev.json --out "$out/qa/pred" --device "$device"
echo "== eval: EM/F1 on the sample dev questions, per language"
target/release/eval score --data data/sample/qa/dev.json --predictions "$out/qa/pred/predictions.json" \
  --name sample-dev --markdown "$out/qa/eval.md" --per-question "$out/qa/eval-per-question.jsonl" > "$out/qa/eval.json"

echo "== parity with transformers on crates/model/tests/fixtures"
target/release/examples/parity_report --device "$device"

echo
echo "results in $out/: tokenizer.json, corpus/ (shards, manifest.json, rejects.jsonl),"
echo "  mlm/ and qa/ (manifest.json, train_log.jsonl, tb/ for TensorBoard, checkpoints/, final/, eval_results.json),"
echo "  qa/pred/ (predictions.json, nbest_predictions.json), qa/eval.json and qa/eval.md"
