#!/usr/bin/env bash
# The main job end to end on data the project ships. Today that is: set-up, release build, what libtorch
# sees, and the parity report of our XLM-R against transformers on the shipped reference checkpoints.
# Training (#5, #6), evaluation (#3) and extraction (#7) join here as they land.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${DEVICE:-auto}
scripts/setup.sh
echo "== build (release)"
cargo build --release --workspace --examples
echo "== libtorch and devices"
target/release/mlm-pretrain --check-device --device "$device"
echo "== parity with transformers on crates/model/tests/fixtures"
target/release/examples/parity_report --device "$device"
