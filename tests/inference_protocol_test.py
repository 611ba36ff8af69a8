#!/usr/bin/python3
"""The Open Inference Protocol (inference.GRPCInferenceService) against the
real matid-server and LibTorch, with a Python client generated from our
proto/inference/grpc_service.proto (python3-grpcio, loopback only).

Covers every RPC and every input encoding (BYTES typed and raw with length
prefixes, UINT8 pixels typed and raw, FP32 preprocessed tensors), Triton's
classification extension, versions, statistics, the repository RPCs, bad
inputs (each refused with the code and message matid.v1 gives), a full
queue, metrics by RPC, and server reflection listing the service (what
grpcurl does; grpcurl is not packaged in Debian 12).
"""
import os
import shutil
import struct
import sys
import tempfile
import time
import unittest
from typing import Any, Callable

BUILD_DIR = os.environ.get("MATID_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build"))
TEST_MODEL = os.environ.get("MATID_TEST_MODEL", os.path.join(BUILD_DIR, "test_model"))
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

import cv2  # noqa: E402
import grpc  # noqa: E402
import numpy as np  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402
import reflection_pb2  # noqa: E402  (grpc.reflection.v1alpha, generated from proto/)
import reflection_pb2_grpc  # noqa: E402
from inference import grpc_service_pb2 as pb  # noqa: E402
from inference import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
from matid.v1 import matid_pb2, matid_pb2_grpc  # noqa: E402
from model_export import repository  # noqa: E402
from tests.edge_harness import Process, rss_kib, scrape, wait_for  # noqa: E402

MODEL = "parts"
MEAN, STD = 0.286, 0.353  # the test model's normalisation (metadata.json)


def gray(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)


def png(pixels: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", pixels)
    assert ok
    return data.tobytes()


def length_prefixed(elements: list) -> bytes:
    """Triton's raw BYTES: each element after its 4-byte little-endian length."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def split_length_prefixed(raw: bytes) -> list:
    out, at = [], 0
    while at < len(raw):
        (length,) = struct.unpack_from("<I", raw, at)
        out.append(raw[at + 4:at + 4 + length])
        at += 4 + length
    return out


def bytes_request(images: list, raw: bool = False, shape: list = None,
                  **kwargs: str) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="IMAGE", datatype="BYTES", shape=shape or [len(images)])
    request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor], **kwargs)
    if raw:
        request.raw_input_contents.append(length_prefixed(images))
    else:
        tensor = request.inputs[0]
        tensor.contents.bytes_contents.extend(images)
    return request


def probabilities(response: pb.ModelInferResponse, output: int = 0) -> np.ndarray:
    tensor = response.outputs[output]
    assert tensor.datatype == "FP32", tensor
    return np.frombuffer(response.raw_output_contents[output], "<f4").reshape(list(tensor.shape))


class InferenceProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if not os.path.isdir(TEST_MODEL):
            raise unittest.SkipTest("the test model is not built")
        cls.tmp = tempfile.mkdtemp(prefix="matid-oip-")
        cls.repo = os.path.join(cls.tmp, "repo")
        repository.publish(TEST_MODEL, cls.repo, MODEL)
        repository.publish(TEST_MODEL, cls.repo, MODEL)
        with open(os.path.join(cls.repo, MODEL, "version_policy.json"), "w") as f:
            f.write('{"policy": "specific", "versions": [1, 2]}')
        cls.server = Process([os.path.join(BUILD_DIR, "bin", "matid-server"),
                              f"--model_repository={cls.repo}", "--host=127.0.0.1", "--port=0",
                              "--metrics_port=0", "--threads=1", "--max_batch_items=8",
                              "--lame_duck_ms=0"],
                             r"serving grpc_port=(\d+) metrics_port=(\d+)",
                             os.path.join(cls.tmp, "server.log"))
        cls.port, cls.metrics_port = int(cls.server.match.group(1)), int(cls.server.match.group(2))
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{cls.port}")
        cls.stub = pb_grpc.GRPCInferenceServiceStub(cls.channel)
        cls.matid = matid_pb2_grpc.ClassifierStub(cls.channel)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.channel.close()
        code = cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert code == 0, f"matid-server exited with {code}"

    def refused(self, call: Callable, request: Any) -> grpc.RpcError:
        with self.assertRaises(grpc.RpcError) as caught:
            call(request, timeout=30)
        return caught.exception

    def matid_scores(self, image: matid_pb2.Image, version: int = 0) -> np.ndarray:
        response = self.matid.Classify(matid_pb2.ClassifyRequest(
            image=image, top_k=10, model=MODEL, model_version=version), timeout=30)
        scores = np.zeros(10, np.float32)
        for p in response.predictions:
            scores[p.index] = p.score
        return scores

    # --- health and metadata -------------------------------------------------

    def test_server_is_live_and_ready_and_lists_its_extensions(self) -> None:
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)
        metadata = self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
        self.assertEqual(metadata.name, "matid")
        self.assertRegex(metadata.version, r"^\d+\.\d+\.\d+$")
        self.assertEqual(sorted(metadata.extensions),
                         ["classification", "model_configuration", "model_repository",
                          "statistics"])

    def test_model_ready_by_name_and_version(self) -> None:
        ready = lambda name, version="": self.stub.ModelReady(  # noqa: E731
            pb.ModelReadyRequest(name=name, version=version), timeout=10).ready
        self.assertTrue(ready(MODEL))
        self.assertTrue(ready(MODEL, "1"))
        self.assertTrue(ready(MODEL, "2"))
        self.assertFalse(ready(MODEL, "7"))
        self.assertFalse(ready(MODEL, "one"))
        self.assertFalse(ready("no-such-model"))

    def test_model_metadata_and_config_describe_the_tensors(self) -> None:
        metadata = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
        self.assertEqual(metadata.name, MODEL)
        self.assertEqual(list(metadata.versions), ["1", "2"])
        self.assertEqual(metadata.platform, "pytorch_libtorch")
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in metadata.inputs],
                         [("IMAGE", "BYTES", [-1, 1])])
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in metadata.outputs],
                         [("PROBABILITIES", "FP32", [-1, 10])])
        one = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL, version="1"), timeout=10)
        self.assertEqual(list(one.versions), ["1"])

        config = self.stub.ModelConfig(pb.ModelConfigRequest(name=MODEL), timeout=10).config
        self.assertEqual((config.name, config.platform, config.max_batch_size),
                         (MODEL, "pytorch_libtorch", 8))
        self.assertEqual([(i.name, i.data_type, list(i.dims)) for i in config.input],
                         [("IMAGE", pb.TYPE_STRING, [1])])
        self.assertEqual([(o.name, o.data_type, list(o.dims)) for o in config.output],
                         [("PROBABILITIES", pb.TYPE_FP32, [10])])
        for call, request in ((self.stub.ModelMetadata, pb.ModelMetadataRequest(name="nope")),
                              (self.stub.ModelConfig, pb.ModelConfigRequest(name="nope"))):
            error = self.refused(call, request)
            self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND)
            self.assertIn("'nope' is not served; models: parts", error.details())

    # --- inputs ----------------------------------------------------------------

    def test_bytes_typed_and_raw_give_matid_v1_scores(self) -> None:
        images = [gray(i) for i in range(3)]
        encoded = [png(i) for i in images]
        typed = self.stub.ModelInfer(bytes_request(encoded, id="req-7"), timeout=30)
        self.assertEqual((typed.model_name, typed.model_version, typed.id), (MODEL, "2", "req-7"))
        self.assertEqual([(o.name, o.datatype, list(o.shape)) for o in typed.outputs],
                         [("PROBABILITIES", "FP32", [3, 10])])
        self.assertEqual(len(typed.outputs[0].contents.fp32_contents), 0)  # raw by default
        scores = probabilities(typed)
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-4)
        for i, image in enumerate(encoded):
            # Batches of other sizes may round differently in the last bits.
            np.testing.assert_allclose(scores[i], self.matid_scores(matid_pb2.Image(encoded=image)),
                                       atol=1e-5)
        raw = self.stub.ModelInfer(bytes_request(encoded, raw=True, shape=[3, 1]), timeout=30)
        np.testing.assert_allclose(probabilities(raw), scores, atol=1e-6)

    def test_uint8_pixels_typed_and_raw(self) -> None:
        images = np.stack([gray(10), gray(11)])[..., np.newaxis]  # [2, 28, 28, 1]
        tensor = pb.ModelInferRequest.InferInputTensor(name="IMAGE", datatype="UINT8",
                                                       shape=list(images.shape))
        raw_request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor],
                                           raw_input_contents=[images.tobytes()])
        raw = probabilities(self.stub.ModelInfer(raw_request, timeout=30))
        typed_request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor])
        typed_request.inputs[0].contents.uint_contents.extend(images.flatten().tolist())
        typed = probabilities(self.stub.ModelInfer(typed_request, timeout=30))
        np.testing.assert_allclose(raw, typed, atol=1e-6)
        for i in range(2):
            pixels = matid_pb2.RawImage(width=28, height=28, format=matid_pb2.PIXEL_FORMAT_GRAY8,
                                        pixels=images[i].tobytes())
            np.testing.assert_allclose(raw[i], self.matid_scores(matid_pb2.Image(raw=pixels)),
                                       atol=1e-5)
        # Colour pixels (RGB) are converted to the model's gray input.
        rgb = np.repeat(images[:1], 3, axis=3)
        tensor = pb.ModelInferRequest.InferInputTensor(name="IMAGE", datatype="UINT8",
                                                       shape=list(rgb.shape))
        colour = self.stub.ModelInfer(pb.ModelInferRequest(
            model_name=MODEL, inputs=[tensor], raw_input_contents=[rgb.tobytes()]), timeout=30)
        np.testing.assert_allclose(probabilities(colour)[0], raw[0], atol=1e-5)

    def test_fp32_preprocessed_tensors_skip_preprocessing(self) -> None:
        images = [gray(20), gray(21)]
        tensors = np.stack([((i.astype(np.float32) / 255.0 - MEAN) / STD)[np.newaxis] for i in images])
        tensor = pb.ModelInferRequest.InferInputTensor(name="IMAGE", datatype="FP32",
                                                       shape=list(tensors.shape))
        raw = probabilities(self.stub.ModelInfer(pb.ModelInferRequest(
            model_name=MODEL, inputs=[tensor],
            raw_input_contents=[tensors.astype("<f4").tobytes()]), timeout=30))
        typed_request = pb.ModelInferRequest(model_name=MODEL, inputs=[tensor])
        typed_request.inputs[0].contents.fp32_contents.extend(tensors.flatten().tolist())
        np.testing.assert_allclose(
            raw, probabilities(self.stub.ModelInfer(typed_request, timeout=30)), atol=1e-6)
        from_png = probabilities(self.stub.ModelInfer(bytes_request([png(i) for i in images]),
                                                      timeout=30))
        np.testing.assert_allclose(raw, from_png, atol=1e-4)

    # --- outputs and versions ------------------------------------------------

    def test_classification_extension_returns_score_index_label(self) -> None:
        request = bytes_request([png(gray(30)), png(gray(31))])
        request.outputs.add(name="PROBABILITIES")
        top = request.outputs.add(name="PROBABILITIES")
        top.parameters["classification"].int64_param = 3
        response = self.stub.ModelInfer(request, timeout=30)
        scores = probabilities(response, 0)
        self.assertEqual((response.outputs[1].datatype, list(response.outputs[1].shape)),
                         ("BYTES", [2, 3]))
        elements = split_length_prefixed(response.raw_output_contents[1])
        self.assertEqual(len(elements), 6)
        labels = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot"]
        for i in range(2):
            best = np.argsort(-scores[i], kind="stable")[:3]
            for j in range(3):
                score, index, label = elements[i * 3 + j].decode().split(":", 2)
                self.assertEqual(int(index), best[j])
                self.assertEqual(label, labels[best[j]])
                self.assertAlmostEqual(float(score), scores[i][best[j]], places=5)

    def test_an_output_repeated_cannot_multiply_the_answer(self) -> None:
        # The attack (issue 26): every requested output is written for every
        # image, so 60,000 copies of one output in a 1 MB request asked for an
        # answer of 8 x 10 floats x 60,000 (19 MB here; 155 MB with 64 images).
        request = bytes_request([png(gray(50))] * 8)
        for _ in range(60_000):
            request.outputs.add(name="PROBABILITIES")
        rss_before = rss_kib(self.server.process.pid)
        error = self.refused(self.stub.ModelInfer, request)
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT, error.details())
        self.assertIn("PROBABILITIES is requested more than once without the classification "
                      "parameter; at most one of each", error.details())
        self.assertLess(rss_kib(self.server.process.pid) - rss_before, 32 * 1024)
        wait_for(lambda: scrape(self.metrics_port).get(
            'matid_refusals_total{reason="duplicate_output"}', 0) >= 1, 10,
            "the refusal to be counted")

    def test_model_version_selects_and_is_reported(self) -> None:
        request = bytes_request([png(gray(40))], model_version="1")
        self.assertEqual(self.stub.ModelInfer(request, timeout=30).model_version, "1")
        error = self.refused(self.stub.ModelInfer, bytes_request([png(gray(40))],
                                                                  model_version="9"))
        self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("no available version 9; available: 1, 2", error.details())
        error = self.refused(self.stub.ModelInfer, bytes_request([png(gray(40))],
                                                                  model_version="v1"))
        self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT)

    # --- bad inputs --------------------------------------------------------------

    def test_bad_inputs_are_refused_with_the_limit_or_the_reason(self) -> None:
        def pixels(datatype: str, shape: list, raw: bytes) -> pb.ModelInferRequest:
            tensor = pb.ModelInferRequest.InferInputTensor(name="IMAGE", datatype=datatype,
                                                           shape=shape)
            return pb.ModelInferRequest(model_name=MODEL, inputs=[tensor], raw_input_contents=[raw])

        typed_300 = pixels("UINT8", [1, 1, 1, 1], b"")
        del typed_300.raw_input_contents[:]
        typed_300.inputs[0].contents.uint_contents.append(300)
        cases = [
            (bytes_request([png(gray(1))] * 9), "9 images; the limit is 8 (--max_batch_items)"),
            (bytes_request([b"not an image"]), "could not read the image size"),
            (bytes_request([png(gray(1))], shape=[2]), "shape [2] but 1 bytes_contents"),
            (bytes_request([png(gray(1))], shape=[1, 2]), "it must be [N] or [N,1]"),
            (pb.ModelInferRequest(model_name=MODEL,
                                  inputs=[pb.ModelInferRequest.InferInputTensor(
                                      name="IMAGE", datatype="BYTES", shape=[1])],
                                  raw_input_contents=[struct.pack("<I", 1000) + b"abc"]),
             "claims 1000 bytes; 3 are left"),
            (pixels("FP32", [1, 3, 28, 28], bytes(4 * 3 * 28 * 28)),
             "this model takes preprocessed tensors of [N,1,28,28]"),
            (pixels("FP32", [1, 1, 28, 28], bytes(16)), "(784 floats) but 4 floats"),
            (pixels("UINT8", [1, 28, 28, 2], bytes(28 * 28 * 2)), "C 1 (gray) or 3 (RGB)"),
            (pixels("UINT8", [1, 28, 28, 1], bytes(10)), "(784 bytes) but 10 bytes"),
            (typed_300, "is 300; pixels are 0..255"),
            (pixels("INT32", [1, 4], bytes(16)), 'datatype "INT32"; accepted: BYTES'),
            (pixels("UINT8", [0, 28, 28, 1], b""), "the first dimension is the number of images"),
            (pb.ModelInferRequest(model_name=MODEL), "exactly one input tensor"),
        ]
        unknown_output = bytes_request([png(gray(1))])
        unknown_output.outputs.add(name="LOGITS")
        cases.append((unknown_output, 'unknown output "LOGITS"; the model has PROBABILITIES'))
        for request, message in cases:
            with self.subTest(message=message):
                error = self.refused(self.stub.ModelInfer, request)
                self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT, error.details())
                self.assertIn(message, error.details())
        # The same image refusal as matid.v1 gives, word for word.
        v1 = self.refused(self.matid.Classify, matid_pb2.ClassifyRequest(
            image=matid_pb2.Image(encoded=b"not an image")))
        oip = self.refused(self.stub.ModelInfer, bytes_request([b"not an image"]))
        self.assertEqual((oip.code(), oip.details()), (v1.code(), v1.details()))
        unknown_model = bytes_request([png(gray(1))])
        unknown_model.model_name = "nope"
        self.assertEqual(self.refused(self.stub.ModelInfer, unknown_model).code(),
                         grpc.StatusCode.NOT_FOUND)
        # The server is still there and answering.
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)

    # --- streaming ----------------------------------------------------------------

    def test_stream_answers_in_order_and_reports_errors_in_band(self) -> None:
        requests = [bytes_request([png(gray(50 + i))], id=f"s{i}") for i in range(6)]
        requests[3] = bytes_request([b"junk"], id="s3")
        answers = list(self.stub.ModelStreamInfer(iter(requests), timeout=30))
        self.assertEqual([a.infer_response.id for a in answers], [f"s{i}" for i in range(6)])
        self.assertEqual([a.error_message == "" for a in answers], [True] * 3 + [False] + [True] * 2)
        self.assertTrue(answers[3].error_message.startswith("INVALID_ARGUMENT: "),
                        answers[3].error_message)
        np.testing.assert_allclose(
            probabilities(answers[0].infer_response),
            probabilities(self.stub.ModelInfer(requests[0], timeout=30)), atol=1e-5)

    # --- statistics, repository, metrics ---------------------------------------

    def test_statistics_count_every_image_and_batch(self) -> None:
        def stats() -> pb.ModelStatistics:
            response = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL, version="2"),
                                                 timeout=10)
            self.assertEqual([(s.name, s.version) for s in response.model_stats], [(MODEL, "2")])
            return response.model_stats[0]

        before = stats()
        self.stub.ModelInfer(bytes_request([png(gray(60 + i)) for i in range(5)]), timeout=30)
        self.refused(self.stub.ModelInfer, bytes_request([b"junk"]))
        after = stats()
        self.assertEqual(after.inference_count - before.inference_count, 5)
        delta = lambda name: (getattr(after.inference_stats, name).count  # noqa: E731
                              - getattr(before.inference_stats, name).count)
        self.assertEqual({name: delta(name) for name in
                          ("success", "fail", "queue", "compute_input", "compute_infer",
                           "compute_output")},
                         {"success": 5, "fail": 1, "queue": 5, "compute_input": 5,
                          "compute_infer": 5, "compute_output": 5})
        self.assertGreater(after.inference_stats.success.ns, before.inference_stats.success.ns)
        self.assertGreater(after.execution_count, before.execution_count)
        self.assertGreater(after.last_inference, 0)
        batched = sum(b.batch_size * b.compute_infer.count for b in after.batch_stats)
        self.assertEqual(batched, after.inference_count)
        every = self.stub.ModelStatistics(pb.ModelStatisticsRequest(), timeout=10)
        self.assertEqual(sorted(s.version for s in every.model_stats), ["1", "2"])
        error = self.refused(self.stub.ModelStatistics, pb.ModelStatisticsRequest(name="nope"))
        self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND)

    def test_repository_index_load_and_unload(self) -> None:
        def index(ready: bool = False) -> list:
            response = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=ready), timeout=10)
            return [(m.name, m.version, m.state) for m in response.models]

        self.assertEqual(index(ready=True), [(MODEL, "1", "READY"), (MODEL, "2", "READY")])
        error = self.refused(self.stub.RepositoryModelUnload,
                             pb.RepositoryModelUnloadRequest(model_name=MODEL))
        self.assertEqual(error.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn('parameter "version"', error.details())

        unload = pb.RepositoryModelUnloadRequest(model_name=MODEL)
        unload.parameters["version"].int64_param = 1
        self.stub.RepositoryModelUnload(unload, timeout=60)
        wait_for(lambda: index(ready=True) == [(MODEL, "2", "READY")], 30, "version 1 to unload")
        self.assertFalse(self.stub.ModelReady(pb.ModelReadyRequest(name=MODEL, version="1"),
                                              timeout=10).ready)

        load = pb.RepositoryModelLoadRequest(model_name=MODEL)
        load.parameters["version"].int64_param = 1
        self.stub.RepositoryModelLoad(load, timeout=60)
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name=MODEL, version="1"),
                                             timeout=10).ready)
        self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=MODEL), timeout=60)
        error = self.refused(self.stub.RepositoryModelLoad,
                             pb.RepositoryModelLoadRequest(model_name="nope"))
        self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND)
        missing = pb.RepositoryModelLoadRequest(model_name=MODEL)
        missing.parameters["version"].int64_param = 5
        error = self.refused(self.stub.RepositoryModelLoad, missing)
        self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(index(ready=True), [(MODEL, "1", "READY"), (MODEL, "2", "READY")])

    def test_metrics_are_labelled_by_rpc(self) -> None:
        self.stub.ModelInfer(bytes_request([png(gray(70))]), timeout=30)
        list(self.stub.ModelStreamInfer(iter([bytes_request([png(gray(71))])]), timeout=30))
        metrics = scrape(self.metrics_port)
        self.assertGreaterEqual(metrics['matid_requests_total{code="OK",rpc="ModelInfer"}'], 1)
        self.assertGreaterEqual(metrics['matid_requests_total{code="OK",rpc="ModelStreamInfer"}'], 1)
        self.assertGreaterEqual(
            metrics['matid_request_duration_seconds_count{rpc="ModelInfer"}'], 1)

    def test_reflection_lists_and_describes_the_service(self) -> None:
        stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="inference.GRPCInferenceService")]
        listed, described = list(stub.ServerReflectionInfo(iter(requests), timeout=10))
        services = [s.name for s in listed.list_services_response.service]
        self.assertIn("inference.GRPCInferenceService", services)
        self.assertIn("matid.v1.Classifier", services)
        methods = set()
        for blob in described.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
            for service in proto.service:
                if service.name == "GRPCInferenceService":
                    methods.update(m.name for m in service.method)
        self.assertEqual(methods, {
            "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
            "ModelInfer", "ModelStreamInfer", "ModelConfig", "ModelStatistics",
            "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"})


class FullQueueTest(unittest.TestCase):
    """A ModelInfer whose images do not fit the queue is refused whole, with
    matid.v1's RESOURCE_EXHAUSTED message."""

    def test_full_queue_is_resource_exhausted(self) -> None:
        tmp = tempfile.mkdtemp(prefix="matid-oip-queue-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        server = Process([os.path.join(BUILD_DIR, "bin", "matid-server"), f"--model_dir={TEST_MODEL}",
                          "--host=127.0.0.1", "--port=0", "--metrics_port=-1", "--threads=1",
                          "--max_queue_size=8", "--max_batch_size=1", "--lame_duck_ms=0"],
                         r"serving grpc_port=(\d+)", os.path.join(tmp, "server.log"))
        self.addCleanup(server.stop)
        channel = grpc.insecure_channel(f"127.0.0.1:{server.match.group(1)}")
        self.addCleanup(channel.close)
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = bytes_request([png(gray(i)) for i in range(8)])
        request.model_name = ""  # --model_dir: the only model
        refused = []
        deadline = time.monotonic() + 60
        for _ in range(20):  # bounded: rounds of 16 concurrent 8-image requests
            calls = [stub.ModelInfer.future(request, timeout=30) for _ in range(16)]
            for call in calls:
                try:
                    call.result()
                except grpc.RpcError as error:
                    refused.append(error)
            if refused or time.monotonic() > deadline:
                break
        self.assertTrue(refused, "no request was refused by a queue of 8")
        for error in refused:
            self.assertEqual(error.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, error.details())
            self.assertRegex(error.details(),
                             r"inference queue is full \(\d+ of 8 waiting, request needs 8\)")


if __name__ == "__main__":
    unittest.main(verbosity=2)
