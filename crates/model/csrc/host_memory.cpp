// glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh mmap and unmaps
// it on free, so each of a training step's large host tensors (the MLM head's [masked × 250,002]
// logits and their gradient, the embedding's gradient, ...) costs the kernel a page fault per 4 KiB
// page and a zeroing, every step: a fifth of a 2-core CPU MLM step. Serving those from the heap and
// not trimming it keeps freed blocks for the next step's tensors of the same sizes, as PyTorch's CUDA
// caching allocator keeps device memory. The cost is a resident size near the step's high-water mark.
// One arena for every thread: glibc gives each further thread an arena whose heaps hold at most 64 MiB
// and maps anything larger there whatever the settings, which left `serve`'s model thread (and any
// thread that is not main) mapping and faulting in its large blocks on every request. Small blocks are
// still served per thread without the arena's lock, from glibc's thread caches.
#include <malloc.h>

#include <climits>
#include <cstdint>

extern "C" {

// Returns 1 when glibc took all three settings, 0 otherwise (another C library, or a refusal).
int medqa_keep_freed_host_memory() {
#if defined(__GLIBC__)
  const int one_arena = mallopt(M_ARENA_MAX, 1);
  const int no_mmap = mallopt(M_MMAP_MAX, 0);
  const int no_trim = mallopt(M_TRIM_THRESHOLD, INT_MAX);
  return one_arena == 1 && no_mmap == 1 && no_trim == 1 ? 1 : 0;
#else
  return 0;
#endif
}

}  // extern "C"

extern "C" {

// Bytes glibc holds in blocks it mapped with mmap (mallinfo2's hblkhd): what the tests watch.
int64_t medqa_host_mmapped_bytes() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  return static_cast<int64_t>(mallinfo2().hblkhd);
#else
  return -1;
#endif
}

}  // extern "C"
