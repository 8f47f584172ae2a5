#!/usr/bin/env bash
# The test command: sets up everything on a fresh machine, then runs formatting, lints and all tests.
# Tests build in release (the same target dir as the tools) because they run real models.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace
