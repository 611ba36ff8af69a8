// Wires one serving process together: metrics endpoint, model manager, the
// matid.v1 services, the Open Inference Protocol service, the standard
// grpc.health.v1 service and server reflection, all on one port. Owns them all and shuts them down
// in order. Thread-safety: Shutdown() may be called from any thread, once or more.
#ifndef MATID_SERVER_MATID_SERVER_H_
#define MATID_SERVER_MATID_SERVER_H_

#include <grpcpp/server.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/api/admin_access.h"
#include "server/api/admin_service.h"
#include "server/api/classifier_service.h"
#include "server/api/inference_service.h"
#include "server/api/server_credentials.h"
#include "server/backend/model_backend.h"
#include "server/core/batcher.h"
#include "server/core/metrics.h"
#include "server/core/preprocessor.h"
#include "server/event_publisher.h"
#include "server/repository/model_manager.h"

namespace matid {

struct ServerOptions {
  std::string host = "0.0.0.0";  // gRPC listen address
  int port = 50051;              // 0 picks a free port (see port())
  TlsOptions tls;                // plaintext unless a certificate is given
  MetricsOptions metrics;
  BatcherOptions batcher;
  PreprocessOptions preprocess;
  ServiceLimits limits;
  int default_top_k = 5;
  // Largest gRPC message accepted, in bytes; larger ones get RESOURCE_EXHAUSTED.
  int max_message_bytes = 17 << 20;
  // Calls one connection may have open at once (HTTP/2
  // SETTINGS_MAX_CONCURRENT_STREAMS): a client's further calls wait for one
  // to end, so one connection cannot hold unbounded streams and their
  // buffers. gRPC's own default has no bound.
  int max_concurrent_streams = 100;
  // Memory gRPC's transport may take for its buffers (grpc::ResourceQuota),
  // in bytes; beyond it gRPC stops reading from connections until memory is
  // freed. 0: no quota.
  int64_t grpc_memory_bytes = int64_t{1} << 30;
  // On Shutdown(), how long the server stays up answering UNAVAILABLE (and
  // NOT_SERVING to health checks) before it stops accepting connections, so
  // clients and load balancers move away before calls can be cut off.
  absl::Duration lame_duck = absl::Milliseconds(500);
  // After that, how long in-flight RPCs may take before they are cancelled.
  absl::Duration drain_grace = absl::Seconds(10);
  // Connections older than this get GOAWAY, so clients re-resolve the
  // server's name and spread over servers added since (scale-out);
  // InfiniteDuration() keeps them open. Calls in flight then get
  // max_connection_age_grace to finish before the connection is closed.
  absl::Duration max_connection_age = absl::InfiniteDuration();
  absl::Duration max_connection_age_grace = absl::InfiniteDuration();
  // With a model repository (CreateWithRepository): the model that serves
  // requests naming none (empty: the only one) and how often the
  // repository is rescanned (zero: only on Reload()).
  std::string default_model;
  absl::Duration repository_poll_interval = absl::ZeroDuration();
  // Who may use matid.v1.ModelAdmin and the repository calls, besides
  // callers on `admin_socket`.
  AdminAccess admin_access;
  // A unix socket the server also listens on, plaintext, whose callers are
  // admins: made owner and group read-write (0660) (empty: none).
  std::string admin_socket;
  // Memory budget of loaded model versions (see ModelManagerOptions); the
  // file whose size estimates a version's memory.
  int64_t max_model_memory_bytes = 0;
  bool unload_first_over_memory = false;
  std::string model_file = "model.pt";
  // A shadow version's worker runs under SCHED_IDLE (see ModelManagerOptions).
  bool shadow_idle_priority = true;
  // How often promotion and rollback rules are checked (see ModelManagerOptions).
  absl::Duration rule_check_interval = absl::Seconds(1);
  // The model manager's clock (see ModelManagerOptions); nullptr: the real one.
  Clock* clock = nullptr;
  // Images a shadow disagrees on: saved here (empty: not), at most this
  // many and this many megabytes.
  std::string shadow_disagreements_dir;
  int shadow_disagreements_max_files = 1000;
  int64_t shadow_disagreements_max_mb = 1024;
  // Where model lifecycle events go besides the log and metrics (MQTT).
  EventOptions events;
};

absl::Status ValidateServerOptions(const ServerOptions& options);

class MatidServer {
 public:
  // Serves one loaded model (--model_dir). Starts serving at once (health
  // SERVING). The backend is moved in.
  static absl::StatusOr<std::unique_ptr<MatidServer>> Create(const ServerOptions& options,
                                                             std::unique_ptr<ModelBackend> backend);

  // Serves a model repository: loads it (see ModelManager) before serving,
  // then follows it. `loader` turns a version folder into a backend.
  static absl::StatusOr<std::unique_ptr<MatidServer>> CreateWithRepository(
      const ServerOptions& options, const std::string& repository, BackendLoader loader);

  ~MatidServer();

  int port() const { return port_; }
  int metrics_port() const { return metrics_->port(); }
  // The metrics this server records (also when it serves no /metrics).
  prometheus::Registry& metrics_registry() { return metrics_->registry(); }
  const ModelManager& models() const { return *models_; }
  // The MQTT topic model events go to; empty when they go to no broker.
  std::string events_topic() const { return events_ != nullptr ? events_->topic() : ""; }
  // Rescans the model repository (SIGHUP); returns at once.
  void Reload() { models_->RequestReload(); }

  // Graceful drain: health goes NOT_SERVING and new RPCs get UNAVAILABLE for
  // lame_duck; then the listener closes, in-flight RPCs (and every queued
  // image) finish within drain_grace, and the batcher stops. Blocks until
  // done. Idempotent.
  void Shutdown();

 private:
  using ModelsFactory =
      std::function<absl::StatusOr<std::unique_ptr<ModelManager>>(ServerMetrics* metrics)>;

  MatidServer() = default;
  static absl::StatusOr<std::unique_ptr<MatidServer>> CreateWith(const ServerOptions& options,
                                                                 const ModelsFactory& models);
  // Builds and starts the gRPC server (credentials, limits, services) on
  // options_.host:port; UNAVAILABLE when it cannot listen.
  absl::Status Listen();
  // grpc.health.v1 per model: SERVING while the model has a default version.
  void UpdateModelHealth();

  ServerOptions options_;
  // Destroyed in reverse order: server before service before models.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<EventPublisher> events_;  // or nullptr: no MQTT events
  std::unique_ptr<ModelManager> models_;
  std::unique_ptr<ClassifierService> service_;
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<InferenceService> inference_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

  std::mutex shutdown_mu_;  // std::mutex: visible to ThreadSanitizer (see batch_scheduler.h)
  bool shut_down_ = false;  // guarded by shutdown_mu_
  std::atomic<bool> stopping_{false};     // Shutdown() has begun
  std::mutex health_mu_;                  // serializes UpdateModelHealth
  std::set<std::string> healthy_models_;  // guarded by health_mu_
};

}  // namespace matid

#endif  // MATID_SERVER_MATID_SERVER_H_
