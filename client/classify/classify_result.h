// One image's answer as matid-classify reports it, and the writers for its
// output formats (table, CSV, JSON lines). Plain values; writers are not
// shared between threads.
#ifndef MATID_CLIENT_CLASSIFY_CLASSIFY_RESULT_H_
#define MATID_CLIENT_CLASSIFY_CLASSIFY_RESULT_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace matid {

struct LabelScore {
  std::string label;
  float score = 0;
};

struct ClassifyResult {
  std::string path;
  std::string status_code = "OK";  // gRPC status code name
  std::string error;               // reason, when status_code != "OK"
  std::vector<LabelScore> top;     // best first
  double latency_ms = 0;           // round trip as the client saw it

  bool ok() const { return status_code == "OK"; }
};

enum class OutputFormat { kTable, kCsv, kJsonLines };

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& name);

// Writes the results in the given format, one image per row or line.
void WriteResults(const std::vector<ClassifyResult>& results, OutputFormat format,
                  std::ostream& out);

}  // namespace matid

#endif  // MATID_CLIENT_CLASSIFY_CLASSIFY_RESULT_H_
