#!/usr/bin/env bash
# The main job end to end on the sample data the project ships (data/sample, 7 languages, all invented):
#   set-up → release build → data-prep (tokenizer, corpus shards, QA-set validation) → mlm-pretrain (a
#   small XLM-R from scratch) → qa-finetune → predict + eval (EM/F1 per language) → concept extraction
#   from the held-out notes into tables → nightly evaluation report → PNG training curves.
# Same command, same numbers: every step is seeded. Results: runs/demo/ (runs/demo-quick/ with --quick).
#
#   scripts/demo.sh            the full run (about 10 minutes of pipeline on 2 CPU cores, after the build)
#   scripts/demo.sh --quick    a smoke run of every step in about 2 minutes (the test suite runs it)
# DEVICE=cuda uses a GPU. MEDQA_DEMO_NO_BUILD=1 skips set-up and build (binaries already in target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
device=${DEVICE:-auto}
out=runs/demo
mlm_steps=1200
qa_epochs=2
vocab=4000
if [ "${1:-}" = "--quick" ]; then
  out=runs/demo-quick; mlm_steps=40; qa_epochs=0; vocab=800
fi
bin=target/release
start=$(date +%s)
# Each step's wall-clock seconds go to $out/timings.tsv (step id, seconds) for the summary.
current=""; current_start=0
step() {
  local now; now=$(date +%s)
  if [ -n "$current" ]; then printf '%s\t%s\n' "$current" "$(( now - current_start ))" >> "$out/timings.tsv"; fi
  current=$1; current_start=$now; shift
  echo; echo "== [$(( now - start )) s] $*"
}

if [ -z "${MEDQA_DEMO_NO_BUILD:-}" ]; then
  scripts/setup.sh
  echo; echo "== build (release): every binary and example"
  # --bins as well: an explicit --examples alone replaces the default selection and builds no binary.
  cargo build --release --workspace --bins --examples
  start=$(date +%s)
fi
for b in data-prep mlm-pretrain qa-finetune eval extract link examples/parity_report; do
  [ -x "$bin/$b" ] || { echo "demo.sh: $bin/$b is not built (run without MEDQA_DEMO_NO_BUILD)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"
"$bin/mlm-pretrain" --check-device --device "$device"

step data-prep-tokenizer-corpus "data-prep: tokenizer ($vocab pieces) and corpus shards from data/sample (7 languages)"
cfg=(--config configs/corpus-demo.toml --set "tokenizer=$out/tokenizer.json")
"$bin/data-prep" tokenizer "${cfg[@]}" --vocab-size "$vocab" --out "$out/tokenizer.json"
"$bin/data-prep" corpus "${cfg[@]}" --out "$out/corpus"

step data-prep-qa "data-prep: validate the sample QA sets, with window statistics"
for split in train dev; do
  "$bin/data-prep" qa --input "data/sample/qa/$split.json:name=sample-$split" --out "$out/qa-data/$split.json" \
    --tokenizer "$out/tokenizer.json" --max-seq-length 256 --doc-stride 64 --strict
done

step mlm "mlm-pretrain: a small XLM-R from scratch ($mlm_steps steps)"
"$bin/mlm-pretrain" --config configs/mlm-demo.toml --overwrite --device "$device" \
  --set "output_dir=$out/mlm" --set "data.shards=$out/corpus" --set "train.max_steps=$mlm_steps"
"$bin/mlm-pretrain" fill-mask --model "$out/mlm/final" --top-k 5 --device "$device" \
  "Tromboliză intravenoasă cu <mask>, timp ușă-ac 35 minute."

step qa "qa-finetune: extractive QA on the training notes (own-language and English questions)"
qa_set=(--set "output_dir=$out/qa" --set "init_from=$out/mlm/final"
        --set "data.train=[{path=\"$out/qa-data/train.json\"}]"
        --set "data.validation=[{path=\"$out/qa-data/dev.json\"}]")
if [ "$qa_epochs" = 0 ]; then qa_set+=(--set "train.max_steps=30"); else qa_set+=(--set "train.num_train_epochs=$qa_epochs"); fi
"$bin/qa-finetune" --config configs/qa-demo.toml --overwrite --device "$device" "${qa_set[@]}"

step predict-eval "predict + eval: EM/F1 on the held-out notes' questions, per language"
"$bin/qa-finetune" predict --model "$out/qa/final" --data data/sample/qa/dev.json --out "$out/qa/pred" --device "$device"
"$bin/eval" score --data data/sample/qa/dev.json --predictions "$out/qa/pred/predictions.json" \
  --name sample-dev --markdown "$out/eval.md" --per-question "$out/eval-per-question.jsonl" > "$out/eval.json"

step extract "extract: 34 concepts × the 42 held-out notes → tables, answers linked to the sample terminology"
mkdir -p "$out/dev-notes"
for f in data/sample/notes/stroke-*-1[5-9].*.txt data/sample/notes/stroke-*-20.*.txt; do cp "$f" "$out/dev-notes/"; done
"$bin/link" index --terms data/sample/terms/stroke-values.csv:name=stroke-sample --out "$out/terms-index"
"$bin/extract" --model "$out/qa/final" --concepts configs/concepts-stroke.toml --docs "$out/dev-notes" \
  --out "$out/extraction.parquet" --wide "$out/extraction-wide.csv" --linked-data "$out/extraction.nt" \
  --link-index "$out/terms-index" --device "$device"
step extract-en "extract: the same with English questions on every note"
"$bin/extract" --model "$out/qa/final" --concepts configs/concepts-stroke.toml --docs "$out/dev-notes" \
  --out "$out/extraction-en-questions.csv" --question-lang en --device "$device"

step nightly "eval nightly: the suite in configs/nightly.toml on this model (history, deltas, plot)"
sed -e "s#runs/nightly#$out/nightly#; s#runs/demo/qa/final#$out/qa/final#; s#device = \"auto\"#device = \"$device\"#" \
  configs/nightly.toml > "$out/nightly.toml"
"$bin/eval" nightly --config "$out/nightly.toml" --predictor "$bin/qa-finetune"

step curves "training curves (PNG)"
"$bin/eval" curves --log "$out/mlm/train_log.jsonl" --metric train/loss --metric eval/loss \
  --title "MLM pre-training" --out "$out/curves-mlm.png"
"$bin/eval" curves --log "$out/qa/train_log.jsonl" --metric train/loss --title "QA fine-tuning: loss" \
  --out "$out/curves-qa-loss.png"
"$bin/eval" curves --log "$out/qa/train_log.jsonl" --metric eval/f1 --metric eval/exact \
  --title "QA fine-tuning: validation EM/F1" --out "$out/curves-qa-f1.png"

step parity "parity with transformers on crates/model/tests/fixtures"
"$bin/examples/parity_report" --device "$device"

step done "done"
# The figures the README quotes, from this run's files (scripts/tools/demo_summary.py --readme
# README.md puts them there).
"${PYTHON:-python3}" scripts/tools/demo_summary.py "$out" > "$out/summary.md"
cat "$out/summary.md"
echo
echo "results in $out/:"
echo "  tokenizer.json, corpus/ (shards, manifest.json, statistics.parquet), qa-data/ (validated sets, stats)"
echo "  mlm/, qa/ (manifest.json, train_log.jsonl, tb/ for TensorBoard, checkpoints/, final/)"
echo "  eval.json, eval.md, qa/pred/ (predictions.json, nbest_predictions.json)"
echo "  terms-index/ (the sample terminology's link index), extraction.parquet (one row per note × concept,"
echo "  with the linked concept of each answer), extraction-wide.csv, extraction.nt (answers → concept IRIs),"
echo "  extraction-en-questions.csv (English questions on every note)"
echo "  nightly/ (dated report, history.parquet, f1-sample-dev.png), curves-*.png"
