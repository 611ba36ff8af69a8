// Classifies image files against a matid server, with several requests in
// flight, through Classify (one image per call) or BatchClassify (several).
// Retries RESOURCE_EXHAUSTED and UNAVAILABLE with backoff, so a batch job
// rides out a busy server instead of failing images. One call of
// ClassifyFiles uses its own threads; the stub must be thread-safe (gRPC
// stubs are).
#ifndef MATID_CLIENT_CLASSIFY_FILE_CLASSIFIER_H_
#define MATID_CLIENT_CLASSIFY_FILE_CLASSIFIER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/classify/classify_result.h"
#include "matid/v1/matid.grpc.pb.h"

namespace matid {

struct FileClassifierOptions {
  bool use_batch_rpc = false;  // BatchClassify instead of Classify
  int batch_size = 16;         // images per BatchClassify call
  int concurrency = 4;         // calls in flight at once
  int top_k = 3;
  absl::Duration timeout = absl::Seconds(30);  // per call
  int max_attempts = 5;                        // for RESOURCE_EXHAUSTED / UNAVAILABLE
};

// Returns one result per file, in the order of `files`. `progress` (may be
// empty) is called with the number of files finished so far, from worker
// threads, one call at a time.
std::vector<ClassifyResult> ClassifyFiles(v1::Classifier::StubInterface* stub,
                                          const std::vector<std::string>& files,
                                          const FileClassifierOptions& options,
                                          const std::function<void(size_t finished)>& progress);

}  // namespace matid

#endif  // MATID_CLIENT_CLASSIFY_FILE_CLASSIFIER_H_
