// Optimizer helpers: libtorch's fused AdamW kernel (one pass over each parameter, CPU and CUDA), which tch does not wrap.
// Tensors arrive as tch's handles, which are pointers to at::Tensor.
#include <ATen/core/Tensor.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>
#include <ATen/core/grad_mode.h>

#include <exception>
#include <string>
#include <vector>

#include "shim_error.h"

namespace {
std::vector<at::Tensor> gather(void** handles, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(*static_cast<at::Tensor*>(handles[i]));
  return out;
}
}  // namespace

extern "C" {

const char* medqa_last_error() { return shim_last_error().c_str(); }

// `found_inf` (may be null): a float scalar on the parameters' device; where it is 1 the kernel leaves
// everything as it was, as under torch's GradScaler. `lr_tensor` (may be null): the learning rate as a
// float scalar on the parameters' device, read by the kernel when it runs (a captured CUDA graph replays
// the step at each step's rate); else `lr`.
int medqa_fused_adamw(void** params, void** grads, void** exp_avgs, void** exp_avg_sqs, void** steps, int n,
                      double lr, double beta1, double beta2, double weight_decay, double eps, void* found_inf,
                      void* lr_tensor) {
  try {
    at::NoGradGuard no_grad;
    auto p = gather(params, n), g = gather(grads, n), m = gather(exp_avgs, n), v = gather(exp_avg_sqs, n),
         s = gather(steps, n);
    std::optional<at::Tensor> inf;
    if (found_inf != nullptr) inf = *static_cast<at::Tensor*>(found_inf);
    if (lr_tensor != nullptr) {
      at::_fused_adamw_(p, g, m, v, {}, s, *static_cast<at::Tensor*>(lr_tensor), beta1, beta2, weight_decay, eps,
                        /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt, inf);
    } else {
      at::_fused_adamw_(p, g, m, v, {}, s, lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false,
                        /*maximize=*/false, /*grad_scale=*/std::nullopt, inf);
    }
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

// Gradient clipping as torch.nn.utils.clip_grad_norm_ does it on CUDA (foreach kernels): a handful of
// launches instead of two per parameter. Hands the total norm before clipping, still on the device, to
// `total_norm` as a new at::Tensor that the caller owns (reading it would make the host wait).
int medqa_foreach_clip_grad_norm(void** grads, int n, double max_norm, void** total_norm) {
  try {
    at::NoGradGuard no_grad;
    auto g = gather(grads, n);
    auto total = at::linalg_vector_norm(at::stack(at::_foreach_norm(g, 2.0)), 2.0);
    // torch computes max_norm / (total + 1e-6) as reciprocal() * max_norm.
    at::_foreach_mul_(g, total.add(1e-6).reciprocal().mul(max_norm).clamp_max(1.0));
    *total_norm = new at::Tensor(std::move(total));
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

// Every gradient times `factor` (a one-element tensor on their device) in one foreach launch: fp16's
// unscaling, as GradScaler's unscale_ multiplies by the inverse scale.
int medqa_foreach_mul(void** grads, int n, void* factor) {
  try {
    at::NoGradGuard no_grad;
    auto g = gather(grads, n);
    at::_foreach_mul_(g, *static_cast<at::Tensor*>(factor));
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

// Drops the gradients (as torch's zero_grad(set_to_none=True)): the next backward writes fresh ones
// instead of adding into zeroed buffers, saving two passes over the 250k-row embedding gradient.
void medqa_clear_grads(void** params, int n) {
  for (int i = 0; i < n; ++i) static_cast<at::Tensor*>(params[i])->mutable_grad().reset();
}

}  // extern "C"
