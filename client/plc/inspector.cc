#include "client/plc/inspector.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace matid::plc {

Inspector::Inspector(const InspectorOptions& options, std::unique_ptr<FrameSource> source,
                     std::shared_ptr<grpc::Channel> channel)
    : options_(options), source_(std::move(source)), stub_(v1::Classifier::NewStub(channel)) {}

void Inspector::LearnModelFit(absl::Time deadline) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  v1::HealthResponse health;
  if (!stub_->Health(&context, v1::HealthRequest(), &health).ok()) return;
  const v1::InputSpec& input = health.model().input();
  const std::optional<ResizeMode> mode = ParseResizeMode(input.resize());
  if (input.width() == 0 || input.height() == 0 || !mode) return;
  fit_ = ModelFit{static_cast<int>(input.width()), static_cast<int>(input.height()), *mode};
  LogInfo("frames shrunk to the model input %dx%d", fit_->width, fit_->height);
}

absl::StatusOr<Inspection> Inspector::Inspect() {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + options_.timeout;
  // Whole frames go until the server says its input size; asking takes at
  // most half the inspection's time.
  if (!fit_) LearnModelFit(start + options_.timeout / 2);
  Inspection inspection;
  inspection.captured_at = absl::Now();
  absl::StatusOr<Frame> frame = source_->Next(DecodeScaleFor(fit_, cv::Rect()));
  if (!frame.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no frame from ", source_->description(), ": ", frame.status().message()));
  }
  absl::StatusOr<cv::Mat> view = RegionOfInterest(frame->pixels, frame->scale, cv::Rect());
  if (!view.ok()) return view.status();
  absl::StatusOr<v1::Image> image = EncodeFrame(*view, fit_, options_.jpeg_quality);
  if (!image.ok()) return image.status();

  v1::ClassifyRequest request;
  *request.mutable_image() = *std::move(image);
  request.set_top_k(options_.top_k);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  const grpc::Status status = stub_->Classify(&context, request, &inspection.response);
  if (!status.ok()) {
    fit_.reset();  // the server may come back as another one, with another model
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("Classify: ", status.error_message()));
  }
  return inspection;
}

}  // namespace matid::plc
