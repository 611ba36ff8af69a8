// The fuzz targets' oracle: FUZZ_CHECK(condition, what) aborts with a message
// when an invariant is broken, so libFuzzer (or the corpus replay) reports
// the input as a crash. Header only; no state.
#ifndef MATID_FUZZ_FUZZ_CHECK_H_
#define MATID_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition, what)                                                              \
  do {                                                                                           \
    if (!(condition)) {                                                                          \
      std::fprintf(stderr, "%s:%d: invariant broken: %s (%s)\n", __FILE__, __LINE__, #condition, \
                   what);                                                                        \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

#endif  // MATID_FUZZ_FUZZ_CHECK_H_
