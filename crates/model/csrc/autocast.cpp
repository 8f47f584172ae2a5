// Autocast controls that tch does not expose: tch can switch autocast on, but only with the default
// fp16 dtype on CUDA. Mixed precision in bf16 needs at::autocast::set_autocast_dtype.
#include <ATen/autocast_mode.h>

extern "C" {

// Device types and scalar types are c10's enum values (CPU = 0, CUDA = 1; Half = 5, BFloat16 = 15).
int medqa_autocast_is_enabled(int device_type) {
  try {
    return at::autocast::is_autocast_enabled(static_cast<at::DeviceType>(device_type)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

int medqa_autocast_get_dtype(int device_type) {
  try {
    return static_cast<int>(at::autocast::get_autocast_dtype(static_cast<at::DeviceType>(device_type)));
  } catch (...) {
    return -1;
  }
}

int medqa_autocast_set(int device_type, int enabled, int scalar_type) {
  try {
    auto device = static_cast<at::DeviceType>(device_type);
    at::autocast::set_autocast_dtype(device, static_cast<at::ScalarType>(scalar_type));
    at::autocast::set_autocast_enabled(device, enabled != 0);
    return 0;
  } catch (...) {
    return -1;
  }
}

int medqa_autocast_increment_nesting() { return at::autocast::increment_nesting(); }

int medqa_autocast_decrement_nesting() {
  int depth = at::autocast::decrement_nesting();
  // Casted weights are cached while autocast is active; drop them when the outermost region ends.
  if (depth == 0) at::autocast::clear_cache();
  return depth;
}

}  // extern "C"
