#!/usr/bin/env bash
# Issue 15's follow-up: is the difference between medqa's and transformers' QA fine-tuning the one modelling
# choice they differ in — medqa leaves padding out of the start/end softmax, run_qa.py's model keeps it
# (every window padded to max_seq_length) — or chance? A 2 × 2 on BioASQ 7b from the real encoder
# (multilingual-e5-small imported as XLM-R), SEEDS seeds each, the same windows and hyperparameters:
#
#   medqa, padding out         (medqa's default)
#   medqa, run_qa padding      (data.pad_to_max_length + data.padding_in_loss)
#   transformers, run_qa       (run_qa.py's loss: Trainer as it is)
#   transformers, padding out  (qa_trainer_reference.py --mask-padding)
#
# BioASQ split 80/20 by context (`data-prep qa`); the first TRAIN_Q training and DEV_Q held-out questions
# (default 400 / 200), 192-token windows, 2 epochs, batch 16, lr 1e-4, frozen word embeddings (as the CPU
# variant of scripts/experiment-e5.sh). About 35 minutes on 2 cores. Writes its block of docs/EXPERIMENTS.md.
# Needs the release build and ../shared/data, like scripts/experiment-e5.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release
py=.venv/bin/python
shared=../shared/data
[ -d "$shared/qa" ] || { echo "experiment-e5-padding.sh: $shared is absent" >&2; exit 1; }
for b in data-prep qa-finetune eval; do
  [ -x "$bin/$b" ] || { echo "experiment-e5-padding.sh: build first (cargo build --release --workspace --bins)" >&2; exit 1; }
done
SEEDS=${SEEDS:-"1 2 3"}; TRAIN_Q=${TRAIN_Q:-400}; DEV_Q=${DEV_Q:-200}
SEQ=192; STRIDE=64; BATCH=16; LR=1e-4; EPOCHS=2
file=bioasq-7b-train-factoid.en.json
out=runs/e5-padding
mkdir -p "$out/data" "$out/scores"
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start )) s] $*"; }

step "import multilingual-e5-small as XLM-R"
[ -f "$out/e5/import.json" ] || "$bin/data-prep" import-e5 --out "$out/e5" > "$out/import.log"
step "data: BioASQ split 80/20 by context, first $TRAIN_Q / $DEV_Q answerable questions"
"$bin/data-prep" qa --input "$shared/qa/$file:lang=en:name=bioasq" --out "$out/data/split-train.json" \
  --dev-permille 200 --dev-out "$out/data/split-dev.json" > "$out/data/split.log"
"$py" scripts/tools/qa_subset.py "$out/data/split-train.json" "$out/data/train.json" "$TRAIN_Q"
"$py" scripts/tools/qa_subset.py "$out/data/split-dev.json" "$out/data/dev.json" "$DEV_Q"

score() {  # score RUN ARM SEED
  "$bin/eval" score --data "$out/data/dev.json" --predictions "$1/pred/predictions.json" \
    > "$out/scores/$2-seed$3.json" 2>> "$1.log"
}
medqa() {  # medqa ARM SEED RUN_QA_PADDING
  local run=$out/$1-seed$2
  cat > "$run.toml" <<TOML
output_dir = "$run"
init_from = "$out/e5"
[data]
train = [{ path = "$out/data/train.json" }]
max_seq_length = $SEQ
doc_stride = $STRIDE
max_query_length = 128
eval_batch_size = 64
pad_to_max_length = $3
padding_in_loss = $3
[train]
seed = $2
learning_rate = $LR
num_train_epochs = $EPOCHS
per_device_train_batch_size = $BATCH
warmup_ratio = 0.1
weight_decay = 0.01
logging_steps = 10
eval_steps = 0
save_steps = 0
save_total_limit = 1
freeze = ["*word_embeddings*"]
TOML
  "$bin/qa-finetune" --config "$run.toml" --overwrite --device cpu > "$run.log" 2>&1
  "$bin/qa-finetune" predict --device cpu --model "$run/final" --data "$out/data/dev.json" --out "$run/pred" >> "$run.log" 2>&1
  score "$run" "$1" "$2"
}
reference() {  # reference ARM SEED [--mask-padding]
  local run=$out/$1-seed$2 steps
  # The same warm-up as medqa's: ceil(0.1 × optimizer steps), read from medqa's run of this seed.
  steps=$("$py" -c "import json,sys; print(max(json.loads(l)['step'] for l in open(sys.argv[1]) if l.strip()))" \
    "$out/medqa-out-seed$2/train_log.jsonl")
  "$py" scripts/tools/qa_trainer_reference.py train --model "$out/e5" --train "$out/data/train.json" --out "$run" \
    --seed "$2" --learning-rate "$LR" --epochs "$EPOCHS" --batch "$BATCH" --warmup-steps "$(( (steps + 9) / 10 ))" \
    --weight-decay 0.01 --max-seq-length "$SEQ" --doc-stride "$STRIDE" --freeze '*word_embeddings*' "${@:3}" > "$run.log" 2>&1
  "$py" scripts/tools/qa_trainer_reference.py predict --max-seq-length "$SEQ" --doc-stride "$STRIDE" \
    --model "$run/final" --data "$out/data/dev.json" --out "$run/pred" >> "$run.log" 2>&1
  score "$run" "$1" "$2"
}
for seed in $SEEDS; do
  step "seed $seed: medqa, padding out";            medqa medqa-out "$seed" false
  step "seed $seed: medqa, run_qa padding";         medqa medqa-runqa "$seed" true
  step "seed $seed: transformers, run_qa";          reference transformers-runqa "$seed"
  step "seed $seed: transformers, padding out";     reference transformers-out "$seed" --mask-padding
done
step "table → docs/EXPERIMENTS.md"
"$py" scripts/tools/padding_table.py --out "$out" --seeds "$SEEDS" --file "$file" \
  --command "scripts/experiment-e5-padding.sh" --elapsed "$(( $(date +%s) - start ))" \
  --settings "train_q=$TRAIN_Q dev_q=$DEV_Q epochs=$EPOCHS seq=$SEQ stride=$STRIDE batch=$BATCH lr=$LR" \
  --doc docs/EXPERIMENTS.md
step "done"
