#include "client/classify/classify_result.h"

#include <cstdio>
#include <iomanip>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace matid {
namespace {

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

std::string TopKText(const ClassifyResult& result) {
  std::string text;
  for (const LabelScore& entry : result.top) {
    absl::StrAppend(&text, text.empty() ? "" : "; ", entry.label, ":",
                    absl::StrFormat("%.4f", entry.score));
  }
  return text;
}

void WriteTable(const std::vector<ClassifyResult>& results, std::ostream& out) {
  size_t path_width = 4;
  for (const auto& r : results) path_width = std::max(path_width, r.path.size());
  path_width = std::min<size_t>(path_width, 60);
  out << absl::StrFormat("%-*s  %-20s  %7s  %9s  %s\n", path_width, "PATH", "TOP LABEL", "SCORE",
                         "LATENCY", "TOP-K / ERROR");
  for (const auto& r : results) {
    std::string path = r.path;
    if (path.size() > path_width) path = "..." + path.substr(path.size() - path_width + 3);
    if (r.ok() && !r.top.empty()) {
      out << absl::StrFormat("%-*s  %-20s  %7.4f  %7.1fms  %s\n", path_width, path,
                             r.top.front().label, r.top.front().score, r.latency_ms, TopKText(r));
    } else {
      // One row per image: an error message that spans lines is folded.
      out << absl::StrFormat("%-*s  %-20s  %7s  %7.1fms  %s\n", path_width, path, r.status_code,
                             "-", r.latency_ms, absl::StrReplaceAll(r.error, {{"\n", " "}}));
    }
  }
}

void WriteCsv(const std::vector<ClassifyResult>& results, std::ostream& out) {
  out << "path,status,top_label,top_score,latency_ms,top_k,error\n";
  for (const auto& r : results) {
    const bool has_top = r.ok() && !r.top.empty();
    out << CsvField(r.path) << ',' << r.status_code << ','
        << CsvField(has_top ? r.top.front().label : "") << ','
        << (has_top ? absl::StrFormat("%.6f", r.top.front().score) : "") << ','
        << absl::StrFormat("%.3f", r.latency_ms) << ',' << CsvField(TopKText(r)) << ','
        << CsvField(r.error) << '\n';
  }
}

void WriteJsonLines(const std::vector<ClassifyResult>& results, std::ostream& out) {
  for (const auto& r : results) {
    nlohmann::ordered_json line = {{"path", r.path}, {"status", r.status_code}};
    if (r.ok() && !r.top.empty()) {
      line["top_label"] = r.top.front().label;
      line["top_score"] = r.top.front().score;
    }
    line["top_k"] = nlohmann::ordered_json::array();
    for (const auto& entry : r.top) {
      line["top_k"].push_back({{"label", entry.label}, {"score", entry.score}});
    }
    line["latency_ms"] = r.latency_ms;
    if (!r.ok()) line["error"] = r.error;
    // A file name that is not UTF-8 still gives valid JSON (U+FFFD).
    out << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
  }
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& name) {
  if (name == "table") return OutputFormat::kTable;
  if (name == "csv") return OutputFormat::kCsv;
  if (name == "jsonl") return OutputFormat::kJsonLines;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown format \"", name, "\"; expected table, csv or jsonl"));
}

void WriteResults(const std::vector<ClassifyResult>& results, OutputFormat format,
                  std::ostream& out) {
  switch (format) {
    case OutputFormat::kTable:
      WriteTable(results, out);
      break;
    case OutputFormat::kCsv:
      WriteCsv(results, out);
      break;
    case OutputFormat::kJsonLines:
      WriteJsonLines(results, out);
      break;
  }
}

}  // namespace matid
