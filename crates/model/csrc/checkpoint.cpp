// Gradient checkpointing (`train.gradient_checkpointing`, transformers' `gradient_checkpointing`): an
// encoder layer runs without keeping its activations for the backward, and the backward runs it again,
// as torch.utils.checkpoint's reentrant variant does. libtorch's C++ API has no checkpoint, so this is an
// autograd Function whose forward calls the Rust layer (a callback) with gradients off and whose backward
// calls it again with gradients on, then back-propagates through that copy: the layer's parameters
// receive their gradients from that inner backward, the input its gradient from the return value.
//
// The recomputation must be the forward again, bit for bit: the default generators (CPU, and the input's
// CUDA device) are set back to their state at the forward, so dropout draws the same masks, and then
// restored, so the run's random stream goes on as if nothing had been recomputed; the autocast settings
// of the forward are re-entered, as the backward may run on another thread or outside autocast.
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/ivalue.h>
#include <torch/autograd.h>

#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>

#include "shim_error.h"

extern "C" {
// Runs the layer on `input` (a new at::Tensor* the callee owns) and stores a new at::Tensor* in `output`;
// non-zero on failure, with a message of at most `capacity` bytes written to `message`.
typedef int (*medqa_layer_fn)(void* state, void* input, void** output, char* message, size_t capacity);
// Frees the callback's state once the graph that may recompute it is gone.
typedef void (*medqa_drop_fn)(void* state);
}

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Layer : torch::CustomClassHolder {
  void* state;
  medqa_layer_fn call;
  medqa_drop_fn drop;
  Layer(void* s, medqa_layer_fn c, medqa_drop_fn d) : state(s), call(c), drop(d) {}
  ~Layer() override { drop(state); }

  at::Tensor run(const at::Tensor& x) const {
    void* out = nullptr;
    char message[1024] = {0};
    if (call(state, new at::Tensor(x), &out, message, sizeof(message)) != 0 || out == nullptr) {
      throw std::runtime_error(std::string("gradient checkpointing: the layer failed: ") + message);
    }
    auto* y = static_cast<at::Tensor*>(out);
    at::Tensor result = *y;
    delete y;
    return result;
  }
};

at::Generator generator_of(const at::Device& device) {
  return at::globalContext().defaultGenerator(device);
}

at::Tensor state_of(at::Generator gen) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_state(at::Generator gen, const at::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// The autocast settings of one device type.
struct Autocast {
  at::DeviceType device;
  bool enabled;
  at::ScalarType dtype;
  static Autocast of(at::DeviceType device) {
    return {device, at::autocast::is_autocast_enabled(device), at::autocast::get_autocast_dtype(device)};
  }
  void apply() const {
    at::autocast::set_autocast_dtype(device, dtype);
    at::autocast::set_autocast_enabled(device, enabled);
  }
};

struct Checkpoint : public torch::autograd::Function<Checkpoint> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, c10::intrusive_ptr<Layer> layer) {
    ctx->saved_data["cpu_rng"] = state_of(generator_of(at::Device(at::kCPU)));
    if (x.is_cuda()) ctx->saved_data["cuda_rng"] = state_of(generator_of(x.device()));
    for (auto device : {at::kCPU, at::kCUDA}) {
      auto a = Autocast::of(device);
      auto key = std::string(device == at::kCPU ? "cpu" : "cuda");
      ctx->saved_data[key + "_autocast"] = a.enabled;
      ctx->saved_data[key + "_autocast_dtype"] = static_cast<int64_t>(a.dtype);
    }
    ctx->saved_data["layer"] = c10::IValue::make_capsule(layer);
    ctx->save_for_backward({x});
    // Function::apply runs this with gradients off: the layer's activations are not kept.
    return layer->run(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto x = ctx->get_saved_variables()[0];
    auto holder = ctx->saved_data["layer"].toCapsule();
    const auto* layer = static_cast<const Layer*>(holder.get());
    auto input = x.detach();
    input.requires_grad_(true);

    auto cpu = generator_of(at::Device(at::kCPU));
    auto cpu_now = state_of(cpu);
    set_state(cpu, ctx->saved_data["cpu_rng"].toTensor());
    c10::optional<at::Generator> cuda;
    at::Tensor cuda_now;
    if (x.is_cuda()) {
      cuda = generator_of(x.device());
      cuda_now = state_of(*cuda);
      set_state(*cuda, ctx->saved_data["cuda_rng"].toTensor());
    }
    auto cpu_autocast = Autocast::of(at::kCPU), cuda_autocast = Autocast::of(at::kCUDA);
    for (auto device : {at::kCPU, at::kCUDA}) {
      auto key = std::string(device == at::kCPU ? "cpu" : "cuda");
      Autocast{device, ctx->saved_data[key + "_autocast"].toBool(),
               static_cast<at::ScalarType>(ctx->saved_data[key + "_autocast_dtype"].toInt())}
          .apply();
    }
    at::autocast::increment_nesting();
    at::Tensor y;
    std::exception_ptr failed;
    try {
      at::AutoGradMode grad(true);
      y = layer->run(input);
    } catch (...) {
      failed = std::current_exception();
    }
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    cpu_autocast.apply();
    cuda_autocast.apply();
    set_state(cpu, cpu_now);
    if (cuda) set_state(*cuda, cuda_now);
    if (failed) std::rethrow_exception(failed);

    if (grad_outputs[0].defined() && y.requires_grad()) {
      torch::autograd::backward({y}, {grad_outputs[0]});
    }
    return {input.grad(), at::Tensor()};
  }
};
}  // namespace

extern "C" {

// `out` receives a new at::Tensor*: the layer's output on `input`, whose backward recomputes the layer.
// The shim owns `state` from here on and frees it with `drop`, also when this call fails.
int medqa_checkpoint(void* input, void* state, medqa_layer_fn call, medqa_drop_fn drop, void** out) {
  c10::intrusive_ptr<Layer> layer;
  try {
    layer = c10::make_intrusive<Layer>(state, call, drop);
  } catch (const std::exception& e) {
    drop(state);
    shim_last_error() = e.what();
    return -1;
  }
  try {
    auto x = *static_cast<at::Tensor*>(input);
    // An input without a gradient (the embeddings all frozen) would leave no node to recompute from,
    // and the layer's parameters without gradients: give the Function a differentiable input.
    if (!x.requires_grad()) {
      x = x.detach();
      x.requires_grad_(true);
    }
    *out = new at::Tensor(Checkpoint::apply(x, layer));
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

}  // extern "C"
