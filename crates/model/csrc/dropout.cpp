// Dropout masks for CPU training, drawn on every core. ATen's CPU bernoulli_(p) is a serial kernel (one
// generator, one stream), so attention-probability dropout took about a tenth of a QA training step on
// two cores while the other core waited. Here the mask is cut into fixed chunks, each drawn from its own
// stream (seed, chunk index): the same mask whatever the number of threads. The generator is wyrand
// (64-bit state, one multiply per two 32-bit draws; passes BigCrush), seeded through splitmix64: Philox
// cost three times as much per draw here, and a mask needs no cryptographic quality.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <string>

#include "shim_error.h"

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct Wyrand {
  uint64_t state;
  uint64_t next() {
    state += 0xa0761d6478bd642fULL;
    const __uint128_t t = static_cast<__uint128_t>(state) * (state ^ 0xe7037ed1a0b428dbULL);
    return static_cast<uint64_t>(t >> 64) ^ static_cast<uint64_t>(t);
  }
};
}  // namespace

extern "C" {

// A tensor shaped like `like`, in its dtype, on the CPU: 1 / (1 - p) where an element is kept, 0 where
// it is dropped (each dropped with probability p). `out` receives a new at::Tensor* for tch to own.
int medqa_dropout_mask(void* like, double p, uint64_t seed, void** out) {
  try {
    const auto& x = *static_cast<at::Tensor*>(like);
    if (!(p >= 0.0 && p < 1.0)) throw std::invalid_argument("dropout probability must be in [0, 1)");
    const int64_t n = x.numel();
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    // Dropped when a uniform 32-bit draw falls below p * 2^32.
    const uint64_t threshold = static_cast<uint64_t>(std::ldexp(p, 32));
    constexpr int64_t chunk = 1 << 16;
    const int64_t chunks = (n + chunk - 1) / chunk;
    auto mask = at::empty(x.sizes(), x.options().dtype(at::kFloat).device(at::kCPU));
    float* data = mask.data_ptr<float>();
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        Wyrand rng{splitmix64(seed ^ splitmix64(static_cast<uint64_t>(c)))};
        const int64_t lo = c * chunk, hi = std::min(n, lo + chunk);
        int64_t i = lo;
        for (; i + 1 < hi; i += 2) {
          const uint64_t r = rng.next();
          data[i] = (r & 0xffffffffULL) >= threshold ? scale : 0.0f;
          data[i + 1] = (r >> 32) >= threshold ? scale : 0.0f;
        }
        if (i < hi) data[i] = (rng.next() & 0xffffffffULL) >= threshold ? scale : 0.0f;
      }
    });
    *out = new at::Tensor(x.scalar_type() == at::kFloat ? mask : mask.to(x.scalar_type()));
    return 0;
  } catch (const std::exception& e) {
    shim_last_error() = e.what();
    return -1;
  }
}

}  // extern "C"
