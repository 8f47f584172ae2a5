#!/usr/bin/env bash
# The test command: sets up everything on a fresh machine, then runs formatting, lints and all tests.
# Tests build in release (the same target dir as the tools) because they run real models.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
# The disk left, pass or fail: CI machines differ in size, and a test that ran out of room otherwise
# leaves no figure to go on.
disk() { echo "disk left:"; df -h . "${TMPDIR:-/tmp}" || true; }
trap 'rc=$?; rm -f "$log"; [ "$rc" = 0 ] || disk' EXIT
scripts/setup.sh --test
# First the README's main command with its own build step, as a new user runs it on a fresh clone:
# nothing else has built the binaries yet, so a build line that makes none fails here.
scripts/demo.sh --quick
cargo fmt --all -- --check
# --locked: a manifest change whose Cargo.lock was not committed fails here, not on a user's machine.
cargo clippy --release --locked --workspace --all-targets -- -D warnings
cargo test --release --locked --workspace 2>&1 | tee "$log"
# cargo prints one result line per test binary, the last often a doc-test run with nothing in it;
# close on the totals so that a reader of the last line sees what ran.
disk
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "all tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
