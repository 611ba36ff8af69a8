// matid-admin: the model repository's lifecycle on a running matid-server
// (matid.v1.ModelAdmin): list versions and their states, rescan, pin, load
// and unload versions, set a shadow version and report how it compares,
// promote it and roll a promotion back.
// Prints the model versions after each change (the report as JSON); exit 0
// when it succeeded, 1 with the server's reason otherwise.
#include <grpcpp/create_channel.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/client_tls_flags.h"
#include "common/program_flags.h"
#include "google/protobuf/util/json_util.h"
#include "matid/v1/admin.grpc.pb.h"

ABSL_FLAG(std::string, server, "localhost:50051",
          "Server address: host:port, or unix:PATH for the server's --admin_socket. The server "
          "takes admin calls on its admin socket, from 127.0.0.1/::1 (unless "
          "--admin_from_loopback=false), or from clients whose certificate is in its "
          "--admin_client_subjects.");
ABSL_FLAG(double, timeout_seconds, 300, "Deadline of the call (a load may take minutes).");
ABSL_FLAG(int64_t, promote_after, 0,
          "shadow: promote the shadow by itself once this many images were compared and "
          "--min_agreement and --max_shadow_p99_ms hold; 0: promoted by an operator only.");
ABSL_FLAG(double, min_agreement, 0.98, "shadow with --promote_after: top-1 agreement needed.");
ABSL_FLAG(double, max_shadow_p99_ms, 1000,
          "shadow with --promote_after: the shadow's p99 latency allowed, in ms.");
ABSL_FLAG(double, rollback_window_seconds, -1,
          "shadow: after a promotion, how long the replaced version stays loaded and the "
          "rollback rule is watched (-1: the server's default, 600).");
ABSL_FLAG(double, rollback_max_error_rate, -1,
          "shadow: roll back when the promoted version's model fails more than this share of "
          "images (-1: default 0.01).");
ABSL_FLAG(double, rollback_low_confidence_below, -1,
          "shadow: a top-1 score under this is a low-confidence answer (-1: default 0.5).");
ABSL_FLAG(double, rollback_max_low_confidence_ratio, -1,
          "shadow: roll back when more than this share of the promoted version's answers are "
          "low-confidence (-1: default 0.2).");
ABSL_FLAG(int64_t, rollback_min_images, -1,
          "shadow: images the promoted version must run before the rollback rule decides "
          "(-1: default 100).");

namespace {

constexpr char kUsage[] =
    "Manages the model versions a matid-server serves from --model_repository.\n"
    "Usage: matid-admin [--server=host:port|unix:PATH] COMMAND\n"
    "  list                      every model version and its state\n"
    "  reload                    rescan the repository now (as SIGHUP does)\n"
    "  pin MODEL [VERSION...]    serve exactly these versions; none: the latest again\n"
    "  load MODEL VERSION        serve VERSION too\n"
    "  unload MODEL VERSION      stop serving VERSION (its requests finish first)\n"
    "  shadow MODEL VERSION [FRACTION]\n"
    "                            VERSION classifies FRACTION (default 0.1) of the default\n"
    "                            version's images beside it, to be compared\n"
    "  shadow MODEL off          no shadow\n"
    "  shadow-report MODEL       the comparison so far, as JSON (agreement, confusion,\n"
    "                            shadow latency, skipped images by reason)\n"
    "  promote MODEL             the shadow becomes the version served; the one it replaces\n"
    "                            stays loaded for the rollback window\n"
    "  rollback MODEL            back to the version the last promotion replaced (while\n"
    "                            its window is open)\n"
    "With shadow, --promote_after=N [--min_agreement=A] [--max_shadow_p99_ms=X] lets the\n"
    "server promote by itself, and --rollback_* set the rule that rolls a promoted version\n"
    "back by itself (see --help).\n"
    "Pin, load, unload, shadow, promote and rollback write REPOSITORY/MODEL/\n"
    "version_policy.json, so they last.";

absl::StatusOr<int64_t> ParseVersion(const char* text) {
  int64_t version = 0;
  if (!absl::SimpleAtoi(text, &version) || version <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a version (a positive integer)"));
  }
  return version;
}

void Print(const matid::v1::ListModelsResponse& response) {
  std::printf("%-24s %-8s %-10s %-7s %-8s %-6s %-12s %s\n", "MODEL", "VERSION", "STATE", "DEFAULT",
              "ROLE", "VARIANT", "SHA256", "REASON");
  for (const auto& m : response.models()) {
    const char* role = m.is_shadow() ? "shadow" : m.is_rollback_target() ? "rollback" : "";
    std::printf("%-24s %-8s %-10s %-7s %-8s %-6s %-12s %s\n", m.name().c_str(), m.version().c_str(),
                matid::v1::ModelVersionStatus::State_Name(m.state()).c_str(),
                m.is_default() ? "yes" : "", role, m.variant().c_str(), m.sha256().c_str(),
                m.reason().c_str());
  }
}

// The promotion and rollback rules the flags give (shadow).
void SetRules(matid::v1::ShadowRequest& request) {
  if (absl::GetFlag(FLAGS_promote_after) > 0) {
    auto* promote = request.mutable_promote_when();
    promote->set_min_compared(absl::GetFlag(FLAGS_promote_after));
    promote->set_min_agreement(absl::GetFlag(FLAGS_min_agreement));
    promote->set_max_shadow_p99_ms(absl::GetFlag(FLAGS_max_shadow_p99_ms));
  }
  auto* rollback = request.mutable_rollback_when();
  if (double v = absl::GetFlag(FLAGS_rollback_window_seconds); v >= 0) {
    rollback->set_window_seconds(v);
  }
  if (double v = absl::GetFlag(FLAGS_rollback_max_error_rate); v >= 0) {
    rollback->set_max_error_rate(v);
  }
  if (double v = absl::GetFlag(FLAGS_rollback_low_confidence_below); v >= 0) {
    rollback->set_low_confidence_below(v);
  }
  if (double v = absl::GetFlag(FLAGS_rollback_max_low_confidence_ratio); v >= 0) {
    rollback->set_max_low_confidence_ratio(v);
  }
  if (int64_t v = absl::GetFlag(FLAGS_rollback_min_images); v >= 0) rollback->set_min_images(v);
  if (rollback->ByteSizeLong() == 0) request.clear_rollback_when();
}

// One call on the server: the stub, the call's context, and where the
// model versions it answers with go.
struct Call {
  matid::v1::ModelAdmin::Stub& stub;
  grpc::ClientContext& context;
  matid::v1::ListModelsResponse& response;
};

// A command's operands (after the command word).
using Operands = std::vector<std::string>;

absl::StatusOr<grpc::Status> PinCall(const Operands& operands, Call& call) {
  matid::v1::PinRequest request;
  request.set_model(operands[0]);
  for (size_t i = 1; i < operands.size(); ++i) {
    auto version = ParseVersion(operands[i].c_str());
    if (!version.ok()) return version.status();
    request.add_versions(*version);
  }
  return call.stub.Pin(&call.context, request, &call.response);
}

absl::StatusOr<grpc::Status> LoadCall(const std::string& command, const Operands& operands,
                                      Call& call) {
  auto version = ParseVersion(operands[1].c_str());
  if (!version.ok()) return version.status();
  matid::v1::VersionRequest request;
  request.set_model(operands[0]);
  request.set_version(*version);
  return command == "load" ? call.stub.Load(&call.context, request, &call.response)
                           : call.stub.Unload(&call.context, request, &call.response);
}

absl::StatusOr<grpc::Status> ShadowCall(const Operands& operands, Call& call) {
  matid::v1::ShadowRequest request;
  request.set_model(operands[0]);
  if (operands[1] != "off") {
    auto version = ParseVersion(operands[1].c_str());
    if (!version.ok()) return version.status();
    double fraction = 0.1;
    if (operands.size() == 3 &&
        (!absl::SimpleAtod(operands[2], &fraction) || !(fraction > 0) || fraction > 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", operands[2], "' is not a fraction in (0, 1]"));
    }
    request.set_version(*version);
    request.set_fraction(fraction);
    SetRules(request);
  }
  return call.stub.SetShadow(&call.context, request, &call.response);
}

grpc::Status ShadowReportCall(const Operands& operands, Call& call) {
  matid::v1::ShadowReportRequest request;
  request.set_model(operands[0]);
  matid::v1::ShadowReport report;
  grpc::Status status = call.stub.GetShadowReport(&call.context, request, &report);
  if (status.ok()) {
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(report, &json, options);
    std::printf("%s", json.c_str());
  }
  return status;
}

// Runs `command` and returns the server's answer; INVALID_ARGUMENT (exit
// 2) for an unknown command, wrong operands or an operand that is not a
// version or fraction.
absl::StatusOr<grpc::Status> Run(const std::string& command, const Operands& operands, Call& call) {
  const size_t n = operands.size();
  if (command == "list" && n == 0) {
    return call.stub.ListModels(&call.context, matid::v1::ListModelsRequest(), &call.response);
  }
  if (command == "reload" && n == 0) {
    return call.stub.Reload(&call.context, matid::v1::ReloadRequest(), &call.response);
  }
  if (command == "pin" && n >= 1) return PinCall(operands, call);
  if ((command == "load" || command == "unload") && n == 2) {
    return LoadCall(command, operands, call);
  }
  if (command == "shadow" && (n == 2 || n == 3)) return ShadowCall(operands, call);
  if ((command == "promote" || command == "rollback") && n == 1) {
    matid::v1::ModelRequest request;
    request.set_model(operands[0]);
    return command == "promote" ? call.stub.Promote(&call.context, request, &call.response)
                                : call.stub.Rollback(&call.context, request, &call.response);
  }
  if (command == "shadow-report" && n == 1) return ShadowReportCall(operands, call);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command or wrong operands: ", command, "\n", kUsage));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = matid::ParseProgramFlags(argc, argv, kUsage);
  auto credentials = matid::ChannelCredentialsFromFlags();
  if (!credentials.ok()) return matid::FailWith(credentials.status());
  if (args.size() < 2) return matid::FailWith(absl::InvalidArgumentError(kUsage), 2);
  auto stub = matid::v1::ModelAdmin::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_server), *credentials));
  grpc::ClientContext context;
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_timeout_seconds) * 1000)));
  matid::v1::ListModelsResponse response;
  Call call{*stub, context, response};
  const absl::StatusOr<grpc::Status> status =
      Run(args[1], Operands(args.begin() + 2, args.end()), call);
  if (!status.ok()) return matid::FailWith(status.status(), 2);
  if (response.models_size() > 0) Print(response);
  if (!status->ok()) {
    std::fprintf(stderr, "matid-admin: %s: %s\n", absl::GetFlag(FLAGS_server).c_str(),
                 status->error_message().c_str());
    return 1;
  }
  return 0;
}
