// CPU time used by a process (user + system), for the benchmarks' "CPU per
// image" figures. Linux only (/proc, getrusage). Pure functions.
#ifndef MATID_BENCH_CPU_TIME_H_
#define MATID_BENCH_CPU_TIME_H_

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace matid {

// CPU seconds (user + system) a process has used so far; 0 if unknown.
inline double ProcessCpuSeconds(int pid) {
  if (pid <= 0) return 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t after_name = text.rfind(')');  // the command name may hold spaces
  if (after_name == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(text.substr(after_name + 2), ' ');
  // Fields 14 and 15 of /proc/PID/stat (utime, stime) are 11 and 12 after the name.
  double utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return 0;
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU seconds this process has used so far.
inline double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace matid

#endif  // MATID_BENCH_CPU_TIME_H_
