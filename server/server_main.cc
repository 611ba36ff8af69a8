// matid-server's flags and run loop (see server_main.h).

#include "server/server_main.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/malloc_tuning.h"
#include "common/mutex_deadlock_detection.h"
#include "common/program_flags.h"
#include "common/stop_signals.h"
#include "server/backend/torch_backend.h"
#include "server/matid_server.h"

ABSL_FLAG(std::string, model_dir, "",
          "Model directory: metadata.json plus model.pt (and model_int8.pt for --int8). One "
          "model; give this or --model_repository.");
ABSL_FLAG(std::string, model_repository, "",
          "Model repository: REPOSITORY/<model>/<version>/ (versions published by `python3 -m "
          "model_export publish`, each with digests), and an optional "
          "REPOSITORY/<model>/version_policy.json. New versions are loaded beside the serving "
          "one and swapped in without failing requests; rescanned on SIGHUP and every "
          "--repository_poll_seconds.");
ABSL_FLAG(std::string, default_model, "",
          "With --model_repository: the model that serves requests naming none (empty: the only "
          "model).");
ABSL_FLAG(std::vector<std::string>, admin_client_subjects, {},
          "Client certificate subjects (full subject or CN, comma-separated, mutual TLS) allowed "
          "to use matid.v1.ModelAdmin (matid-admin) and the repository calls, besides callers on "
          "--admin_socket and (with --admin_from_loopback) 127.0.0.1/::1. Separate from "
          "--allowed_client_subjects, which every caller must also pass when set.");
ABSL_FLAG(std::string, admin_socket, "",
          "Also listen on this unix socket (plaintext, mode 0660: owner and group may connect); "
          "its callers may administer (matid-admin --server=unix:PATH). Empty: none.");
ABSL_FLAG(bool, admin_from_loopback, true,
          "Callers from 127.0.0.1 or ::1 over TCP may administer. Everything sharing the host's "
          "or pod's network shares loopback (sidecars, kubectl port-forward, every local user): "
          "set false there and use --admin_socket.");
ABSL_FLAG(int64_t, max_model_memory_mb, 0,
          "With --model_repository: memory budget for loaded model versions, each estimated by "
          "its model file's size (its weights); a new version that would not fit beside the "
          "serving one is refused (FAILED, retried on each rescan). 0: no budget.");
ABSL_FLAG(bool, unload_first_over_memory, false,
          "With --max_model_memory_mb: when a new version does not fit beside the serving one, "
          "unload the serving one first (its requests finish; new ones get UNAVAILABLE until "
          "the new version is loaded) instead of refusing the new version.");
ABSL_FLAG(
    std::vector<std::string>, trusted_model_keys, {},
    "Ed25519 public keys (PEM files, comma-separated): only model versions whose "
    "signature.ed25519 one of them verifies over the version's metadata.json load (model_export "
    "publish --signing_key signs); a version without one is FAILED, saying so. Empty: "
    "versions are checked by their digests only, which show a file is intact, not who "
    "made it.");
ABSL_FLAG(int, repository_poll_seconds, 0,
          "With --model_repository: rescan it this often; 0: only on SIGHUP.");
ABSL_FLAG(std::string, host, "0.0.0.0",
          "Address gRPC listens on (127.0.0.1 for this machine only).");
ABSL_FLAG(int, port, 50051, "gRPC port; 0 picks a free port and prints it.");
ABSL_FLAG(std::string, tls_cert, "",
          "Server certificate chain (PEM) for TLS; empty: plaintext gRPC.");
ABSL_FLAG(std::string, tls_key, "", "Private key (PEM) of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "CA (PEM) for mutual TLS: clients must present a certificate it signed.");
ABSL_FLAG(std::vector<std::string>, allowed_client_subjects, {},
          "With mutual TLS, only these client certificate subjects (full subject or CN), "
          "comma-separated.");
ABSL_FLAG(std::string, metrics_host, "0.0.0.0", "Address /metrics listens on.");
ABSL_FLAG(int, metrics_port, 8080,
          "Prometheus /metrics port; 0 picks a free port and prints it; -1 turns it off.");
ABSL_FLAG(int, max_batch_size, 8, "Most images in one forward pass; 1 turns dynamic batching off.");
ABSL_FLAG(int64_t, max_queue_delay_us, 0,
          "How long the oldest queued image may wait for a fuller batch (0: never wait while the "
          "model is idle).");
ABSL_FLAG(int, inference_workers, 1,
          "Batches run side by side, each on its own thread with --threads LibTorch threads. "
          "On 2 cores a small model serves most with --inference_workers=2 --threads=1.");
ABSL_FLAG(int, max_queue_size, 128,
          "Most images waiting for the model; beyond it requests get RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, threads, 2, "Threads one forward pass may use (LibTorch intra-op threads).");
ABSL_FLAG(bool, int8, false, "Serve the int8 model (model_int8.pt) instead of fp32 (model.pt).");
ABSL_FLAG(bool, optimize, true,
          "Apply TorchScript optimize_for_inference to the fp32 model at load.");
ABSL_FLAG(
    int64_t, max_image_pixels, 40'000'000,
    "Largest decoded image accepted (width*height); checked from the header before decoding.");
ABSL_FLAG(int64_t, max_encoded_bytes, 16 << 20, "Largest encoded image accepted, in bytes.");
ABSL_FLAG(bool, decode_unchecked_formats, false,
          "Also decode formats whose size cannot be read before decoding (TIFF, WebP, PxM, ...). "
          "OpenCV then allocates what the file claims (up to OPENCV_IO_MAX_IMAGE_PIXELS, default "
          "2^30) before --max_image_pixels is checked: set that variable too.");
ABSL_FLAG(bool, reduced_jpeg_decode, true,
          "Decode a JPEG at least twice the model input at 1/2, 1/4 or 1/8 scale (still at least "
          "the model input), then fit it: several times cheaper for camera-resolution frames; "
          "pixels differ slightly from a full decode (top-1 agreement 99.84%, see "
          "bench/RESULTS.md). false: decode every image whole.");
ABSL_FLAG(int, max_concurrent_streams, 100,
          "Calls one client connection may have open at once (HTTP/2 "
          "SETTINGS_MAX_CONCURRENT_STREAMS); its further calls wait until one ends. Bounds what "
          "one connection can hold open (gRPC's own default has no bound).");
ABSL_FLAG(int64_t, grpc_memory_mb, 1024,
          "Memory gRPC's transport may use for its buffers (grpc::ResourceQuota); beyond it gRPC "
          "stops reading from connections until memory is freed, so many clients sending at once "
          "cannot take the box's memory. At least two of --max_message_bytes; 0: no quota.");
ABSL_FLAG(int, max_message_bytes, 17 << 20,
          "Largest gRPC request accepted (and answer sent), in bytes; the default is "
          "--max_encoded_bytes' default (16 MiB) plus 1 MiB for the rest of a request.");
ABSL_FLAG(int64_t, max_parsed_request_mb, 64,
          "Most memory one request may take once parsed, in MiB: checked from its wire bytes "
          "before parsing (millions of empty items or tags are small on the wire and large "
          "parsed); beyond it RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, max_batch_items, 0,
          "Most images in one BatchClassify request, at most --max_queue_size; 0: 64, or "
          "--max_queue_size when that is smaller.");
ABSL_FLAG(int, max_stream_frames_in_flight, 8,
          "Frames of one ClassifyStream processed at once; reading pauses beyond it.");
ABSL_FLAG(int, default_top_k, 5, "Predictions returned when a request does not set top_k.");
ABSL_FLAG(int, lame_duck_ms, 500,
          "On SIGTERM/SIGINT, how long to answer UNAVAILABLE (health NOT_SERVING) before closing "
          "the listener.");
ABSL_FLAG(int, drain_grace_seconds, 10,
          "On SIGTERM/SIGINT, how long in-flight requests may take before they are cancelled.");
ABSL_FLAG(int64_t, max_connection_age_ms, 0,
          "Close client connections after this long (GOAWAY), so clients re-resolve and spread "
          "over servers added since; 0: never. Scale-out: e.g. 60000.");
ABSL_FLAG(int64_t, max_connection_age_grace_ms, -1,
          "After --max_connection_age_ms, how long calls in flight may still take before the "
          "connection is closed; -1: no limit (streams stay until they end).");
ABSL_FLAG(std::string, shadow_priority, "idle",
          "CPU priority of a shadow version's worker: idle (SCHED_IDLE: only cores serving "
          "leaves idle, so under steady load the shadow may compare nothing) or normal (it "
          "competes with serving; its queue still never delays an answer).");
ABSL_FLAG(std::string, shadow_disagreements_dir, "",
          "Save the images a shadow version and the serving version classify differently "
          "here, for labelling (DIR/<model>/: the image as sent, or the model input as PNG, and "
          "a JSON of both answers); empty: not saved.");
ABSL_FLAG(int, shadow_disagreements_max_files, 1000,
          "Most images kept in --shadow_disagreements_dir; beyond it new ones are counted, not "
          "saved, until some are removed.");
ABSL_FLAG(int64_t, shadow_disagreements_max_mb, 1024,
          "Most megabytes (images and their JSON) kept in --shadow_disagreements_dir, whatever "
          "was there before; beyond it new ones are counted, not saved, until some are removed.");
ABSL_FLAG(std::string, events_mqtt_host, "",
          "Local MQTT broker model events (promotions, rollbacks) are published to, QoS 1, for "
          "matid-bridge to forward; empty: events are only logged and counted.");
ABSL_FLAG(int, events_mqtt_port, 1883, "Port of --events_mqtt_host.");
ABSL_FLAG(std::string, box_id, "", "This edge box's name in model events; empty: the host name.");
ABSL_FLAG(std::string, events_topic, matid::kDefaultEventTopicTemplate,
          "Topic of model events; {box_id} is replaced.");
ABSL_FLAG(int, events_max_outbox, 1000,
          "Model events kept while the broker is away; beyond it the oldest is dropped and "
          "counted.");

namespace {

// Megabytes in bytes; -1 (refused by the factory, naming the flag) when
// negative or absurdly large, so nothing negative is shifted.
int64_t BytesOfMb(int64_t mb) { return mb >= 0 && mb <= (int64_t{1} << 22) ? mb << 20 : -1; }

matid::ServerOptions OptionsFromFlags() {
  matid::ServerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  options.tls.allowed_client_subjects = absl::GetFlag(FLAGS_allowed_client_subjects);
  options.metrics.bind_address = absl::GetFlag(FLAGS_metrics_host);
  options.metrics.port = absl::GetFlag(FLAGS_metrics_port);
  options.batcher.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  options.batcher.max_queue_delay_us = absl::GetFlag(FLAGS_max_queue_delay_us);
  options.batcher.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  options.batcher.workers = absl::GetFlag(FLAGS_inference_workers);
  options.preprocess.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  options.preprocess.max_encoded_bytes = absl::GetFlag(FLAGS_max_encoded_bytes);
  options.preprocess.decode_unchecked_formats = absl::GetFlag(FLAGS_decode_unchecked_formats);
  options.preprocess.reduced_jpeg_decode = absl::GetFlag(FLAGS_reduced_jpeg_decode);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  options.grpc_memory_bytes = BytesOfMb(absl::GetFlag(FLAGS_grpc_memory_mb));
  options.limits.max_batch_items = absl::GetFlag(FLAGS_max_batch_items);
  if (options.limits.max_batch_items == 0) {
    // The default follows a smaller queue instead of refusing to start.
    options.limits.max_batch_items = std::min(64, options.batcher.max_queue_size);
  }
  options.limits.max_stream_frames_in_flight = absl::GetFlag(FLAGS_max_stream_frames_in_flight);
  options.limits.max_parsed_request_bytes = BytesOfMb(absl::GetFlag(FLAGS_max_parsed_request_mb));
  options.default_top_k = absl::GetFlag(FLAGS_default_top_k);
  options.lame_duck = absl::Milliseconds(absl::GetFlag(FLAGS_lame_duck_ms));
  options.drain_grace = absl::Seconds(absl::GetFlag(FLAGS_drain_grace_seconds));
  const int64_t max_age_ms = absl::GetFlag(FLAGS_max_connection_age_ms);
  const int64_t max_age_grace_ms = absl::GetFlag(FLAGS_max_connection_age_grace_ms);
  options.max_connection_age =
      max_age_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(max_age_ms);
  options.max_connection_age_grace =
      max_age_grace_ms == -1 ? absl::InfiniteDuration() : absl::Milliseconds(max_age_grace_ms);
  options.default_model = absl::GetFlag(FLAGS_default_model);
  options.admin_access.client_subjects = absl::GetFlag(FLAGS_admin_client_subjects);
  options.admin_access.loopback = absl::GetFlag(FLAGS_admin_from_loopback);
  options.admin_socket = absl::GetFlag(FLAGS_admin_socket);
  options.max_model_memory_bytes = absl::GetFlag(FLAGS_max_model_memory_mb) << 20;
  options.unload_first_over_memory = absl::GetFlag(FLAGS_unload_first_over_memory);
  options.model_file = absl::GetFlag(FLAGS_int8) ? "model_int8.pt" : "model.pt";
  options.repository_poll_interval = absl::Seconds(absl::GetFlag(FLAGS_repository_poll_seconds));
  options.shadow_idle_priority = absl::GetFlag(FLAGS_shadow_priority) != "normal";
  options.shadow_disagreements_dir = absl::GetFlag(FLAGS_shadow_disagreements_dir);
  options.shadow_disagreements_max_files = absl::GetFlag(FLAGS_shadow_disagreements_max_files);
  options.shadow_disagreements_max_mb = absl::GetFlag(FLAGS_shadow_disagreements_max_mb);
  options.events.box_id = absl::GetFlag(FLAGS_box_id);
  options.events.mqtt.host = absl::GetFlag(FLAGS_events_mqtt_host);
  options.events.mqtt.port = absl::GetFlag(FLAGS_events_mqtt_port);
  options.events.mqtt.reconnect_max = absl::Seconds(5);
  options.events.mqtt.log_prefix = "MQTT";
  options.events.topic_template = absl::GetFlag(FLAGS_events_topic);
  options.events.max_outbox = absl::GetFlag(FLAGS_events_max_outbox);
  return options;
}

absl::StatusOr<matid::TorchBackendOptions> BackendOptionsFromFlags(int warmup_batch_size) {
  matid::TorchBackendOptions backend;
  backend.int8 = absl::GetFlag(FLAGS_int8);
  backend.optimize = absl::GetFlag(FLAGS_optimize);
  backend.intra_op_threads = absl::GetFlag(FLAGS_threads);
  backend.warmup_batch_size = warmup_batch_size;
  const std::vector<std::string> keys = absl::GetFlag(FLAGS_trusted_model_keys);
  if (!keys.empty()) {
    auto trusted = matid::TrustedModelKeys::Load(keys);
    if (!trusted.ok()) return trusted.status();
    backend.trusted_keys = *std::move(trusted);
  }
  return backend;
}

// The one model of --model_dir, or the repository's models.
absl::StatusOr<std::unique_ptr<matid::MatidServer>> CreateServer(
    const matid::ServerOptions& options, const matid::BackendDecorator& decorate) {
  // Every loaded backend goes through `decorate` when one is given.
  auto load = [decorate](const matid::TorchBackendOptions& backend)
      -> absl::StatusOr<std::unique_ptr<matid::ModelBackend>> {
    auto loaded = matid::CreateTorchBackend(backend);
    if (!loaded.ok() || !decorate) return loaded;
    return decorate(*std::move(loaded));
  };
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  const std::string repository = absl::GetFlag(FLAGS_model_repository);
  if (model_dir.empty() == repository.empty()) {
    return absl::InvalidArgumentError(
        "give exactly one of --model_dir (one model) and --model_repository (versioned models)");
  }
  absl::StatusOr<matid::TorchBackendOptions> flags =
      BackendOptionsFromFlags(options.batcher.max_batch_size);
  if (!flags.ok()) return flags.status();
  if (!repository.empty()) {
    matid::TorchBackendOptions backend = *flags;
    backend.require_sha256 = true;
    backend.low_priority_load = true;
    return matid::MatidServer::CreateWithRepository(
        options, repository, [backend, load](const std::string& version_dir) mutable {
          backend.model_dir = version_dir;
          return load(backend);
        });
  }
  if (!options.default_model.empty() || options.repository_poll_interval != absl::ZeroDuration() ||
      options.max_model_memory_bytes != 0 || options.unload_first_over_memory) {
    return absl::InvalidArgumentError(
        "--default_model, --repository_poll_seconds, --max_model_memory_mb and "
        "--unload_first_over_memory need --model_repository");
  }
  matid::TorchBackendOptions backend = *flags;
  backend.model_dir = model_dir;
  auto loaded = load(backend);
  if (!loaded.ok()) return loaded.status();
  return matid::MatidServer::Create(options, *std::move(loaded));
}

}  // namespace

namespace matid {

int RunServerMain(int argc, char** argv, const BackendDecorator& decorate) {
  matid::ParseProgramFlags(
      argc, argv,
      "LibTorch image classification server (gRPC matid.v1).\n"
      "Usage: matid-server --model_dir=DIR | --model_repository=DIR [--port=50051] "
      "[--metrics_port=8080]");
  matid::TurnOffMutexDeadlockDetection();

  const matid::StopSignals signals(/*also_sighup=*/true);  // before any thread starts
  matid::TuneMallocForLargeBuffers();

  matid::ServerOptions options = OptionsFromFlags();
  absl::Status valid = matid::ValidateServerOptions(options);
  if (!valid.ok()) return matid::FailWith(valid);
  if (const std::string priority = absl::GetFlag(FLAGS_shadow_priority);
      priority != "idle" && priority != "normal") {
    return matid::FailWith(absl::InvalidArgumentError(
        absl::StrCat("--shadow_priority is '", priority, "'; expected idle or normal")));
  }
  if (absl::GetFlag(FLAGS_repository_poll_seconds) < 0) {
    return matid::FailWith(absl::InvalidArgumentError(
        "--repository_poll_seconds must be >= 0 (0: rescan only on SIGHUP)"));
  }
  auto server = CreateServer(options, decorate);
  if (!server.ok()) return matid::FailWith(server.status());
  for (const matid::ModelVersionStatus& status : (*server)->models().Statuses()) {
    if (status.state != matid::ModelVersionState::kAvailable) continue;
    std::printf("matid-server: model %s version %s (%s, sha256 %s)%s\n", status.model.c_str(),
                status.version.c_str(), status.identity.variant.c_str(),
                status.identity.sha256.c_str(), status.is_default ? " (default)" : "");
  }
  const char* security = options.tls.cert_file.empty()        ? " (plaintext)"
                         : options.tls.client_ca_file.empty() ? " (TLS)"
                                                              : " (mutual TLS)";
  if (!(*server)->events_topic().empty()) {
    std::printf("matid-server: model events -> mqtt://%s:%d/%s\n", options.events.mqtt.host.c_str(),
                options.events.mqtt.port, (*server)->events_topic().c_str());
  }
  std::printf("matid-server: serving grpc_port=%d metrics_port=%d%s\n", (*server)->port(),
              (*server)->metrics_port(), security);
  std::fflush(stdout);

  int signal_number = signals.Wait();
  while (signal_number == SIGHUP) {
    std::printf("matid-server: SIGHUP received, rescanning the model repository\n");
    std::fflush(stdout);
    (*server)->Reload();
    signal_number = signals.Wait();
  }
  std::printf("matid-server: %s received, draining (grace %ds)\n",
              matid::StopSignals::Name(signal_number), absl::GetFlag(FLAGS_drain_grace_seconds));
  std::fflush(stdout);
  (*server)->Shutdown();
  std::printf("matid-server: stopped\n");
  return 0;
}

}  // namespace matid
