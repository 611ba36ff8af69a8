// Process-wide glibc malloc settings for serving tensors. A model's
// activations (hundreds of KiB per batch) sit above glibc's default mmap
// threshold (128 KiB, moved at run time by its heuristics), so each forward
// pass could mmap and munmap its buffers and take fresh page faults:
// measured here, the Fashion-MNIST model ran a batch of 8 in 5.4 ms that way
// and in 2.5 ms with these settings (bench/RESULTS.md). Call once at start,
// before other threads run.
#ifndef MATID_SERVER_MALLOC_TUNING_H_
#define MATID_SERVER_MALLOC_TUNING_H_

#include <malloc.h>

namespace matid {

inline void TuneMallocForInference() {
  // Keep tensor-sized blocks on the heap (and fix the threshold: setting it
  // turns the dynamic adjustment off) ...
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  // ... and do not hand freed memory back to the kernel after every batch.
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace matid

#endif  // MATID_SERVER_MALLOC_TUNING_H_
