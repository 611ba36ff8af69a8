// Process-wide glibc malloc settings for programs that allocate large
// buffers over and over: the server's tensors, the camera's frames. Such
// blocks (hundreds of KiB) sit above glibc's default mmap threshold
// (128 KiB, moved at run time by its heuristics), so each could be mmapped
// and unmapped and take fresh page faults: measured here, the Fashion-MNIST
// model ran a batch of 8 in 5.4 ms that way and in 2.5 ms with these
// settings; the camera spent a fifth of its CPU in page faults
// (bench/RESULTS.md). Call once at start, before other threads run.
#ifndef MATID_COMMON_MALLOC_TUNING_H_
#define MATID_COMMON_MALLOC_TUNING_H_

#include <malloc.h>

namespace matid {

inline void TuneMallocForLargeBuffers() {
  // Keep tensor- and frame-sized blocks on the heap (and fix the threshold: setting it
  // turns the dynamic adjustment off) ...
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  // ... and do not hand freed memory back to the kernel after every batch.
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace matid

#endif  // MATID_COMMON_MALLOC_TUNING_H_
