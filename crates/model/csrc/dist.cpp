// Data-parallel training on c10d, PyTorch's own distributed engine inside libtorch (issue 17): the
// rendezvous store, a Gloo (CPU) or NCCL (CUDA) process group, and the three collectives the loop needs.
// Rust holds the group as an opaque handle (src/dist.rs); tensors arrive as tch's at::Tensor*.
//
// Gloo's headers are not in the torch wheel: scripts/setup.sh unpacks Debian's libgloo-dev for them
// (build.rs finds them). NCCL is compiled in when build.rs finds nccl.h and the CUDA headers
// (MEDQA_WITH_NCCL); a build without them says so when asked for NCCL.
#include <ATen/core/Tensor.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef MEDQA_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include "shim_error.h"

namespace {
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
  bool nccl = false;
};

// Waits for a collective. Gloo's run on the host, so the host waits, bounded by the timeout. NCCL's are
// queued on the device: waiting without a timeout only orders the current stream after them, and NCCL's
// watchdog enforces the group's timeout (it aborts the communicators and ends the process). Waiting with
// a timeout would make the host poll every millisecond until the collective finished, for every bucket:
// measured on one H200, that cost 17% of an 88 M-parameter model's step.
void wait(Group* g, const c10::intrusive_ptr<c10d::Work>& work) {
  if (g->nccl) {
    work->wait();
  } else {
    work->wait(g->timeout);
  }
}

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 0: return c10d::ReduceOp::SUM;
    case 1: return c10d::ReduceOp::MAX;
    case 2: return c10d::ReduceOp::MIN;
    default: throw std::invalid_argument("unknown reduce op " + std::to_string(op));
  }
}
}  // namespace

extern "C" {

// Joins the group: `host_store` says whether this process hosts the rendezvous store (rank 0 of a run
// launched by hand or by SLURM) or connects to one (every rank under torchrun, whose agent hosts it).
// Keys live under "medqa/" so they never meet the agent's own. `timeout_ms` bounds the rendezvous and
// every collective: a rank that died makes the others fail instead of waiting forever.
int medqa_dist_init(const char* backend, const char* master_addr, int port, int rank, int world_size,
                    int host_store, long long timeout_ms, void** out) {
  try {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = host_store != 0;
    opts.numWorkers = world_size;
    opts.waitWorkers = false;
    opts.timeout = timeout;
    opts.multiTenant = true;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(master_addr, opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>("medqa/", tcp);
    auto group = std::make_unique<Group>();
    group->store = store;
    group->timeout = timeout;
    std::string name(backend);
    if (name == "gloo") {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      // Bind where the peers can reach us: the loopback when they are on this machine, else the
      // address the host name resolves to (GLOO_SOCKET_IFNAME picks an interface, as in torch).
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname != nullptr && *ifname != '\0') {
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (std::string(master_addr) == "127.0.0.1" || std::string(master_addr) == "localhost") {
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      group->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
    } else if (name == "nccl") {
#ifdef MEDQA_WITH_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      group->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, options);
      group->nccl = true;
#else
      throw std::runtime_error(
          "this medqa was built without NCCL (build.rs found no nccl.h and CUDA headers; see scripts/setup.sh)");
#endif
    } else {
      throw std::invalid_argument("unknown backend '" + name + "' (gloo or nccl)");
    }
    *out = group.release();
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

int medqa_dist_with_nccl() {
#ifdef MEDQA_WITH_NCCL
  return 1;
#else
  return 0;
#endif
}

// In place: `tensor` becomes the reduction (op 0 sum, 1 max, 2 min) of every rank's tensor.
int medqa_dist_allreduce(void* group, void* tensor, int op) {
  try {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::AllreduceOptions opts;
    opts.reduceOp = reduce_op(op);
    opts.timeout = g->timeout;
    wait(g, g->backend->allreduce(tensors, opts));
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

// In place: `tensor` becomes rank `root`'s.
int medqa_dist_broadcast(void* group, void* tensor, int root) {
  try {
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    wait(g, g->backend->broadcast(tensors, opts));
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

// Leaves the group in order once the run is done with it: NCCL flushes and destroys its communicators
// (else its destructor warns that destroy_process_group() was not called); Gloo has nothing to do.
int medqa_dist_shutdown(void* group) {
  try {
    static_cast<Group*>(group)->backend->shutdown();
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

// `abort`: the group was not shut down (an error is on its way out), so its communicators are aborted
// rather than flushed, which could wait on a peer that is gone.
void medqa_dist_free(void* group, int abort) {
  auto* g = static_cast<Group*>(group);
  // A backend's destructor may throw when peers are gone; the process is leaving anyway.
  try {
    if (abort != 0) {
      g->backend->abort();
    }
  } catch (...) {
  }
  try {
    delete g;
  } catch (...) {
  }
}

}  // extern "C"
