#!/usr/bin/env bash
# The main job end to end on data the project ships (data/sample), as far as the pipeline exists today:
#   set-up → release build → data-prep (tokenizer + corpus shards) → mlm-pretrain (a small XLM-R from
#   scratch) → fill-mask probe → parity report of our XLM-R against transformers' reference outputs.
# QA fine-tuning (#6), evaluation (#3) and extraction (#7) join here as they land.
# Same command, same numbers: every step is seeded. Results: runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${DEVICE:-auto}
out=runs/demo
steps=300
[ "${1:-}" = "--quick" ] && steps=40

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

echo "== parity with transformers on crates/model/tests/fixtures"
target/release/examples/parity_report --device "$device"

echo
echo "results in $out/: tokenizer.json, corpus/ (shards, manifest.json, rejects.jsonl),"
echo "  mlm/ (manifest.json, train_log.jsonl, tb/ for TensorBoard, checkpoints/, final/, eval_results.json)"
