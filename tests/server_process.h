// Runs build/bin/matid-server as a child process for end-to-end tests: starts
// it on free loopback ports (--port=0), reads the ports it prints, and stops
// it (SIGTERM, then SIGKILL if it hangs). The destructor always reaps it.
// One test thread uses an instance.
#ifndef MATID_TESTS_SERVER_PROCESS_H_
#define MATID_TESTS_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace matid {

class ServerProcess {
 public:
  // Starts the server with --host=127.0.0.1 --port=0 --metrics_port=0 plus
  // `args`, and waits (up to `startup`) until it prints its ports.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::vector<std::string>& args, absl::Duration startup = absl::Seconds(60));

  ~ServerProcess();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits up to `timeout` for the exit. Returns the exit
  // code, or an error if it died by a signal or did not exit in time (it is
  // then killed).
  absl::StatusOr<int> Stop(int signal, absl::Duration timeout = absl::Seconds(30));

  // Everything the server printed so far.
  std::string Output() const;

 private:
  ServerProcess() = default;

  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::string log_path_;
};

// Runs a command with /bin/sh, returns its exit code and what it printed to
// standard output. For short tools (matid-classify, python3).
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::string& command);

}  // namespace matid

#endif  // MATID_TESTS_SERVER_PROCESS_H_
