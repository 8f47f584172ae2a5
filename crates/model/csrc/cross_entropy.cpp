// Mean cross-entropy over class logits whose backward reuses the forward's log-probabilities as the
// gradient's storage. Composed, `log_softmax` + `nll_loss` keep the [rows × classes] log-probabilities
// for the backward, which then fills a zero [rows × classes] gradient for nll_loss, scatters into it,
// and writes a third [rows × classes] tensor in log_softmax's backward. Over the MLM head's masked rows
// × 250,002 classes each of those is a full pass over hundreds of MB: on 2 CPU cores, about a tenth of a
// training step. The gradient of the mean loss is softmax(x) / n minus 1 / n at each row's target, so
// here the backward turns the saved log-probabilities into it in place (exp, scale) and subtracts at
// the targets: one tensor, no zero fill. The value is the same mean of -log p(target) (rows whose
// target is `ignore_index` left out), to within fp32 summation order.
#include <torch/autograd.h>

#include <exception>
#include <stdexcept>
#include <string>

#include "shim_error.h"

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct CrossEntropy : public torch::autograd::Function<CrossEntropy> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& logits, const at::Tensor& targets,
                            int64_t ignore_index) {
    auto log_probs = at::_log_softmax(logits, 1, /*half_to_float=*/false);
    auto valid = targets.ne(ignore_index);
    // Ignored rows read class 0 and are then zeroed: gather needs an in-range index on every row.
    auto safe = targets.masked_fill(valid.logical_not(), 0).unsqueeze(1);
    auto count = valid.sum();  // on the device: no host sync (CUDA graphs capture this)
    auto picked = log_probs.gather(1, safe).squeeze(1).masked_fill(valid.logical_not(), 0);
    auto loss = picked.sum().neg().div(count);
    ctx->saved_data["log_probs"] = log_probs;
    ctx->save_for_backward({safe, valid, count});
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto it = ctx->saved_data.find("log_probs");
    if (it == ctx->saved_data.end()) {
      // The first backward consumed the saved tensor (it became the gradient).
      throw std::runtime_error(
          "medqa's cross-entropy was differentiated twice (retain_graph): its backward reuses the "
          "saved log-probabilities as the gradient, so a second pass is not supported");
    }
    auto log_probs = it->second.toTensor();
    ctx->saved_data.erase(it);
    auto saved = ctx->get_saved_variables();
    const auto& safe = saved[0];
    const auto& valid = saved[1];
    const auto& count = saved[2];
    // d loss / d logit[r, c] = scale[r] * (softmax[r, c] - [c == target[r]]), scale = g / n on kept rows.
    auto scale = grad_outputs[0].div(count).mul(valid).to(log_probs.scalar_type()).unsqueeze(1);
    auto grad = log_probs.exp_().mul_(scale);
    grad.scatter_add_(1, safe, scale.neg());
    return {grad, torch::autograd::Variable(), torch::autograd::Variable()};
  }
};
}  // namespace

extern "C" {

// The mean cross-entropy of `logits` [rows, classes] against `targets` [rows] (int64, `ignore_index`
// rows left out), differentiable with respect to the logits. `out` receives a new at::Tensor*.
int medqa_cross_entropy(void* logits, void* targets, int64_t ignore_index, void** out) {
  try {
    const auto& x = *static_cast<at::Tensor*>(logits);
    const auto& t = *static_cast<at::Tensor*>(targets);
    if (x.dim() != 2 || t.dim() != 1 || t.size(0) != x.size(0) || t.scalar_type() != at::kLong) {
      throw std::invalid_argument(c10::str("cross-entropy needs logits [rows, classes] and int64 targets [rows]; got ",
                                           x.sizes(), " logits and ", t.sizes(), " ", t.scalar_type(),
                                           " targets"));
    }
    *out = new at::Tensor(CrossEntropy::apply(x, t, ignore_index));
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

}  // extern "C"
