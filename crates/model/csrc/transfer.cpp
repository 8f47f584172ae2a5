// Host → CUDA copies that do not make the host wait: through pinned memory, non-blocking. tch's
// pin_memory always passes a device, which libtorch 2.11 deprecates with a warning on every call.
#include <ATen/core/Tensor.h>

#include <exception>

#include "shim_error.h"

extern "C" {

// On success `*out` is a new at::Tensor on cuda:`device_index` that the caller owns. libtorch's pinned
// allocator keeps the pinned block until the copy has run, so the source may be dropped at once.
int medqa_upload(void* src, int device_index, void** out) {
  try {
    const auto& t = *static_cast<at::Tensor*>(src);
    auto options = at::TensorOptions().device(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index)));
    *out = new at::Tensor(t.pin_memory().to(options, /*non_blocking=*/true));
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

}  // extern "C"
