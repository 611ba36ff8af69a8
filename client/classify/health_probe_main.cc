// matid-health-probe: asks a server's standard grpc.health.v1 service whether
// it is SERVING; exit code 0 if so, 1 otherwise. For container health checks
// (docker compose, Greengrass) where grpc_health_probe is not packaged.
#include <grpcpp/create_channel.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "common/client_tls_flags.h"
#include "common/program_flags.h"
#include "grpc/health/v1/health.grpc.pb.h"

ABSL_FLAG(std::string, server, "localhost:50051", "Server address.");
ABSL_FLAG(std::string, service, "", "Service name to check (empty: the whole server).");
ABSL_FLAG(double, timeout_seconds, 3, "Deadline of the check.");

int main(int argc, char** argv) {
  matid::ParseProgramFlags(argc, argv,
                           "Checks a matid-server with grpc.health.v1; exit 0 when SERVING.\n"
                           "Usage: matid-health-probe --server=host:port [--service=NAME]");
  auto credentials = matid::ChannelCredentialsFromFlags();
  if (!credentials.ok()) return matid::FailWith(credentials.status());
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_server), *credentials));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(absl::GetFlag(FLAGS_service));
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_timeout_seconds) * 1000)));
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "matid-health-probe: %s: %s\n", absl::GetFlag(FLAGS_server).c_str(),
                 status.error_message().c_str());
    return 1;
  }
  const bool serving = response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  std::printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
  return serving ? 0 : 1;
}
