#!/usr/bin/python3
"""Writes the seed corpus in fuzz/corpus/: valid and broken images, requests
for each RPC and bridge messages. Deterministic; rerun after changing it and
commit the files. Needs Debian's python3-opencv and the Python stubs of a
build (build/python). Usage: fuzz/make_corpus.py [--build-dir build]
"""
import argparse
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with no pixel data: a bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF))


def gif_1x1() -> bytes:
    return (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
            b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def images(cv2, np) -> dict:
    rng = np.random.default_rng(7)
    gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    color = rng.integers(0, 256, (13, 20, 3), dtype=np.uint8)
    out = {}
    for ext, img in ((".png", gray), (".png", color), (".jpg", color), (".bmp", gray),
                     (".pgm", gray), (".ppm", color), (".tiff", gray), (".webp", color)):
        ok, buf = cv2.imencode(ext, img)
        if ok:
            name = f"{ext[1:]}_{img.shape[1]}x{img.shape[0]}x{1 if img.ndim == 2 else 3}"
            out[name] = buf.tobytes()
    out["png_truncated"] = out["png_8x8x1"][: len(out["png_8x8x1"]) // 2]
    out["jpg_truncated"] = out["jpg_20x13x3"][:200]
    out["png_bomb_50000x50000"] = png_header_only(50000, 50000)
    out["png_zero_width"] = png_header_only(0, 10)
    out["gif_1x1"] = gif_1x1()
    out["not_an_image"] = b"hello, this is text"
    return out


def write(folder: str, name: str, data: bytes) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def preprocess_corpus(folder: str, imgs: dict) -> None:
    # Header: flags (bit0 rgb, bits1-2 resize, bit3 raw, bit4 decode formats
    # without a size check), model width, height.
    for i, (name, data) in enumerate(sorted(imgs.items())):
        flags = (i % 2) | ((i % 3) << 1)
        write(folder, name, bytes([flags, 27, 27]) + data)
        if name.split("_")[0] in ("tiff", "webp", "pgm", "ppm"):
            write(folder, name + "_unchecked", bytes([flags | 16, 27, 27]) + data)
    write(folder, "raw_gray_4x3", bytes([8, 7, 7, 4, 3, 0]) + bytes(range(12)))
    write(folder, "raw_rgb_2x2_into_rgb_letterbox", bytes([8 | 1 | 4, 15, 9, 2, 2, 1]) + bytes(12))
    write(folder, "raw_bgr_size_mismatch", bytes([8, 7, 7, 4, 4, 2]) + bytes(5))
    write(folder, "raw_zero_size", bytes([8, 7, 7, 0, 4, 0]))
    write(folder, "empty_encoded", bytes([0, 7, 7]))


def request_corpus(folder: str, imgs: dict, pb) -> None:
    def image(name=None, raw=None):
        msg = pb.Image()
        if name is not None:
            msg.encoded = imgs[name]
        elif raw is not None:
            w, h, fmt, pixels = raw
            msg.raw.width, msg.raw.height, msg.raw.format, msg.raw.pixels = w, h, fmt, pixels
        return msg

    good = image("png_8x8x1")
    cases = {
        "classify_png": pb.ClassifyRequest(image=good, request_id="r1", tags={"line": "3"}),
        "classify_jpg_top3": pb.ClassifyRequest(image=image("jpg_20x13x3"), top_k=3),
        "classify_top_k_huge": pb.ClassifyRequest(image=good, top_k=2**31 + 5),
        "classify_raw": pb.ClassifyRequest(image=image(raw=(4, 2, pb.PIXEL_FORMAT_RGB8, bytes(24)))),
        "classify_raw_bad_format": pb.ClassifyRequest(image=image(raw=(1, 1, 0, b"x"))),
        "classify_missing_image": pb.ClassifyRequest(request_id="none"),
        "classify_bomb": pb.ClassifyRequest(image=image("png_bomb_50000x50000")),
    }
    for name, request in cases.items():
        write(folder, name, bytes([0]) + request.SerializeToString())
    items = [pb.ClassifyRequest(image=image(n), request_id=n, top_k=k)
             for n, k in (("png_8x8x1", 0), ("jpg_truncated", 2), ("bmp_8x8x1", 10),
                          ("not_an_image", 1), ("png_20x13x3", 4))]
    items.append(pb.ClassifyRequest())
    batch = pb.BatchClassifyRequest(items=items)
    write(folder, "batch_mixed", bytes([1]) + batch.SerializeToString())
    write(folder, "batch_empty", bytes([1]) + pb.BatchClassifyRequest().SerializeToString())
    write(folder, "stream_mixed", bytes([2]) + batch.SerializeToString())
    many = pb.BatchClassifyRequest(items=[pb.ClassifyRequest(image=good)] * 20)
    write(folder, "stream_20_frames", bytes([2]) + many.SerializeToString())


def infer_request_corpus(folder: str, imgs: dict, pb) -> None:
    """Open Inference Protocol ModelInfer requests (first byte 3)."""
    def tensor(datatype, shape):
        return pb.ModelInferRequest.InferInputTensor(name="IMAGE", datatype=datatype, shape=shape)

    def prefixed(elements):
        return b"".join(struct.pack("<I", len(e)) + e for e in elements)

    typed = pb.ModelInferRequest(id="t", inputs=[tensor("BYTES", [2])])
    typed.inputs[0].contents.bytes_contents.extend([imgs["png_8x8x1"], imgs["jpg_20x13x3"]])
    top = typed.outputs.add(name="PROBABILITIES")
    top.parameters["classification"].int64_param = 3
    cases = {
        "infer_bytes_typed_top3": typed,
        "infer_bytes_raw": pb.ModelInferRequest(
            inputs=[tensor("BYTES", [2, 1])],
            raw_input_contents=[prefixed([imgs["png_8x8x1"], imgs["not_an_image"]])]),
        "infer_bytes_raw_overrun": pb.ModelInferRequest(
            inputs=[tensor("BYTES", [1])], raw_input_contents=[struct.pack("<I", 99) + b"ab"]),
        "infer_uint8_raw": pb.ModelInferRequest(inputs=[tensor("UINT8", [2, 3, 4, 3])],
                                                raw_input_contents=[bytes(72)]),
        "infer_fp32_raw": pb.ModelInferRequest(inputs=[tensor("FP32", [1, 1, 8, 8])],
                                               raw_input_contents=[bytes(256)]),
        "infer_huge_shape": pb.ModelInferRequest(inputs=[tensor("UINT8", [1, 2**40, 2**40, 1])],
                                                 raw_input_contents=[b""]),
        "infer_no_inputs": pb.ModelInferRequest(id="none"),
    }
    for name, request in cases.items():
        write(folder, name, bytes([3]) + request.SerializeToString())


def result_message_corpus(folder: str) -> None:
    good = {
        "message_id": "cam1-b00t-42", "timestamp": "2026-11-25T06:05:04.123Z",
        "camera_id": "cam1", "frame_seq": 42, "model": {"name": "fmnist", "version": "3"},
        "predictions": [{"label": "Bag", "score": 0.9}, {"label": "Shirt", "score": 0.05}],
        "top_label": "Bag", "top_score": 0.9, "needs_inspection": False, "latency_ms": 3.5,
    }
    write(folder, "good", json.dumps(good).encode())
    for field in ("message_id", "frame_seq", "model", "predictions", "needs_inspection"):
        broken = dict(good)
        del broken[field]
        write(folder, f"missing_{field}", json.dumps(broken).encode())
    variants = {
        "score_over_one": dict(good, top_score=1.5),
        "negative_seq": dict(good, frame_seq=-1),
        "empty_camera": dict(good, camera_id=""),
        "string_score": dict(good, predictions=[{"label": "Bag", "score": "high"}]),
        "unicode_ids": dict(good, camera_id="kamera-\u00e9\u4e2d", message_id="m-\u00e9"),
    }
    for name, msg in variants.items():
        write(folder, name, json.dumps(msg).encode())
    event = {
        "message_id": "box-1-parts-promotion-1764140400123", "box_id": "box-1",
        "timestamp": "2026-11-26T07:00:00.123Z", "type": "promotion", "model": "parts",
        "from_version": 3, "to_version": 4, "trigger": "policy", "reason": "612 compared >= 500",
        "figures": {"compared": 612, "agreement": 0.9912},
    }
    write(folder, "event_good", json.dumps(event).encode())
    event_variants = {
        "event_unknown_type": dict(event, type="deploy"),
        "event_zero_version": dict(event, to_version=0),
        "event_float_version": dict(event, from_version=3.5),
        "event_string_figure": dict(event, figures={"compared": "many"}),
        "event_figures_array": dict(event, figures=[1, 2]),
        "event_empty_box": dict(event, box_id=""),
    }
    for name, msg in event_variants.items():
        write(folder, name, json.dumps(msg).encode())
    write(folder, "event_infinite_figure",
          json.dumps(event).replace("0.9912", "1e400").encode())
    write(folder, "not_json", b"{\"message_id\": ")
    write(folder, "array", b"[1, 2, 3]")
    write(folder, "deep_nesting", b"[" * 64 + b"]" * 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.build_dir, "python"))
    import cv2
    import numpy as np
    from inference import grpc_service_pb2
    from matid.v1 import matid_pb2

    imgs = images(cv2, np)
    corpus = os.path.join(HERE, "corpus")
    preprocess_corpus(os.path.join(corpus, "preprocess"), imgs)
    request_corpus(os.path.join(corpus, "request"), imgs, matid_pb2)
    infer_request_corpus(os.path.join(corpus, "request"), imgs, grpc_service_pb2)
    result_message_corpus(os.path.join(corpus, "result_message"))
    print(f"corpus written to {corpus}")


if __name__ == "__main__":
    main()
