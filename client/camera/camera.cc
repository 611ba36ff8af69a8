#include "client/camera/camera.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <algorithm>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/camera/frame_result_message.h"
#include "common/backoff.h"
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

namespace {

FrameFolderOptions InspectionFolderOptions(const CameraOptions& options) {
  FrameFolderOptions folder;
  folder.dir = options.inspection_dir;
  folder.max_files = options.inspection_max_files;
  folder.max_mb = options.inspection_max_mb;
  folder.dir_flag = "--inspection_dir";
  folder.what = "inspection frame";
  folder.when_full = absl::StrCat(
      "--inspection_dir=", options.inspection_dir, " holds ", options.inspection_max_files,
      " frames (--inspection_max_files) or ", options.inspection_max_mb,
      " MB (--inspection_max_mb): frames needing inspection are counted, not saved, until some "
      "are removed");
  return folder;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Camera>> Camera::Create(const CameraOptions& options,
                                                       std::unique_ptr<FrameSource> source,
                                                       std::shared_ptr<grpc::Channel> channel,
                                                       Publish publish,
                                                       prometheus::Registry* registry) {
  absl::Status valid = ValidateCameraOptions(options);
  if (!valid.ok()) return valid;
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
  if (!options.inspection_dir.empty()) {
    const CameraMetrics& m = camera->metrics_;
    absl::StatusOr<std::unique_ptr<FrameFolder>> folder =
        FrameFolder::Create(InspectionFolderOptions(options),
                            {nullptr, m.inspection_folder_full, m.inspection_write_failures});
    if (!folder.ok()) return folder.status();
    camera->inspection_ = *std::move(folder);
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
      frames_(options.max_pending),
      busy_backoff_(options.reconnect_min, options.reconnect_max) {}

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

absl::StatusOr<PendingFrame> Camera::ToPending(Frame frame, const std::optional<ModelFit>& fit,
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
  int dropped = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dropped = frames_.Push(std::move(pending));
  }
  CountDropped(dropped);
  changed_.notify_all();
}

void Camera::CountDropped(int dropped) {
  for (int i = 0; i < dropped; ++i) Add(metrics_.dropped_queue_full);
  dropped_ += dropped;
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
  int dropped = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    send_paused_until_ = now + busy_backoff_.Next();
    std::vector<PendingFrame> again;
    again.push_back(std::move(frame));
    dropped = frames_.Requeue(std::move(again));
  }
  CountDropped(dropped);
  Add(metrics_.busy_retries);
  changed_.notify_all();
}

void Camera::HandleResult(const v1::FrameResult& result) {
  std::optional<PendingFrame> frame;
  {
    std::lock_guard<std::mutex> lock(mu_);
    frame = frames_.Answer(result.seq());
  }
  if (!frame.has_value()) return;  // an answer to a frame already answered
  changed_.notify_all();
  const absl::Time now = absl::Now();
  const auto code = static_cast<grpc::StatusCode>(result.status().code());
  if (code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::UNAVAILABLE) {
    return RetryWhenBusy(*std::move(frame), now);
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
    metrics_.latency->Observe(absl::ToDoubleSeconds(now - frame->captured_at));
  }
  const ResultMessage message =
      FrameResultMessage(result, {options_.camera_id, options_.boot_id, frame->captured_at}, now,
                         options_.inspection_threshold);
  if (message.needs_inspection) Add(metrics_.needs_inspection);
  if (message.needs_inspection && inspection_ != nullptr) {
    inspection_->Save(frame->full, message.message_id);
  }
  publish_(message);
}

Camera::SendStep Camera::WaitForFrameToSend(PendingFrame* frame) {
  std::unique_lock<std::mutex> lock(mu_);
  auto can_send = [&] {
    return frames_.has_pending() && frames_.in_flight() < options_.max_in_flight &&
           absl::Now() >= send_paused_until_;
  };
  auto finished = [&] { return capture_done_ && frames_.empty(); };
  while (true) {
    // Sleeps until there is work or an end; with frames in flight, at most
    // until their results are overdue (frame_timeout after the last one);
    // after a busy answer, until the pause ends.
    while (!stopping_ && !stream_broken_ && !can_send() && !finished()) {
      absl::Time wake = absl::InfiniteFuture();
      if (frames_.in_flight() > 0) wake = last_result_at_ + options_.frame_timeout;
      if (frames_.has_pending() && send_paused_until_ > absl::Now()) {
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
    if (frames_.in_flight() > 0 && absl::Now() - last_result_at_ >= options_.frame_timeout) {
      LogWarning("no result for %s; restarting the stream",
                 absl::FormatDuration(options_.frame_timeout));
      return SendStep::kReconnect;
    }
    if (!can_send()) continue;
    if (frames_.in_flight() == 0) last_result_at_ = absl::Now();
    *frame = frames_.Send();
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
  int dropped = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dropped = frames_.Requeue(frames_.TakeInFlight());
  }
  CountDropped(dropped);
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
