#include "server/matid_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <sys/stat.h>

#include <chrono>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace matid {
namespace {

ServingOptions ServingOptionsOf(const ServerOptions& options) {
  ServingOptions serving;
  serving.batcher = options.batcher;
  serving.preprocess = options.preprocess;
  serving.default_top_k = options.default_top_k;
  return serving;
}

// gRPC's listening address for --host and --port: an IPv6 address goes in
// brackets, and a unix socket ("unix:/path") has no port.
std::string ListenAddress(const std::string& host, int port) {
  if (absl::StartsWith(host, "unix:")) return host;
  return absl::StrCat(host.find(':') != std::string::npos ? "[" + host + "]" : host, ":", port);
}

}  // namespace

absl::Status ValidateServerOptions(const ServerOptions& options) {
  absl::Status batcher = ValidateBatcherOptions(options.batcher);
  if (!batcher.ok()) return batcher;
  if (absl::Status events = ValidateEventOptions(options.events); !events.ok()) return events;
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
  if (options.max_concurrent_streams < 1) {
    return absl::InvalidArgumentError("--max_concurrent_streams must be >= 1");
  }
  if (options.grpc_memory_bytes < 0 ||
      (options.grpc_memory_bytes != 0 &&
       options.grpc_memory_bytes < 2 * static_cast<int64_t>(options.max_message_bytes))) {
    return absl::InvalidArgumentError(
        "--grpc_memory_mb must hold at least two of --max_message_bytes (0: no quota)");
  }
  if (options.limits.max_parsed_request_bytes < (int64_t{1} << 20) ||
      options.limits.max_parsed_request_bytes > (int64_t{1} << 42)) {
    return absl::InvalidArgumentError("--max_parsed_request_mb must be in 1..4194304");
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
  auto shared_backend = std::make_shared<std::unique_ptr<ModelBackend>>(std::move(backend));
  return CreateWith(options, [&](ServerMetrics* metrics) {
    return ModelManager::CreateFixed(ServingOptionsOf(options), std::move(*shared_backend),
                                     metrics);
  });
}

absl::StatusOr<std::unique_ptr<MatidServer>> MatidServer::CreateWithRepository(
    const ServerOptions& options, const std::string& repository, BackendLoader loader) {
  ModelManagerOptions manager;
  manager.repository = repository;
  manager.default_model = options.default_model;
  manager.serving = ServingOptionsOf(options);
  manager.poll_interval = options.repository_poll_interval;
  manager.max_model_memory_bytes = options.max_model_memory_bytes;
  manager.unload_first_over_memory = options.unload_first_over_memory;
  manager.shadow_idle_priority = options.shadow_idle_priority;
  manager.rule_check_interval = options.rule_check_interval;
  manager.clock = options.clock;
  manager.shadow_disagreements_dir = options.shadow_disagreements_dir;
  manager.shadow_disagreements_max_files = options.shadow_disagreements_max_files;
  manager.shadow_disagreements_max_mb = options.shadow_disagreements_max_mb;
  manager.model_file = options.model_file;
  return CreateWith(options, [&](ServerMetrics* metrics) {
    return ModelManager::CreateFromRepository(manager, std::move(loader), metrics);
  });
}

absl::StatusOr<std::unique_ptr<MatidServer>> MatidServer::CreateWith(const ServerOptions& options,
                                                                     const ModelsFactory& models) {
  absl::Status valid = ValidateServerOptions(options);
  if (!valid.ok()) return valid;
  std::unique_ptr<MatidServer> server(new MatidServer());
  server->options_ = options;

  auto metrics = ServerMetrics::Create(options.metrics);
  if (!metrics.ok()) return metrics.status();
  server->metrics_ = *std::move(metrics);
  server->metrics_->SetQueueCapacity(options.batcher.max_queue_size);
  if (!options.events.mqtt.host.empty()) {
    auto events = EventPublisher::Create(options.events, nullptr, &server->metrics_->registry());
    if (!events.ok()) return events.status();
    server->events_ = *std::move(events);
  }

  auto manager = models(server->metrics_.get());
  if (!manager.ok()) return manager.status();
  server->models_ = *std::move(manager);
  if (server->events_ != nullptr) {
    server->models_->SetEventListener([events = server->events_.get()](EventMessage event) {
      events->Publish(std::move(event));
    });
  }
  server->service_ = std::make_unique<ClassifierService>(server->models_.get(), options.batcher,
                                                         server->metrics_.get(), options.limits);
  server->admin_ = std::make_unique<AdminService>(server->models_.get(), server->models_.get(),
                                                  options.admin_access);
  server->inference_ = std::make_unique<InferenceService>(
      server->models_.get(), server->models_.get(), options.batcher, server->metrics_.get(),
      options.limits, options.admin_access, MATID_VERSION);

  if (absl::Status listening = server->Listen(); !listening.ok()) return listening;
  server->service_->SetServing(true);
  server->inference_->SetServing(true);
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  server->server_->GetHealthCheckService()->SetServingStatus(v1::Classifier::service_full_name(),
                                                             true);
  server->UpdateModelHealth();
  server->models_->SetChangeListener([s = server.get()] { s->UpdateModelHealth(); });
  server->metrics_->SetServing(true);
  return server;
}

absl::Status MatidServer::Listen() {
  const ServerOptions& options = options_;
  auto credentials = MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = ListenAddress(options.host, options.port);
  builder.AddListeningPort(address, *credentials, &port_);
  if (!options.admin_socket.empty()) {
    builder.AddListeningPort("unix:" + options.admin_socket, grpc::InsecureServerCredentials());
  }
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  // A backstop for answers too: none is meant to come near it (ModelInfer
  // writes at most max_batch_items x 2 outputs), and one that did would be
  // refused RESOURCE_EXHAUSTED instead of sent.
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  grpc::ResourceQuota quota("matid-server");
  if (options.grpc_memory_bytes > 0) {
    quota.Resize(static_cast<size_t>(options.grpc_memory_bytes));
    builder.SetResourceQuota(quota);
  }
  if (options.max_connection_age != absl::InfiniteDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(options.max_connection_age)));
  }
  if (options.max_connection_age_grace != absl::InfiniteDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(options.max_connection_age_grace)));
  }
  builder.RegisterService(service_.get());
  builder.RegisterService(admin_.get());
  builder.RegisterService(inference_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || (port_ == 0 && !absl::StartsWith(address, "unix:"))) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen for gRPC on ", address,
        options.admin_socket.empty() ? "" : absl::StrCat(" and unix:", options.admin_socket),
        " (address in use, not an address of this machine, or a socket folder that is missing "
        "or not writable)"));
  }
  // gRPC made the socket with the process's umask; the group may connect too.
  if (!options.admin_socket.empty() && chmod(options.admin_socket.c_str(), 0660) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot make --admin_socket ", options.admin_socket, " mode 0660"));
  }
  return absl::OkStatus();
}

void MatidServer::UpdateModelHealth() {
  std::set<std::string> healthy;
  std::set<std::string> known;
  for (const ModelVersionStatus& status : models_->Statuses()) {
    known.insert(status.model);
    if (status.is_default && status.state == ModelVersionState::kAvailable) {
      healthy.insert(status.model);
    }
  }
  std::lock_guard<std::mutex> lock(health_mu_);
  if (stopping_.load()) return;  // everything is NOT_SERVING for good
  auto* health = server_->GetHealthCheckService();
  for (const std::string& name : known) health->SetServingStatus(name, healthy.count(name) > 0);
  for (const std::string& name : healthy_models_) {
    if (known.count(name) == 0) health->SetServingStatus(name, false);
  }
  healthy_models_ = std::move(healthy);
}

MatidServer::~MatidServer() { Shutdown(); }

void MatidServer::Shutdown() {
  std::lock_guard<std::mutex> lock(shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  stopping_.store(true);
  if (server_ != nullptr) {
    // Order: tell probes and clients first, then stop taking calls and let
    // the running ones finish (the batcher is still working for them), then
    // stop the batcher, which runs whatever is still queued.
    service_->SetServing(false);
    inference_->SetServing(false);
    metrics_->SetServing(false);
    server_->GetHealthCheckService()->SetServingStatus(false);  // every service
    absl::SleepFor(options_.lame_duck);
    server_->Shutdown(std::chrono::system_clock::now() +
                      absl::ToChronoSeconds(options_.drain_grace));
    server_->Wait();
  }
  // Runs whatever is still queued, then stops the models' workers.
  if (models_ != nullptr) models_->Shutdown();
}

}  // namespace matid
