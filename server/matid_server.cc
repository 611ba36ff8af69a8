#include "server/matid_server.h"

#include <limits>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <chrono>

#include "absl/strings/str_cat.h"

namespace matid {

absl::Status ValidateServerOptions(const ServerOptions& options) {
  absl::Status batcher = ValidateBatcherOptions(options.batcher);
  if (!batcher.ok()) return batcher;
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("port is ", options.port, "; must be in 0..65535"));
  }
  if (options.preprocess.max_image_pixels < 1) {
    return absl::InvalidArgumentError("max_image_pixels must be >= 1");
  }
  if (options.limits.max_batch_items < 1 ||
      options.limits.max_batch_items > options.batcher.max_queue_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_batch_items is ", options.limits.max_batch_items,
        "; must be in 1..--max_queue_size (", options.batcher.max_queue_size,
        ") so a full BatchClassify can ever be queued: lower --max_batch_items or raise "
        "--max_queue_size"));
  }
  if (options.limits.max_stream_frames_in_flight < 1) {
    return absl::InvalidArgumentError("max_stream_frames_in_flight must be >= 1");
  }
  if (options.default_top_k < 1) {
    return absl::InvalidArgumentError("default_top_k must be >= 1");
  }
  if (options.lame_duck < absl::ZeroDuration() || options.drain_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lame_duck and drain_grace must be >= 0");
  }
  if (options.max_message_bytes < 1024) {
    return absl::InvalidArgumentError("max_message_bytes must be >= 1024");
  }
  const absl::Duration max_age = absl::Milliseconds(std::numeric_limits<int>::max());
  if (options.max_connection_age <= absl::ZeroDuration() ||
      (options.max_connection_age != absl::InfiniteDuration() &&
       options.max_connection_age > max_age)) {
    return absl::InvalidArgumentError(
        "--max_connection_age_ms must be positive and at most 2147483647 (0: no limit)");
  }
  if (options.max_connection_age_grace < absl::ZeroDuration() ||
      (options.max_connection_age_grace != absl::InfiniteDuration() &&
       options.max_connection_age_grace > max_age)) {
    return absl::InvalidArgumentError(
        "--max_connection_age_grace_ms must be at least 0 and at most 2147483647 (-1: no limit)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MatidServer>> MatidServer::Create(
    const ServerOptions& options, std::unique_ptr<ModelBackend> backend) {
  absl::Status valid = ValidateServerOptions(options);
  if (!valid.ok()) return valid;
  std::unique_ptr<MatidServer> server(new MatidServer());
  server->options_ = options;
  server->backend_ = std::move(backend);

  auto metrics = ServerMetrics::Create(options.metrics);
  if (!metrics.ok()) return metrics.status();
  server->metrics_ = *std::move(metrics);
  server->metrics_->SetModel(server->backend_->info());
  server->metrics_->SetQueueCapacity(options.batcher.max_queue_size);

  auto batcher = Batcher::Create(options.batcher, server->backend_.get(), server->metrics_.get());
  if (!batcher.ok()) return batcher.status();
  server->batcher_ = *std::move(batcher);
  server->classifier_ = std::make_unique<Classifier>(server->backend_->info(), options.preprocess,
                                                     options.default_top_k, server->batcher_.get(),
                                                     server->metrics_.get());
  server->service_ = std::make_unique<ClassifierService>(
      server->classifier_.get(), server->batcher_.get(), server->metrics_.get(), options.limits);

  auto credentials = MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(
      options.host.find(':') != std::string::npos ? "[" + options.host + "]" : options.host, ":",
      options.port);
  builder.AddListeningPort(address, *credentials, &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  if (options.max_connection_age != absl::InfiniteDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               static_cast<int>(absl::ToInt64Milliseconds(options.max_connection_age)));
  }
  if (options.max_connection_age_grace != absl::InfiniteDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(options.max_connection_age_grace)));
  }
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", address,
                     " (address in use, or not an address of this machine)"));
  }
  server->service_->SetServing(true);
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  server->server_->GetHealthCheckService()->SetServingStatus(v1::Classifier::service_full_name(),
                                                             true);
  server->metrics_->SetServing(true);
  return server;
}

MatidServer::~MatidServer() { Shutdown(); }

void MatidServer::Shutdown() {
  std::lock_guard<std::mutex> lock(shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    // Order: tell probes and clients first, then stop taking calls and let
    // the running ones finish (the batcher is still working for them), then
    // stop the batcher, which runs whatever is still queued.
    service_->SetServing(false);
    metrics_->SetServing(false);
    server_->GetHealthCheckService()->SetServingStatus(false);  // every service
    absl::SleepFor(options_.lame_duck);
    server_->Shutdown(std::chrono::system_clock::now() +
                      absl::ToChronoSeconds(options_.drain_grace));
    server_->Wait();
  }
  if (batcher_ != nullptr) batcher_->Shutdown();
}

}  // namespace matid
