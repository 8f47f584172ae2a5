// libtorch's own profiler (Kineto; CUPTI for CUDA kernels), which tch does not expose: the same trace
// `torch.profiler` writes for Python, so medqa's step and the transformers reference are read by one
// script (scripts/tools/profile_summary.py) kernel by kernel.
#include <torch/csrc/autograd/profiler_kineto.h>

#include <exception>
#include <set>

#include "shim_error.h"

namespace {
std::set<torch::profiler::impl::ActivityType> activities(int with_cuda) {
  std::set<torch::profiler::impl::ActivityType> set{torch::profiler::impl::ActivityType::CPU};
  if (with_cuda != 0) set.insert(torch::profiler::impl::ActivityType::CUDA);
  return set;
}
}  // namespace

extern "C" {

int medqa_profiler_start(int with_cuda) {
  try {
    const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO,
                                                       /*report_input_shapes=*/true);
    torch::autograd::profiler::prepareProfiler(config, activities(with_cuda));
    torch::autograd::profiler::enableProfiler(config, activities(with_cuda));
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

// Stops the profiler and writes its Chrome trace (JSON) to `path`, or nothing where `path` is null.
int medqa_profiler_stop(const char* path) {
  try {
    auto result = torch::autograd::profiler::disableProfiler();
    if (path != nullptr) result->save(path);
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

}  // extern "C"
