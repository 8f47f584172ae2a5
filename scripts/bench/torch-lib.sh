# Sourced by the benchmark drivers that run prebuilt binaries on a machine without medqa's set-up (a GPU
# machine with PyTorch but no Rust): the binaries' rpath points at the build machine's .venv, so libtorch
# is taken from the given Python's torch instead.
#   use_torch_lib PYTHON
use_torch_lib() {
  local lib
  lib=$("$1" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}
