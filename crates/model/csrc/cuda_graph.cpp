// CUDA graphs (at::cuda::CUDAGraph), which tch does not wrap: a training step's ~1,000 kernel launches
// recorded once and replayed as one, as torch.cuda.graph() does it. Compiled with CUDA only where this
// libtorch has CUDA and its runtime headers are there (MEDQA_WITH_CUDA, set by build.rs); elsewhere every
// call fails with a message saying so, and the Rust side keeps to eager steps.
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>

#include "shim_error.h"

namespace {
constexpr const char* kNoCuda = "CUDA graphs need a libtorch with CUDA (this build has none)";

// Runs `f`, turning an exception into the shim's error channel and -1.
template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}
}  // namespace

#ifdef MEDQA_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

namespace {
// A graph and, while it is being captured, the stream that was current before (the capture runs on a
// side stream: CUDA cannot capture the legacy default stream).
struct Graph {
  at::cuda::CUDAGraph graph;
  std::optional<c10::cuda::CUDAStream> previous;
  std::optional<c10::cuda::CUDAStream> capturing;
};

// Makes `waiter` wait for the work queued so far on `on`, without the host waiting.
void stream_wait(const c10::cuda::CUDAStream& waiter, const c10::cuda::CUDAStream& on) {
  c10::Event event(c10::DeviceType::CUDA);
  event.record(on.unwrap());
  event.block(waiter.unwrap());
}
}  // namespace
#endif

extern "C" {

int medqa_cuda_graphs_available() {
#ifdef MEDQA_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}

int medqa_cuda_graph_new(void** out) {
  return guarded([&] {
#ifdef MEDQA_WITH_CUDA
    *out = new Graph();
#else
    (void)out;
    throw std::runtime_error(kNoCuda);
#endif
  });
}

// Starts capturing on a side stream of CUDA device `device`: from here until medqa_cuda_graph_capture_end
// the work queued on this thread is recorded, not run. With `share` (another captured graph, or null) the
// two use one memory pool, which is safe because they are replayed one after another and their outputs
// are copied out after each replay. Before the first capture of a run the caller empties the allocator's
// cache (`medqa_cuda_empty_cache`), so that the eager steps' cached blocks do not double the memory.
int medqa_cuda_graph_capture_begin(void* graph, int device, void* share) {
  return guarded([&] {
#ifdef MEDQA_WITH_CUDA
    auto* g = static_cast<Graph*>(graph);
    const auto index = static_cast<c10::DeviceIndex>(device);
    c10::cuda::device_synchronize();
    auto previous = c10::cuda::getCurrentCUDAStream(index);
    auto side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index);
    stream_wait(side, previous);
    c10::cuda::setCurrentCUDAStream(side);
    g->previous = previous;
    g->capturing = side;
    try {
      if (share != nullptr) {
        g->graph.capture_begin(static_cast<Graph*>(share)->graph.pool());
      } else {
        g->graph.capture_begin();
      }
    } catch (...) {
      c10::cuda::setCurrentCUDAStream(previous);
      g->previous.reset();
      g->capturing.reset();
      throw;
    }
#else
    (void)graph, (void)device, (void)share;
    throw std::runtime_error(kNoCuda);
#endif
  });
}

// Ends the capture (whether the captured work succeeded or not: an error inside invalidates the capture,
// and ending it is what lets the stream be used again), restores the stream and instantiates the graph.
int medqa_cuda_graph_capture_end(void* graph) {
#ifdef MEDQA_WITH_CUDA
  auto* g = static_cast<Graph*>(graph);
  std::string error;
  try {
    g->graph.capture_end();
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (g->previous) {
    c10::cuda::setCurrentCUDAStream(*g->previous);
    if (g->capturing) stream_wait(*g->previous, *g->capturing);
  }
  g->previous.reset();
  g->capturing.reset();
  if (!error.empty()) {
    shim_last_error() = error;
    return -1;
  }
  return 0;
#else
  (void)graph;
  shim_last_error() = kNoCuda;
  return -1;
#endif
}

// Runs the captured work on the current stream (queued: the host does not wait). The default CUDA
// generator's seed and offset are read at each replay, so dropout follows `manual_seed` as eagerly.
int medqa_cuda_graph_replay(void* graph) {
  return guarded([&] {
#ifdef MEDQA_WITH_CUDA
    static_cast<Graph*>(graph)->graph.replay();
#else
    (void)graph;
    throw std::runtime_error(kNoCuda);
#endif
  });
}

void medqa_cuda_graph_free(void* graph) {
#ifdef MEDQA_WITH_CUDA
  delete static_cast<Graph*>(graph);
#else
  (void)graph;
#endif
}

// Returns the caching allocator's unused blocks to the device (torch.cuda.empty_cache()).
int medqa_cuda_empty_cache() {
  return guarded([] {
#ifdef MEDQA_WITH_CUDA
    c10::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::emptyCache();
#else
    throw std::runtime_error(kNoCuda);
#endif
  });
}

}  // extern "C"
