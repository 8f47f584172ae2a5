// The last error of a shim call on this thread: every csrc/*.cpp function that fails stores its message
// here and returns non-zero; Rust reads it through medqa_last_error() (fused_adamw.cpp; src/shim.rs).
#pragma once
#include <string>

inline std::string& shim_last_error() {
  thread_local std::string message;
  return message;
}
