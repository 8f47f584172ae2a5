#!/usr/bin/env bash
# The seed's two training steps on a real pretrained multilingual encoder (issue 15), medqa beside
# transformers, writing docs/EXPERIMENTS.md itself:
#   1. QA fine-tuning of multilingual-e5-small (imported as XLM-R by `data-prep import-e5`) on SQuAD-es,
#      PoQuAD, Romanian COVID-QA and BioASQ 7b (+ COVID-QA in --full), each split 80/20 by context
#      (`data-prep qa`); the same windows, hyperparameters and frozen word embeddings for medqa
#      (`qa-finetune`) and transformers' Trainer (scripts/tools/qa_trainer_reference.py), 3 seeds each;
#      both scored by `eval score` on every held-out split.
#   2. Domain adaptation: MLM (`mlm-pretrain`) from the same encoder on ../shared/data/corpus (its fresh
#      MLM head first trained alone, the encoder frozen), then the same QA fine-tuning with medqa: with
#      versus without adaptation.
#
#   scripts/experiment-e5.sh           CPU variant: subsets (TRAIN_Q training and DEV_Q held-out questions
#                                      per set), 192-token windows; under an hour on 2 cores
#   scripts/experiment-e5.sh --full    GPU variant: every question (COVID-QA: 200 / 100, its contexts
#                                      are long), 384-token windows, bf16, 100 + 300 MLM steps of
#                                      64×256 (about four passes over the corpus); on a lent GPU machine
#                                      through scripts/experiment-e5-gpu.sh
#
# Needs the release build (scripts/setup.sh --test && cargo build --release --workspace --bins) and
# ../shared/data. SEEDS, TRAIN_Q, DEV_Q, EPOCHS, MLM_HEAD_STEPS, MLM_STEPS, DEVICE, PRECISION override
# the variant's; a set in SETS may name its own sizes (name:lang:file:train_q:dev_q). MEDQA_BIN, PYTHON,
# SHARED_DATA and E5_ASSETS (an `import-e5 --assets` directory) point elsewhere than the build, .venv,
# ../shared/data and the cache.
# BUDGET_S (seconds; 0, the default: none) bounds the run: the seeds run as rounds (medqa, then
# transformers), then the MLM step and the fine-tunings from it, and a round whose expected time (the
# last one's) would end past the budget is not started; the tables report the seeds that completed.
# BLOCK names the run's block of the document (default: the variant, `cpu` or `full`, with three seeds;
# `cpu-5-seeds` and so on with another count), so a run with other settings does not replace the variant's.
# KEEP=1 extends the earlier run in OUT_DIR instead of redoing it (more seeds on the same data): it needs that
# run's table-args.json with the same variant, sets and settings and the same data files (checked); a seed
# whose score files are all there, the MLM step when its model is there, and an adapted fine-tuning whose
# scores are there are kept; the tables count both runs' time and name both commits.
# DOC: where the tables go (default docs/EXPERIMENTS.md; "none": only RUN/table-args.json, from which
# scripts/tools/experiment_table.py --args writes them elsewhere).
# PADDING picks the QA loss both sides train with (scripts/experiment-e5-padding.sh measures the two):
#   out     (default) medqa's default, padding left out of the start/end softmax; the reference with
#           --mask-padding
#   run_qa  run_qa.py's: every window padded to the window length and kept in the softmax; medqa with
#           [data] pad_to_max_length + padding_in_loss, the reference as it is
set -euo pipefail
cd "$(dirname "$0")/.."
# The command as given, with the knobs set in the environment, for the tables.
invocation="scripts/experiment-e5.sh${*:+ $*}"
for knob in OUT_DIR KEEP BLOCK BUDGET_S MLM_STEPS MLM_HEAD_STEPS EPOCHS DEV_Q TRAIN_Q PADDING PRECISION DEVICE SETS SEEDS; do
  [ -n "${!knob+set}" ] && invocation="$knob=\"${!knob}\" $invocation"
done
mode=cpu
[ "${1:-}" = "--full" ] && mode=full
bin=${MEDQA_BIN:-target/release}
py=${PYTHON:-.venv/bin/python}
shared=${SHARED_DATA:-../shared/data}
[ -d "$shared/qa" ] || { echo "experiment-e5.sh: $shared is absent" >&2; exit 1; }
for b in data-prep qa-finetune mlm-pretrain eval; do
  [ -x "$bin/$b" ] || { echo "experiment-e5.sh: build first (cargo build --release --workspace --bins)" >&2; exit 1; }
done
SEEDS=${SEEDS:-"1 2 3"}
PADDING=${PADDING:-out}
case $PADDING in
  out) medqa_padding=false; reference_padding=(--mask-padding) ;;
  run_qa) medqa_padding=true; reference_padding=() ;;
  *) echo "experiment-e5.sh: PADDING is out or run_qa, not '$PADDING'" >&2; exit 1 ;;
esac
if [ "$mode" = cpu ]; then
  TRAIN_Q=${TRAIN_Q:-100}; DEV_Q=${DEV_Q:-100}; EPOCHS=${EPOCHS:-2}; SEQ=192; STRIDE=64; BATCH=16; LR=1e-4
  MLM_HEAD_STEPS=${MLM_HEAD_STEPS:-40}; MLM_STEPS=${MLM_STEPS:-40}; MLM_BATCH=16; MLM_SEQ=128; DEVICE=${DEVICE:-cpu}; PRECISION=${PRECISION:-fp32}
  SETS=${SETS:-"squad-es:es:squad-es-v1.1-dev-small.es.json poquad:pl:poquad-dev.pl.json ro-covid:ro:ro-covid-squad-train.ro.json bioasq:en:bioasq-7b-train-factoid.en.json"}
else
  TRAIN_Q=${TRAIN_Q:-0}; DEV_Q=${DEV_Q:-0}; EPOCHS=${EPOCHS:-2}; SEQ=384; STRIDE=128; BATCH=32; LR=5e-5
  MLM_HEAD_STEPS=${MLM_HEAD_STEPS:-100}; MLM_STEPS=${MLM_STEPS:-300}; MLM_BATCH=64; MLM_SEQ=256; DEVICE=${DEVICE:-cuda}; PRECISION=${PRECISION:-bf16}
  # A COVID-QA context is a whole paper (~30 windows of 384 per question): 200 of its questions weigh as
  # much as the other four sets together.
  SETS=${SETS:-"squad-es:es:squad-es-v1.1-dev-small.es.json poquad:pl:poquad-dev.pl.json ro-covid:ro:ro-covid-squad-train.ro.json bioasq:en:bioasq-7b-train-factoid.en.json covid-qa:en:covid-qa-200423.en.json:200:100"}
fi
BUDGET_S=${BUDGET_S:-0}
KEEP=${KEEP:-0}
settings="padding=$PADDING subset=spread train_q=$TRAIN_Q dev_q=$DEV_Q epochs=$EPOCHS seq=$SEQ stride=$STRIDE batch=$BATCH lr=$LR precision=$PRECISION mlm_head_steps=$MLM_HEAD_STEPS mlm_steps=$MLM_STEPS mlm_batch=$MLM_BATCH mlm_seq=$MLM_SEQ"
DOC=${DOC:-docs/EXPERIMENTS.md}
precision_flags=(); [ "$PRECISION" = bf16 ] && precision_flags=(--bf16)
out=${OUT_DIR:-runs/e5-experiment-$mode}
mkdir -p "$out/data" "$out/scores"
start=$(date +%s)
# The commit the run started from (the tables are written at its end, when HEAD may have moved on).
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || true)}
kept_commit="" kept_elapsed=0
if [ "$KEEP" = 1 ]; then
  # The earlier run's commit and time, after checking it ran what this one would.
  # Its commit may already name two (a run that kept another's): every commit it names, in order.
  read -r kept_elapsed kept_commit < <("$py" - "$out/table-args.json" "$mode" "$SETS" "$settings" <<'PY'
import json, re, sys
path, mode, sets, settings = sys.argv[1:]
try:
    run = json.load(open(path, encoding="utf-8"))
except OSError as e:
    sys.exit(f"experiment-e5.sh: KEEP=1 needs the earlier run's {path}: {e.strerror}")
for key, want in (("mode", mode), ("sets", sets), ("settings", settings)):
    if run.get(key) != want:
        sys.exit(f"experiment-e5.sh: KEEP=1: {path} has {key} {run.get(key)!r}, this run {want!r}")
commits = list(dict.fromkeys(re.findall(r"\b[0-9a-f]{7,40}\b", run.get("commit") or ""))) or ["unknown"]
print(run.get("elapsed") or 0, ", ".join(commits))
PY
  ) || exit 1
  [ -n "$kept_commit" ] || exit 1
fi
step() { echo; echo "== [$(( $(date +%s) - start )) s] $*"; }
# Whether a run expected to take $1 seconds ends within BUDGET_S.
fits() { [ "$BUDGET_S" = 0 ] || [ $(( $(date +%s) - start + $1 )) -le "$BUDGET_S" ]; }

step "import multilingual-e5-small as XLM-R"
assets=(); [ -n "${E5_ASSETS:-}" ] && assets=(--assets "$E5_ASSETS")
[ -f "$out/e5/import.json" ] || "$bin/data-prep" import-e5 --out "$out/e5" "${assets[@]}"

step "data: each set split 80/20 by context; answerable questions; $([ "$TRAIN_Q" = 0 ] && echo all || echo "$TRAIN_Q / $DEV_Q spread over contexts") per set"
train_files=(); dev_sets=()
# KEEP: the earlier run's data files, to check they are made again byte for byte.
kept_data=""
[ "$KEEP" = 1 ] && kept_data=$(cd "$out/data" && sha256sum -- *.train.json *.dev.json)
for s in $SETS; do
  IFS=: read -r name lang file set_train set_dev <<< "$s"
  "$bin/data-prep" qa --input "$shared/qa/$file:lang=$lang:name=$name" --out "$out/data/$name.split-train.json" \
    --dev-permille 200 --dev-out "$out/data/$name.split-dev.json" > "$out/data/$name.log"
  for part in train:${set_train:-$TRAIN_Q} dev:${set_dev:-$DEV_Q}; do
    IFS=: read -r which n <<< "$part"
    # Spread over contexts: a set with many questions per context is not scored on its first few contexts.
    "$py" scripts/tools/qa_subset.py "$out/data/$name.split-$which.json" "$out/data/$name.$which.json" "$n" --spread
  done
  train_files+=("$out/data/$name.train.json"); dev_sets+=("$name")
done
if [ "$KEEP" = 1 ] && ! (cd "$out/data" && sha256sum --check --quiet - <<< "$kept_data"); then
  echo "experiment-e5.sh: KEEP=1: the data made now differ from the earlier run's in $out/data" >&2
  exit 1
fi

# The [train] keys both fine-tunings and the MLM steps share: 10% warm-up, weight decay 0.01, no evaluation
# or checkpoints during the run, frozen word embeddings (96 M of the 117 M parameters; $1 freezes others).
train_common() {
  printf '%s\n' 'warmup_ratio = 0.1' 'weight_decay = 0.01' 'logging_steps = 10' 'eval_steps = 0' 'save_steps = 0' \
    'save_total_limit = 1' "freeze = [\"*word_embeddings*\"${1:+, \"$1\"}]"
}
toml_list() { local sep=""; printf '['; for f in "$@"; do printf '%s{ path = "%s" }' "$sep" "$f"; sep=", "; done; printf ']'; }
# medqa's QA fine-tuning from MODEL into RUN with SEED, then prediction and scoring of every held-out set.
medqa_qa() {
  local model=$1 run=$2 seed=$3 tag=$4
  cat > "$run.toml" <<TOML
output_dir = "$run"
init_from = "$model"
[data]
train = $(toml_list "${train_files[@]}")
max_seq_length = $SEQ
doc_stride = $STRIDE
max_query_length = 128
eval_batch_size = 64
pad_to_max_length = $medqa_padding
padding_in_loss = $medqa_padding
[train]
seed = $seed
learning_rate = $LR
num_train_epochs = $EPOCHS
per_device_train_batch_size = $BATCH
precision = "$PRECISION"
$(train_common)
TOML
  "$bin/qa-finetune" --config "$run.toml" --overwrite --device "$DEVICE" > "$run.log" 2>&1
  for name in "${dev_sets[@]}"; do
    "$bin/qa-finetune" predict --device "$DEVICE" --precision "$PRECISION" --model "$run/final" \
      --data "$out/data/$name.dev.json" --out "$run/pred-$name" >> "$run.log" 2>&1
  done
  score_held_out "$run" "$tag-seed$seed"
}
# Whether KEEP keeps the earlier run's TAG fine-tuning of SEED: its score files are all there.
kept() {
  [ "$KEEP" = 1 ] || return 1
  local name
  for name in "${dev_sets[@]}"; do [ -f "$out/scores/$1-seed$2-$name.json" ] || return 1; done
}
# Scores RUN/pred-SET/predictions.json of every held-out set with medqa's eval into scores/TAG-SET.json.
score_held_out() {
  local run=$1 tag=$2
  for name in "${dev_sets[@]}"; do
    "$bin/eval" score --data "$out/data/$name.dev.json" --predictions "$run/pred-$name/predictions.json" \
      > "$out/scores/$tag-$name.json" 2>> "$run.log"
  done
}
echo "see $out/*.log for each run"
pairs=() adapted=() pair_s=0
for seed in $SEEDS; do
  fits "$pair_s" || { step "seed $seed and later not started: a round takes ${pair_s} s, BUDGET_S is $BUDGET_S"; break; }
  if kept medqa "$seed" && kept transformers "$seed"; then
    step "seed $seed: both fine-tunings kept from the earlier run (KEEP)"
    pairs+=("$seed")
    continue
  fi
  round_start=$(date +%s)
  step "medqa QA fine-tuning, seed $seed"
  medqa_qa "$out/e5" "$out/medqa-seed$seed" "$seed" medqa
  medqa_s=$(( $(date +%s) - round_start ))
  step "transformers Trainer QA fine-tuning, seed $seed"
  run="$out/transformers-seed$seed"
  # The same warm-up as medqa's: ceil(0.1 × optimizer steps), its steps read from medqa's run of this seed.
  steps=$("$py" -c "import json,sys; print(max(json.loads(l)['step'] for l in open(sys.argv[1]) if l.strip()))" \
    "$out/medqa-seed$seed/train_log.jsonl")
  "$py" scripts/tools/qa_trainer_reference.py train --model "$out/e5" --train "${train_files[@]}" --out "$run" \
    --seed "$seed" --learning-rate "$LR" --epochs "$EPOCHS" --batch "$BATCH" \
    --warmup-steps "$(( (steps + 9) / 10 ))" --weight-decay 0.01 --max-seq-length "$SEQ" --doc-stride "$STRIDE" \
    --freeze '*word_embeddings*' "${reference_padding[@]}" "${precision_flags[@]}" > "$run.log" 2>&1
  dev_files=() pred_dirs=()
  for name in "${dev_sets[@]}"; do dev_files+=("$out/data/$name.dev.json") pred_dirs+=("$run/pred-$name"); done
  # One process for every held-out set: a Python start with torch and transformers costs seconds.
  "$py" scripts/tools/qa_trainer_reference.py predict --model "$run/final" --max-seq-length "$SEQ" \
    --doc-stride "$STRIDE" "${precision_flags[@]}" --data "${dev_files[@]}" --out "${pred_dirs[@]}" >> "$run.log" 2>&1
  score_held_out "$run" "transformers-seed$seed"
  pairs+=("$seed")
  pair_s=$(( $(date +%s) - round_start ))
done

# The MLM step is started when at least two fine-tunings' time is left, the fine-tunings from it one by one.
if [ "$KEEP" = 1 ] && [ -f "$out/mlm/final/model.safetensors" ]; then
  step "domain adaptation: the MLM step kept from the earlier run (KEEP)"
  adapt_ok=1
elif fits $(( 2 * ${medqa_s:-0} )); then
adapt_ok=1
step "domain adaptation: MLM from the encoder on the shared corpus ($MLM_HEAD_STEPS steps of the head alone, then $MLM_STEPS)"
# configs/corpus-shared.toml without its QA-context sources: the held-out splits' contexts must not be
# in the adaptation corpus.
"$py" - configs/corpus-shared.toml "$out/corpus.toml" "$out/e5/tokenizer.json" "$shared" <<'PY'
import json, sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
cfg["tokenizer"] = sys.argv[3]
sources = [s for s in cfg.pop("sources") if s["format"] != "squad"]
for s in sources:  # SHARED_DATA
    s["path"] = s["path"].replace("../shared/data", sys.argv[4], 1)
lines = [f"{k} = {json.dumps(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
for s in sources:
    lines += ["", "[[sources]]"] + [f"{k} = {json.dumps(v)}" for k, v in s.items()]
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(lines) + "\n")
PY
"$bin/data-prep" corpus --config "$out/corpus.toml" --out "$out/corpus" > "$out/corpus.log"
# MLM run NAME from INIT for STEPS, freezing FREEZE (a pattern) besides the word embeddings.
mlm_run() {
  cat > "$out/$1.toml" <<TOML
output_dir = "$out/$1"
[model]
init_from = "$2"
[data]
shards = "$out/corpus"
max_seq_length = $MLM_SEQ
[train]
seed = 1
learning_rate = $LR
max_steps = $3
per_device_train_batch_size = $MLM_BATCH
precision = "$PRECISION"
$(train_common "${4:-}")
TOML
  "$bin/mlm-pretrain" --config "$out/$1.toml" --overwrite --device "$DEVICE" > "$out/$1.log" 2>&1
}
# XLM-R comes with its pretrained MLM head, multilingual-e5 with none: the fresh head first learns alone
# (the encoder frozen, so it is still the imported one), then the adaptation starts from the encoder with
# a working head, as it would from XLM-R, instead of sending a random head's gradients into the encoder.
adapt_from=$out/e5
if [ "$MLM_HEAD_STEPS" != 0 ]; then
  mlm_run mlm-head "$out/e5" "$MLM_HEAD_STEPS" "roberta.*"
  adapt_from=$out/mlm-head/final
fi
mlm_run mlm "$adapt_from" "$MLM_STEPS"
else
  adapt_ok=0
  step "domain adaptation: not started (BUDGET_S)"
fi
if [ "$adapt_ok" = 1 ]; then
for seed in "${pairs[@]}"; do
  if kept adapted "$seed"; then
    step "fine-tuning from the adapted encoder, seed $seed: kept from the earlier run (KEEP)"
    adapted+=("$seed")
    continue
  fi
  fits "${medqa_s:-0}" || { step "fine-tuning from the adapted encoder, seed $seed and later: not started (BUDGET_S)"; break; }
  step "medqa QA fine-tuning from the adapted encoder, seed $seed"
  medqa_qa "$out/mlm/final" "$out/adapted-seed$seed" "$seed" adapted
  adapted+=("$seed")
done
fi

step "tables"
# Everything the tables need besides the run's files: experiment_table.py --args reads it (also where the
# run's directory was brought back from another machine).
"$py" - "$out/table-args.json" mode="$mode" seeds="${pairs[*]}" adapted_seeds="${adapted[*]}" sets="$SETS" \
  block="${BLOCK:-}" command="$invocation" elapsed="$(( $(date +%s) - start + kept_elapsed ))" machine="${MACHINE:-}" \
  commit="$([ -n "$kept_commit" ] && [ "$kept_commit" != "$commit" ] && echo "$kept_commit (kept runs) and $commit" || echo "$commit")" \
  shared="$shared" settings="$settings" <<'PY'
import hashlib, json, sys
from pathlib import Path
args = dict(kv.split("=", 1) for kv in sys.argv[2:])
# The QA files' hashes, taken here: a run on a lent machine has its own copy of the data, and its tables
# may be written where the data is not.
shared = Path(args.pop("shared")) / "qa"
args["sources_sha256"] = {f: hashlib.sha256((shared / f).read_bytes()).hexdigest()
                          for f in (t.split(":")[2] for t in args["sets"].split())}
json.dump(args, open(sys.argv[1], "w", encoding="utf-8"), indent=1)
PY
if [ "$DOC" != none ]; then
  "$py" scripts/tools/experiment_table.py --args "$out/table-args.json" --out "$out" --doc "$DOC"
fi
step "done"
