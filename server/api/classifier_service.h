// The matid.v1.Classifier gRPC service (callback API): translates protobuf
// to the serving core's types and back, and records per-RPC metrics. No
// thread is parked per call: handlers preprocess, queue, and return; the
// batcher's completion finishes the RPC. Classify, BatchClassify and
// ClassifyStream take their requests as wire bytes and parse them only
// within --max_parsed_request_mb (request_parse.h).
// Thread-safety: gRPC calls the handlers from its own threads; SetServing
// may be called from any thread.
#ifndef MATID_SERVER_API_CLASSIFIER_SERVICE_H_
#define MATID_SERVER_API_CLASSIFIER_SERVICE_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "matid/v1/matid.grpc.pb.h"
#include "server/api/call_context.h"
#include "server/core/batcher.h"
#include "server/core/classifier.h"
#include "server/router/model_router.h"

namespace matid {

class ServerMetrics;

struct ServiceLimits {
  int max_batch_items = 64;             // images in one BatchClassify
  int max_stream_frames_in_flight = 8;  // per ClassifyStream; reads pause beyond it
  // The most memory one request may take once parsed; larger ones are
  // refused before parsing (RESOURCE_EXHAUSTED).
  int64_t max_parsed_request_bytes = int64_t{64} << 20;
};

// The generated service with the classifying methods taking wire bytes
// (gRPC's CallbackService with those three methods raw).
using RawClassifierBase = v1::Classifier::WithRawCallbackMethod_Classify<
    v1::Classifier::WithRawCallbackMethod_BatchClassify<
        v1::Classifier::WithRawCallbackMethod_ClassifyStream<
            v1::Classifier::WithCallbackMethod_Health<v1::Classifier::Service>>>>;

class ClassifierService final : public RawClassifierBase {
 public:
  // All pointers must outlive the service; `metrics` may be nullptr.
  // `batcher` gives the per-version queue limits Health reports.
  ClassifierService(const ModelRouter* models, const BatcherOptions& batcher,
                    ServerMetrics* metrics, const ServiceLimits& limits);

  // While not serving, new RPCs get UNAVAILABLE and Health says NOT_SERVING.
  void SetServing(bool serving) { serving_.store(serving); }

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* BatchClassify(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ClassifyStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Health(grpc::CallbackServerContext* context,
                                   const v1::HealthRequest* request,
                                   v1::HealthResponse* response) override;

 private:
  class StreamReactor;
  using Answer = std::function<void(const absl::Status&)>;
  // A BatchClassify item's answer (`model` is nullptr when it failed before
  // reaching one).
  using ItemDone =
      std::function<void(size_t item, absl::StatusOr<Classification>, const ServingModel* model)>;
  // The items of one BatchClassify that go to one model version.
  struct ModelGroup {
    std::shared_ptr<const ServingModel> model;
    std::vector<ClassifyCall> calls;
    std::vector<size_t> items;  // calls[j] is item items[j]
  };
  // Fills each item's request id and tags, answers the items whose image or
  // model is refused (through `item_done`), and groups the rest by version.
  std::map<const ServingModel*, ModelGroup> GroupByModel(grpc::CallbackServerContext* context,
                                                         const v1::BatchClassifyRequest& request,
                                                         v1::BatchClassifyResponse* response,
                                                         const ItemDone& item_done) const;

  // The calls once parsed; `counted` answers them.
  grpc::ServerUnaryReactor* RunClassify(grpc::CallbackServerContext* context,
                                        const v1::ClassifyRequest& request,
                                        v1::ClassifyResponse* response, CountedUnary counted);
  grpc::ServerUnaryReactor* RunBatchClassify(grpc::CallbackServerContext* context,
                                             const v1::BatchClassifyRequest& request,
                                             v1::BatchClassifyResponse* response,
                                             CountedUnary counted);

  // Answers UNAVAILABLE (counted as a refusal) and returns true when the
  // server is not serving.
  bool RefusedAsNotServing(const Answer& answer) const;
  // The version serving `model`/`version`; records the refusal otherwise.
  absl::StatusOr<std::shared_ptr<const ServingModel>> Resolve(const std::string& model,
                                                              int64_t version) const;

  // Constant after construction.
  const ModelRouter* const models_;
  const BatcherOptions batcher_options_;
  ServerMetrics* const metrics_;  // or nullptr if not recorded
  const ServiceLimits limits_;
  const absl::Time started_at_;

  std::atomic<bool> serving_{false};
};

}  // namespace matid

#endif  // MATID_SERVER_API_CLASSIFIER_SERVICE_H_
