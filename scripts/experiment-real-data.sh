#!/usr/bin/env bash
# "Does it learn on real data?": a small XLM-R pre-trained from scratch on ../shared/data/corpus, then
# fine-tuned for QA on the medical training sets of ../shared/data/qa; EM/F1 per data set and language
# before fine-tuning (fresh QA head), after fine-tuning on ro+en, and after fine-tuning on ro only (the
# cross-lingual rows: es and pl are never trained on; en only in the ro+en model).
#
#   scripts/experiment-real-data.sh            (after `cargo build --release --workspace`)
#   MEDQA_BIN=dir DEVICE=cuda PRECISION=bf16 scripts/experiment-real-data.sh   (prebuilt binaries, GPU)
#
# Writes runs/real/results.jsonl and its block of docs/EXPERIMENTS.md (scripts/tools/real_data_table.py, from
# the run's files; DOC=none leaves the document alone, `real_data_table.py --out runs/real` writes it later).
# Sized for a GPU; on CPU set MLM_STEPS and QA_STEPS low (and EVAL_SETS="name:lang ..." to score fewer sets):
#   MLM_STEPS=400 QA_STEPS=250 EVAL_SETS="ro-covid-squad-dev.ro:ro bioasq-7b-test-factoid-goldspans.en:en" \
#     scripts/experiment-real-data.sh
# MACHINE names the machine in the block (default: the GPU's name, else the CPU's); BLOCK names the block.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
invocation=$(for v in DEVICE PRECISION MLM_STEPS QA_STEPS EVAL_SETS; do
  if [ -n "${!v:-}" ]; then printf '%s=%q ' "$v" "${!v}"; fi
done)scripts/experiment-real-data.sh
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
bin=${MEDQA_BIN:-target/release}
device=${DEVICE:-auto}
precision=${PRECISION:-fp32}
out=runs/real
qa=../shared/data/qa
[ -d "$qa" ] || { echo "../shared/data is absent: nothing to run" >&2; exit 1; }
run() { echo "+ $*" >&2; "$@"; }

if [ ! -f "$out/corpus/manifest.json" ]; then
  run "$bin/data-prep" tokenizer --config configs/corpus-shared.toml --vocab-size 16000 --out "$out/tokenizer.json"
  run "$bin/data-prep" corpus --config configs/corpus-shared.toml --out "$out/corpus"
fi
mkdir -p "$out/logs"
run "$bin/mlm-pretrain" --config configs/mlm-real.toml --overwrite --device "$device" \
  --set "train.precision=$precision" ${MLM_STEPS:+--set "train.max_steps=$MLM_STEPS"} 2>&1 | tee "$out/logs/mlm.log" | tail -n 3

common=(--device "$device" --overwrite --set "train.precision=$precision" ${QA_STEPS:+--set "train.max_steps=$QA_STEPS"})
run "$bin/qa-finetune" --config configs/qa-real.toml "${common[@]}" --set train.max_steps=0 \
  --set "output_dir=$out/qa-before" | tail -n 1
run "$bin/qa-finetune" --config configs/qa-real.toml "${common[@]}" | tail -n 2
# Ro only: the first training file.
sed -e '/bioasq-7b-train/d' -e 's#runs/real/qa-ro-en#runs/real/qa-ro#' configs/qa-real.toml > "$out/qa-ro.toml"
run "$bin/qa-finetune" --config "$out/qa-ro.toml" "${common[@]}" | tail -n 2

: > "$out/results.jsonl"
for model in qa-before qa-ro-en qa-ro; do
  for set in ${EVAL_SETS:-ro-covid-squad-dev.ro:ro bioasq-7b-test-factoid-goldspans.en:en covid-qa-200423.en:en \
             squad-v1.1-dev.en:en squad-es-v1.1-dev-small.es:es poquad-dev.pl:pl}; do
    name=${set%%:*}; lang=${set##*:}
    pred="$out/pred/$model/$name"
    mkdir -p "$pred"
    # Its warnings (answers repaired on loading) go into the block's loading notes.
    run "$bin/qa-finetune" predict --model "$out/$model/final" --data "$qa/$name.json" --out "$pred" \
      --lang "$lang" --device "$device" --batch-size 256 > "$pred/predict.log" 2>&1 \
      || { cat "$pred/predict.log" >&2; exit 1; }
    na=(); [ -f "$pred/null_odds.json" ] && na=(--na-probs "$pred/null_odds.json")
    "$bin/eval" score --data "$qa/$name.json" --predictions "$pred/predictions.json" --lang "$lang" \
      "${na[@]}" --name "$name" > "$pred/score.json"
    python3 - "$model" "$name" "$lang" "$pred/score.json" >> "$out/results.jsonl" <<'PY'
import json, sys
s = json.load(open(sys.argv[4]))
o = s.get("overall", s)
print(json.dumps({"model": sys.argv[1], "set": sys.argv[2], "lang": sys.argv[3],
                  "exact": o["exact"], "f1": o["f1"], "total": o["total"]}))
PY
  done
done
if [ -z "${MACHINE:-}" ]; then
  MACHINE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true)
  [ -n "$MACHINE" ] && MACHINE="one $MACHINE" \
    || MACHINE="$(nproc) CPU cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1))"
fi
python3 - "$out/run.json" "$invocation" "$precision" "$MACHINE" "$commit" "$(( $(date +%s) - start ))" "${BLOCK:-}" <<'PY'
import datetime, json, sys
path, command, precision, machine, commit, elapsed, block = sys.argv[1:]
json.dump({"command": command, "precision": precision, "machine": machine, "commit": commit,
           "date": datetime.date.today().isoformat(), "elapsed": int(elapsed), "block": block},
          open(path, "w"), indent=1)
PY
if [ "${DOC:-docs/EXPERIMENTS.md}" != none ]; then
  python3 scripts/tools/real_data_table.py --out "$out" --doc "${DOC:-docs/EXPERIMENTS.md}"
fi
