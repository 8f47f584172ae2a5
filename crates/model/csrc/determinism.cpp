// libtorch's process-wide choice of deterministic kernels, which tch does not expose: what
// torch.use_deterministic_algorithms(True) and torch.backends.cudnn.deterministic set, as
// transformers' full_determinism does. On CUDA, kernels that add with atomics (index_add, scatter,
// attention backward) otherwise sum in a different order on every run.
#include <ATen/Context.h>

#include "shim_error.h"

extern "C" {

int medqa_set_deterministic(int on) {
  try {
    auto& ctx = at::globalContext();
    // warn_only = false: an op without a deterministic kernel is an error, not a silent difference.
    ctx.setDeterministicAlgorithms(on != 0, false);
    ctx.setDeterministicCuDNN(on != 0);
    if (on != 0) ctx.setBenchmarkCuDNN(false);
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

int medqa_deterministic() { return at::globalContext().deterministicAlgorithms() ? 1 : 0; }

}  // extern "C"
