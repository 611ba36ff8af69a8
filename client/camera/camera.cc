#include "client/camera/camera.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/file_contents.h"
#include "common/log.h"
#include "common/metrics_endpoint.h"

namespace matid {

absl::Status ValidateCameraOptions(const CameraOptions& options) {
  if (options.camera_id.empty() || options.camera_id.find_first_of("/+#") != std::string::npos) {
    return absl::InvalidArgumentError(
        "--camera_id must be non-empty without / + # (it is an MQTT topic level)");
  }
  struct AtLeastOne {
    int value;
    const char* flag;
  };
  for (const AtLeastOne& check :
       {AtLeastOne{options.top_k, "--top_k"}, AtLeastOne{options.max_in_flight, "--max_in_flight"},
        AtLeastOne{options.max_pending, "--max_pending"},
        AtLeastOne{options.every_nth_frame, "--every_nth_frame"}}) {
    if (check.value < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(check.flag, " is ", check.value, "; it must be at least 1"));
    }
  }
  if (options.max_fps < 0 || options.pace_fps < 0 || options.max_frames < 0) {
    return absl::InvalidArgumentError("--max_fps, --pace_fps and --max_frames must be >= 0");
  }
  if (options.jpeg_quality < 0 || options.jpeg_quality > 100) {
    return absl::InvalidArgumentError(absl::StrCat("--jpeg_quality is ", options.jpeg_quality,
                                                   "; it must be 1..100, or 0 for raw pixels"));
  }
  if (!(options.inspection_threshold >= 0 && options.inspection_threshold <= 1)) {
    return absl::InvalidArgumentError("--inspection_threshold must be in 0..1");
  }
  if (options.inspection_max_files < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--inspection_max_files is ", options.inspection_max_files, "; must be >= 1"));
  }
  if (options.inspection_max_mb < 1 || options.inspection_max_mb > kMaxFolderMb) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--inspection_max_mb is ", options.inspection_max_mb, "; must be 1 to ", kMaxFolderMb));
  }
  if (!options.capture.dir.empty() || !options.capture.label.empty()) {
    return ValidateFrameCaptureOptions(options.capture);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Camera>> Camera::Create(const CameraOptions& options,
                                                       std::unique_ptr<FrameSource> source,
                                                       std::shared_ptr<grpc::Channel> channel,
                                                       Publish publish,
                                                       prometheus::Registry* registry) {
  absl::Status valid = ValidateCameraOptions(options);
  if (!valid.ok()) return valid;
  if (!options.inspection_dir.empty()) {
    absl::Status writable = CheckFolderWritable(options.inspection_dir, "--inspection_dir");
    if (!writable.ok()) return writable;
  }
  if (source == nullptr || channel == nullptr || !publish) {
    return absl::InvalidArgumentError("a camera needs a frame source, a channel and a publisher");
  }
  std::unique_ptr<Camera> camera(
      new Camera(options, std::move(source), std::move(channel), std::move(publish), registry));
  if (!options.capture.dir.empty()) {
    const CameraMetrics& m = camera->metrics_;
    absl::StatusOr<std::unique_ptr<FrameCapture>> capture = FrameCapture::Create(
        options.capture,
        {m.capture_saved, m.capture_skipped_busy, m.capture_folder_full, m.capture_write_failures});
    if (!capture.ok()) return capture.status();
    camera->capture_ = *std::move(capture);
  }
  return camera;
}

Camera::Camera(const CameraOptions& options, std::unique_ptr<FrameSource> source,
               std::shared_ptr<grpc::Channel> channel, Publish publish,
               prometheus::Registry* registry)
    : options_(options),
      source_(std::move(source)),
      channel_(std::move(channel)),
      stub_(v1::Classifier::NewStub(channel_)),
      publish_(std::move(publish)),
      metrics_(RegisterCameraMetrics(registry)),
      busy_backoff_(options.reconnect_min, options.reconnect_max) {
  if (!options_.inspection_dir.empty()) {
    inspection_budget_ = std::make_unique<FolderBudget>(
        options_.inspection_max_files, options_.inspection_max_mb << 20,
        [dir = options_.inspection_dir] { return MeasureFolder(dir, ".jpg"); });
  }
}

void Camera::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
}

void Camera::LearnModelFit() {
  if (!options_.shrink_to_model) return;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::HealthResponse health;
  const grpc::Status status = stub_->Health(&context, v1::HealthRequest(), &health);
  const v1::InputSpec& input = health.model().input();
  const std::optional<ResizeMode> mode = ParseResizeMode(input.resize());
  if (!status.ok() || input.width() == 0 || input.height() == 0 || !mode) {
    // Frames go as they are until a later connection learns the size.
    LogWarning("model input size unknown (%s); sending whole frames",
               status.ok() ? "Health has no input size" : status.error_message());
    return;
  }
  const ModelFit fit{static_cast<int>(input.width()), static_cast<int>(input.height()), *mode};
  std::lock_guard<std::mutex> lock(mu_);
  if (!model_fit_ || model_fit_->width != fit.width || model_fit_->height != fit.height ||
      model_fit_->mode != fit.mode) {
    LogInfo("frames shrunk to the model input %dx%d (%s)", fit.width, fit.height,
            ResizeModeName(fit.mode));
  }
  model_fit_ = fit;
}

bool Camera::WaitToRead(absl::Time next_read) {
  std::unique_lock<std::mutex> lock(mu_);
  const absl::Time now = absl::Now();
  if (now < next_read) {  // pacing; Stop() ends it
    changed_.wait_for(lock, absl::ToChronoMicroseconds(next_read - now), [&] { return stopping_; });
  }
  return !stopping_;
}

absl::StatusOr<Camera::PendingFrame> Camera::ToPending(Frame frame,
                                                       const std::optional<ModelFit>& fit,
                                                       uint64_t seq, absl::Time captured_at) {
  absl::StatusOr<cv::Mat> roi_view = RegionOfInterest(frame.pixels, frame.scale, options_.roi);
  if (!roi_view.ok()) return roi_view.status();
  absl::StatusOr<v1::Image> image = EncodeFrame(*roi_view, fit, options_.jpeg_quality);
  if (!image.ok()) return image.status();
  PendingFrame pending{seq, captured_at, *std::move(image), FullFrame()};
  const bool capture = capture_ != nullptr && capture_->Wants();
  if (!capture && options_.inspection_dir.empty()) return pending;
  // The whole ROI at full resolution, or the JPEG when it was decoded at
  // reduced scale; the pixels are shared, never written again.
  FullFrame full{frame.scale == 1 ? *roi_view : cv::Mat(),
                 frame.scale == 1 ? std::string() : std::move(frame.jpeg), options_.roi};
  if (capture) {  // a training photo: written off this thread
    capture_->Offer(full, MessageId(options_.camera_id, options_.boot_id, seq));
  }
  if (!options_.inspection_dir.empty()) pending.full = std::move(full);
  return pending;
}

void Camera::Queue(PendingFrame pending) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(std::move(pending));
    if (static_cast<int>(pending_.size()) > options_.max_pending) {
      pending_.pop_front();  // never block capture on a slow server
      Add(metrics_.dropped_queue_full);
      ++dropped_;
    }
  }
  changed_.notify_all();
}

void Camera::RequeueLocked(std::vector<PendingFrame> frames) {
  for (auto it = frames.rbegin(); it != frames.rend(); ++it) pending_.push_front(std::move(*it));
  while (static_cast<int>(pending_.size()) > options_.max_pending) {
    pending_.pop_front();
    Add(metrics_.dropped_queue_full);
    ++dropped_;
  }
}

void Camera::CaptureLoop() {
  const absl::Duration pace =
      options_.pace_fps > 0 ? absl::Seconds(1.0 / options_.pace_fps) : absl::ZeroDuration();
  const absl::Duration min_gap =
      options_.max_fps > 0 ? absl::Seconds(1.0 / options_.max_fps) : absl::ZeroDuration();
  absl::Time next_read = absl::Now();
  absl::Time last_kept = absl::InfinitePast();
  uint64_t read_count = 0;
  uint64_t seq = 0;
  absl::Status status;
  while (WaitToRead(pace > absl::ZeroDuration() ? next_read : absl::InfinitePast())) {
    if (options_.max_frames > 0 && static_cast<int64_t>(seq) >= options_.max_frames) break;
    if (pace > absl::ZeroDuration()) next_read = std::max(next_read + pace, absl::Now() - pace);
    std::optional<ModelFit> fit;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fit = model_fit_;
    }
    absl::StatusOr<Frame> frame = source_->Next(DecodeScaleFor(fit, options_.roi));
    if (!frame.ok()) {
      if (!absl::IsOutOfRange(frame.status())) status = frame.status();
      break;
    }
    const absl::Time captured_at = absl::Now();
    if (read_count++ % std::max(1, options_.every_nth_frame) != 0) continue;
    if (captured_at - last_kept < min_gap) continue;
    last_kept = captured_at;
    absl::StatusOr<PendingFrame> pending = ToPending(*std::move(frame), fit, seq, captured_at);
    if (!pending.ok()) {
      status = pending.status();
      break;
    }
    ++seq;
    Add(metrics_.captured);
    ++captured_;
    Queue(*std::move(pending));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    capture_done_ = true;
    source_status_ = status;
  }
  changed_.notify_all();
}

void Camera::RetryWhenBusy(PendingFrame frame, absl::Time now) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    send_paused_until_ = now + busy_backoff_.Next();
    std::vector<PendingFrame> again;
    again.push_back(std::move(frame));
    RequeueLocked(std::move(again));
  }
  Add(metrics_.busy_retries);
  changed_.notify_all();
}

void Camera::HandleResult(const v1::FrameResult& result) {
  PendingFrame frame;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = in_flight_.find(result.seq());
    if (it == in_flight_.end()) return;  // an answer to a frame already answered
    frame = std::move(it->second);
    in_flight_.erase(it);
  }
  changed_.notify_all();
  const absl::Time now = absl::Now();
  const auto code = static_cast<grpc::StatusCode>(result.status().code());
  if (code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::UNAVAILABLE) {
    return RetryWhenBusy(std::move(frame), now);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    busy_backoff_.Reset();
  }
  if (code != grpc::StatusCode::OK) {
    Add(metrics_.failed);
    ++failed_;
    LogWarning("frame %d refused by the server: %s", result.seq(), result.status().message());
    return;
  }
  Add(metrics_.classified);
  ++classified_;
  if (metrics_.latency != nullptr) {
    metrics_.latency->Observe(absl::ToDoubleSeconds(now - frame.captured_at));
  }
  ResultMessage message;
  message.camera_id = options_.camera_id;
  message.frame_seq = result.seq();
  message.message_id = MessageId(options_.camera_id, options_.boot_id, result.seq());
  message.timestamp = Rfc3339Millis(frame.captured_at);
  message.model_name = result.model().name();
  message.model_version = result.model().version();
  message.model_variant = result.model().variant();
  message.model_sha256 = result.model().sha256();
  for (const auto& p : result.predictions()) message.predictions.push_back({p.label(), p.score()});
  if (!message.predictions.empty()) {
    message.top_label = message.predictions.front().label;
    message.top_score = message.predictions.front().score;
  }
  message.needs_inspection = message.top_score < options_.inspection_threshold;
  if (message.needs_inspection) Add(metrics_.needs_inspection);
  message.latency_ms = absl::ToDoubleMilliseconds(now - frame.captured_at);
  if (message.needs_inspection && !options_.inspection_dir.empty()) {
    SaveInspectionFrame(frame, message.message_id);
  }
  publish_(message);
}

void Camera::SaveInspectionFrame(const PendingFrame& frame, const std::string& message_id) {
  // The whole ROI at full resolution, not the shrunk frame the model saw: a person labels it.
  absl::StatusOr<std::string> jpeg = FullResolutionJpeg(frame.full);
  if (!jpeg.ok()) {
    Add(metrics_.inspection_write_failures);
    LogError("inspection frame not saved: %s", jpeg.status().ToString());
    return;
  }
  const int64_t bytes = static_cast<int64_t>(jpeg->size());
  if (!inspection_budget_->TryTake(bytes)) {
    Add(metrics_.inspection_folder_full);
    if (!inspection_folder_full_.exchange(true)) {
      LogWarning(
          "--inspection_dir=%s holds %d frames (--inspection_max_files) or %d MB "
          "(--inspection_max_mb): frames needing inspection are counted, not saved, until "
          "some are removed",
          options_.inspection_dir, options_.inspection_max_files, options_.inspection_max_mb);
    }
    return;
  }
  inspection_folder_full_ = false;
  const std::string path = absl::StrCat(options_.inspection_dir, "/", message_id, ".jpg");
  if (absl::Status written = WriteFileContents(path, *jpeg); !written.ok()) {
    inspection_budget_->GiveBack(bytes);
    Add(metrics_.inspection_write_failures);
    LogError("inspection frame not saved: %s", written.ToString());
  }
}

Camera::SendStep Camera::WaitForFrameToSend(PendingFrame* frame) {
  std::unique_lock<std::mutex> lock(mu_);
  auto can_send = [&] {
    return !pending_.empty() && static_cast<int>(in_flight_.size()) < options_.max_in_flight &&
           absl::Now() >= send_paused_until_;
  };
  auto finished = [&] { return capture_done_ && pending_.empty() && in_flight_.empty(); };
  while (true) {
    // Sleeps until there is work or an end; with frames in flight, at most
    // until their results are overdue (frame_timeout after the last one);
    // after a busy answer, until the pause ends.
    while (!stopping_ && !stream_broken_ && !can_send() && !finished()) {
      absl::Time wake = absl::InfiniteFuture();
      if (!in_flight_.empty()) wake = last_result_at_ + options_.frame_timeout;
      if (!pending_.empty() && send_paused_until_ > absl::Now()) {
        wake = std::min(wake, send_paused_until_);
      }
      if (wake == absl::InfiniteFuture()) {
        changed_.wait(lock);
        continue;
      }
      const absl::Time now = absl::Now();
      if (now >= wake) break;
      changed_.wait_for(lock, absl::ToChronoMicroseconds(wake - now));
    }
    if (stopping_ || stream_broken_) return SendStep::kReconnect;
    if (finished()) return SendStep::kFinished;
    if (!in_flight_.empty() && absl::Now() - last_result_at_ >= options_.frame_timeout) {
      LogWarning("no result for %s; restarting the stream",
                 absl::FormatDuration(options_.frame_timeout));
      return SendStep::kReconnect;
    }
    if (!can_send()) continue;
    *frame = pending_.front();
    pending_.pop_front();
    if (in_flight_.empty()) last_result_at_ = absl::Now();
    in_flight_[frame->seq] = *frame;
    return SendStep::kSend;
  }
}

Camera::StreamEnd Camera::RunOneStream() {
  grpc::ClientContext context;
  auto stream = stub_->ClassifyStream(&context);
  std::atomic<bool> answered{false};
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream_broken_ = false;
    last_result_at_ = absl::Now();
  }
  std::thread reader([&] {
    v1::FrameResult result;
    while (stream->Read(&result)) {
      answered = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_result_at_ = absl::Now();
      }
      HandleResult(result);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stream_broken_ = true;
    }
    changed_.notify_all();
  });

  bool all_done = false;
  while (true) {
    PendingFrame frame;
    const SendStep step = WaitForFrameToSend(&frame);
    if (step == SendStep::kFinished) all_done = true;
    if (step != SendStep::kSend) break;
    v1::Frame request;
    request.set_seq(frame.seq);
    request.set_top_k(options_.top_k);
    *request.mutable_image() = std::move(frame.image);
    (*request.mutable_tags())["camera_id"] = options_.camera_id;
    if (!stream->Write(request)) break;
    Add(metrics_.sent);
  }
  if (all_done) {
    stream->WritesDone();
  } else {
    context.TryCancel();
  }
  reader.join();
  grpc::Status status = stream->Finish();
  if (!all_done && !status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    LogWarning("stream ended: %s (%d)", status.error_message(), status.error_code());
  }
  // Frames still unanswered go back to the front of the queue, in order.
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<PendingFrame> unanswered;
  for (auto& [seq, frame] : in_flight_) unanswered.push_back(std::move(frame));
  in_flight_.clear();
  RequeueLocked(std::move(unanswered));
  if (all_done) return StreamEnd::kAllDone;
  return answered ? StreamEnd::kEndedAfterResults : StreamEnd::kEndedWithoutResults;
}

void Camera::StreamLoop() {
  Backoff backoff(options_.reconnect_min, options_.reconnect_max);
  bool first = true;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    if (!first) {
      Add(metrics_.reconnects);
      LearnModelFit();  // the server may be another one now, with another model
    }
    first = false;
    const StreamEnd end = RunOneStream();
    if (end == StreamEnd::kAllDone) return;
    // A stream that was answered had a working server: it ended by a
    // server's connection age, a restart or a kill, so the next one starts
    // at the shortest delay. Only failures in a row wait longer and longer
    // (a stream rotated every few seconds must not climb to the maximum).
    if (end == StreamEnd::kEndedAfterResults) backoff.Reset();
    const absl::Duration delay = backoff.Next();
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, absl::ToChronoMicroseconds(delay), [&] { return stopping_; });
  }
}

absl::Status Camera::Run() {
  LearnModelFit();  // before the first frame is encoded
  std::thread capture([this] { CaptureLoop(); });
  StreamLoop();
  Stop();  // a stream loop that ended stops the capture too
  capture.join();
  std::lock_guard<std::mutex> lock(mu_);
  return source_status_;
}

}  // namespace matid
