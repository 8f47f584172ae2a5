#!/usr/bin/env bash
# QA prediction, concept extraction and QA training on a GPU machine that has PyTorch and transformers but
# no Rust toolchain: medqa's prebuilt binaries against the transformers references of bench-qa.sh and
# bench-extract.sh, on the same GPU in the same run.
#
#   scripts/bench-gpu.sh bundle        here: release build, stripped binaries + the data sets and
#                                      tokenizers the benchmarks need → runs/gpu-bundle.tar.gz
#   scripts/bench-gpu.sh run [OUT]     on the GPU machine: unpacks the bundle, runs the benchmarks named
#                                      in BENCHES (default all: probe extract-small predict-small
#                                      extract-base predict-base train-base), appends each result to
#                                      OUT/bench-gpu.log as it comes
# The bundle carries the tokenizers 0.23.3 wheel, put first on PYTHONPATH: 0.23.1 and 0.23.2 (seen on a
# GPU machine with transformers 5.17) return one overflow window per long context, which would make the
# transformers reference skip most of COVID-QA (bench_qa.py now stops when windows fall short).
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
bundle)
  cargo build --release --workspace --all-targets >/dev/null
  rm -rf runs/gpu-bundle && mkdir -p runs/gpu-bundle/bin runs/gpu-bundle/data/qa
  for b in target/release/qa-finetune target/release/extract target/release/examples/bench_train; do
    strip -o "runs/gpu-bundle/bin/$(basename "$b")" "$b"
  done
  cp ../shared/data/qa/covid-qa-200423.en.json ../shared/data/qa/squad-v1.1-dev.en.json runs/gpu-bundle/data/qa/
  cp runs/real/tokenizer.json runs/gpu-bundle/tokenizer-16k.json
  cp runs/bench-extract/tokenizer.json runs/gpu-bundle/tokenizer-4k.json
  .venv/bin/python -c 'import json, sys, tomllib; json.dump(tomllib.load(open(sys.argv[1], "rb")), open(sys.argv[2], "w"))' \
    configs/concepts-stroke.toml runs/gpu-bundle/concepts-stroke.json
  .venv/bin/pip download -q --no-deps --only-binary :all: tokenizers==0.23.3 -d runs/gpu-bundle/wheels
  tar czf runs/gpu-bundle.tar.gz -C runs gpu-bundle
  ls -l runs/gpu-bundle.tar.gz
  ;;
run)
  out=${2:-runs/gpu-out}
  mkdir -p "$out"
  log=$out/bench-gpu.log
  tar xzf runs/gpu-bundle.tar.gz -C runs
  b=runs/gpu-bundle
  py=${PYTHON:-python3}
  rm -rf runs/pydeps
  $py -m pip install -q --no-index --no-deps --target runs/pydeps $b/wheels/*.whl
  export PYTHONPATH=$PWD/runs/pydeps${PYTHONPATH:+:$PYTHONPATH}
  benches=${BENCHES:-probe extract-small predict-small extract-base predict-base train-base}
  want() { [[ " $benches " == *" $1 "* ]]; }
  export MEDQA_BIN=$b/bin PYTHON=$py DEVICE=${DEVICE:-cuda} CONCEPTS_JSON=$b/concepts-stroke.json
  # A failed benchmark is logged and the next one runs.
  step() {
    echo "### $*" | tee -a "$log"
    env "$@" 2>&1 | grep -v 'it/s]' | tee -a "$log" || echo "### failed: $*" | tee -a "$log"
  }
  {
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    $py -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "transformers",
      transformers.__version__, "tokenizers", tokenizers.__version__)'
    torch_lib=$($py -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    LD_LIBRARY_PATH=$torch_lib $b/bin/qa-finetune --check-device --device cuda
  } 2>&1 | tee -a "$log" || true
  base=(MODEL_ARGS="--hidden 768 --layers 12 --heads 12 --intermediate 3072")
  small=(TOKENIZER=$b/tokenizer-4k.json COPIES=10)
  covid=(SHARED_DATA=$b/data TOKENIZER=$b/tokenizer-16k.json)
  want probe && step "$py" scripts/probe_shape_cost.py
  want extract-small && step "${small[@]}" PRECISION=fp32 scripts/bench-extract.sh
  want predict-small && step "${covid[@]}" PARTS=predict PRECISION=fp32 scripts/bench-qa.sh 20 40
  want extract-base && step "${small[@]}" PRECISION=bf16 "${base[@]}" scripts/bench-extract.sh
  want predict-base && step "${covid[@]}" PARTS=predict PRECISION=bf16 "${base[@]}" scripts/bench-qa.sh 20 40
  want train-base && step "${covid[@]}" PARTS=train PRECISION=bf16 STEPS="${STEPS:-900}" COMPARE_KERNELS=1 "${base[@]}" \
    scripts/bench-qa.sh 20 40
  true
  ;;
*)
  echo "usage: scripts/bench-gpu.sh bundle | run [OUT]" >&2
  exit 2
  ;;
esac
