#!/usr/bin/env bash
# Are CPU training runs repeatable bit for bit on this machine? The same tiny mlm-pretrain run (seeded,
# same data) RUNS times, PARALLEL at a time (other processes compete for the cores, as in a test suite),
# at libtorch's default thread count and with OMP_NUM_THREADS=1; then PyTorch alone, without medqa,
# computing an LM head's loss gradient in RUNS fresh processes. Prints how many distinct results each
# gave: 1 means every run was the same. On an Intel Xeon VM with AVX-512 and 2 cores, multi-threaded runs
# sometimes differed in the last bits from process to process, in PyTorch alone too; single-threaded
# ones never did.
#
#   scripts/bench/repeatability.sh              24 runs of each, 3 at a time
#   scripts/bench/repeatability.sh 60 4
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-24}; parallel=${2:-3}
bin=target/release/mlm-pretrain; prep=target/release/data-prep
for b in "$bin" "$prep"; do
  [ -x "$b" ] || { echo "build first: cargo build --release -p mlm-pretrain -p data-prep" >&2; exit 1; }
done
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$prep" corpus --config configs/corpus-demo.toml \
  --set 'tokenizer="crates/model/tests/fixtures/tokenizer/tokenizer.json"' --out "$work/corpus" >/dev/null
cat > "$work/mlm.toml" <<TOML
output_dir = "$work/run"
[data]
shards = "$work/corpus"
max_seq_length = 32
[model.shape]
hidden_size = 64
num_hidden_layers = 2
num_attention_heads = 4
intermediate_size = 128
[train]
seed = 3
learning_rate = 2e-3
max_steps = 20
per_device_train_batch_size = 8
gradient_accumulation_steps = 2
warmup_steps = 4
logging_steps = 5
eval_strategy = "no"
save_strategy = "no"
TOML

# The losses and gradient norms of every step of one run, as one line.
history() {
  "$python" -c 'import json, sys
print(" ".join("%r:%r" % (r.get("train/loss"), r.get("grad_norm")) for r in map(json.loads, open(sys.argv[1]))))' "$1"
}

# "N runs, D distinct ..." for RUNS runs of the tiny training with the environment given.
trainings() {
  local label=$1; shift
  rm -rf "$work/out"; mkdir -p "$work/out"
  seq 1 "$runs" | xargs -P "$parallel" -I{} env "$@" "$bin" --config "$work/mlm.toml" --device cpu \
    --set "output_dir=\"$work/out/{}\"" >/dev/null 2>&1
  for i in $(seq 1 "$runs"); do history "$work/out/$i/train_log.jsonl"; done | sort | uniq -c | sort -rn > "$work/groups"
  echo "mlm-pretrain, $label: $runs runs, $(wc -l < "$work/groups") distinct loss and gradient-norm histories (largest group $(head -n1 "$work/groups" | awk '{print $1}'))"
}

cat > "$work/head.py" <<'PY'
# An LM head's loss gradient, as medqa's cross-entropy computes it, and the weight gradients from it.
import hashlib, torch
torch.manual_seed(0)
rows, vocab, hidden = 38, 800, 64
h, w = torch.randn(rows, hidden), torch.randn(vocab, hidden) * 0.05
targets = torch.randint(0, vocab, (rows,))
log_probs = torch._log_softmax(h @ w.t(), 1, False)
grad = log_probs.clone().exp_().mul_(torch.full((rows, 1), 0.5 / rows))
grad.scatter_add_(1, targets.unsqueeze(1), torch.full((rows, 1), -0.5 / rows))
out = [log_probs, grad, grad.sum(0), grad.t().mm(h), grad.mm(w)]
print(hashlib.sha256(b"".join(t.numpy().tobytes() for t in out)).hexdigest())
PY

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) cores; $("$python" -c 'import torch; print("torch", torch.__version__, torch.backends.cpu.get_cpu_capability())' 2>/dev/null)"
trainings "default threads" MEDQA_REPEAT=1
trainings "OMP_NUM_THREADS=1" OMP_NUM_THREADS=1
seq 1 "$runs" | xargs -P "$parallel" -I{} "$python" "$work/head.py" | sort | uniq -c | sort -rn > "$work/groups"
echo "PyTorch alone (an LM head's loss gradient), default threads: $runs processes, $(wc -l < "$work/groups") distinct results (largest group $(head -n1 "$work/groups" | awk '{print $1}'))"
