// Which kernels scaled_dot_product_attention may pick on CUDA (libtorch's global switches; tch does not
// expose them). See device.rs for why medqa leaves cuDNN's kernel out.
#include <ATen/Context.h>

#include "shim_error.h"

extern "C" {

// Bits: 1 flash, 2 memory-efficient, 4 math, 8 cuDNN.
int medqa_sdp_set_enabled(int bits) {
  try {
    auto& ctx = at::globalContext();
    ctx.setSDPUseFlash((bits & 1) != 0);
    ctx.setSDPUseMemEfficient((bits & 2) != 0);
    ctx.setSDPUseMath((bits & 4) != 0);
    ctx.setSDPUseCuDNN((bits & 8) != 0);
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

int medqa_sdp_enabled() {
  const auto& ctx = at::globalContext();
  return (ctx.userEnabledFlashSDP() ? 1 : 0) | (ctx.userEnabledMemEfficientSDP() ? 2 : 0) |
         (ctx.userEnabledMathSDP() ? 4 : 0) | (ctx.userEnabledCuDNNSDP() ? 8 : 0);
}

}  // extern "C"
