"""Camera-size colour photos of synthetic parts, for tests and benchmarks
(no data set is downloaded): one part per photo, lying anywhere and any way
round on a textured belt, under uneven light.

Six kinds: washer, hex_nut, bolt, bracket, gear, spring. Drawn at a tenth of
the photo's size and enlarged, so making a 4000x3000 photo costs about as
much as encoding it.
"""
import math
import os
from typing import Sequence

import cv2
import numpy as np

KINDS = ("washer", "hex_nut", "bolt", "bracket", "gear", "spring")
# Another domain drawn the same way, for pretraining a backbone that parts
# are then fine-tuned from (bench/transfer_learning.py).
OTHER_KINDS = ("triangle", "star", "ring", "cross", "plate", "rod")


def _polygon(centre: np.ndarray, points: np.ndarray, angle: float, scale: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    rotated = points @ np.array([[c, s], [-s, c]]) * scale
    return (rotated + centre).astype(np.int32)


def draw_part(kind: str, canvas: np.ndarray, rng: np.random.Generator) -> None:
    height, width = canvas.shape[:2]
    size = min(width, height) * rng.uniform(0.18, 0.28)
    centre = np.array([rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height])
    angle = rng.uniform(0, 2 * math.pi)
    shade = rng.uniform(150, 230)
    colour = tuple(float(shade * t) for t in rng.uniform(0.85, 1.0, 3))
    hole = tuple(float(v) for v in canvas[int(centre[1]), int(centre[0])])
    at = tuple(int(v) for v in centre)
    if kind == "washer":
        cv2.circle(canvas, at, int(size), colour, -1, cv2.LINE_AA)
        cv2.circle(canvas, at, int(size * 0.45), hole, -1, cv2.LINE_AA)
    elif kind == "hex_nut":
        hexagon = np.array([[math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)]
                            for k in range(6)])
        cv2.fillPoly(canvas, [_polygon(centre, hexagon, angle, size)], colour, cv2.LINE_AA)
        cv2.circle(canvas, at, int(size * 0.4), hole, -1, cv2.LINE_AA)
    elif kind == "bolt":
        shaft = np.array([[-1.2, -0.18], [1.2, -0.18], [1.2, 0.18], [-1.2, 0.18]])
        head = np.array([[-1.2, -0.45], [-0.8, -0.45], [-0.8, 0.45], [-1.2, 0.45]])
        cv2.fillPoly(canvas, [_polygon(centre, shaft, angle, size)], colour, cv2.LINE_AA)
        cv2.fillPoly(canvas, [_polygon(centre, head, angle, size)], colour, cv2.LINE_AA)
    elif kind == "bracket":
        shape = np.array([[-1, -1], [1, -1], [1, -0.6], [-0.6, -0.6], [-0.6, 1], [-1, 1]])
        cv2.fillPoly(canvas, [_polygon(centre, shape, angle, size)], colour, cv2.LINE_AA)
    elif kind == "gear":
        teeth = 10
        outline = []
        for k in range(teeth * 2):
            radius = 1.0 if k % 2 == 0 else 0.78
            a = k * math.pi / teeth
            outline.append([radius * math.cos(a), radius * math.sin(a)])
        cv2.fillPoly(canvas, [_polygon(centre, np.array(outline), angle, size)], colour,
                     cv2.LINE_AA)
        cv2.circle(canvas, at, int(size * 0.25), hole, -1, cv2.LINE_AA)
    elif kind == "spring":
        zigzag = np.array([[-1.2 + 0.2 * k, 0.35 if k % 2 else -0.35] for k in range(13)])
        cv2.polylines(canvas, [_polygon(centre, zigzag, angle, size)], False, colour,
                      max(2, int(size * 0.08)), cv2.LINE_AA)
    elif kind == "triangle":
        corners = np.array([[math.cos(a), math.sin(a)] for a in (0, 2 * math.pi / 3,
                                                                  4 * math.pi / 3)])
        cv2.fillPoly(canvas, [_polygon(centre, corners, angle, size)], colour, cv2.LINE_AA)
    elif kind == "star":
        outline = [[(1.0 if k % 2 == 0 else 0.45) * math.cos(k * math.pi / 5),
                    (1.0 if k % 2 == 0 else 0.45) * math.sin(k * math.pi / 5)] for k in range(10)]
        cv2.fillPoly(canvas, [_polygon(centre, np.array(outline), angle, size)], colour,
                     cv2.LINE_AA)
    elif kind == "ring":
        cv2.circle(canvas, at, int(size), colour, max(2, int(size * 0.12)), cv2.LINE_AA)
    elif kind == "cross":
        for bar in (np.array([[-1, -0.2], [1, -0.2], [1, 0.2], [-1, 0.2]]),
                    np.array([[-0.2, -1], [0.2, -1], [0.2, 1], [-0.2, 1]])):
            cv2.fillPoly(canvas, [_polygon(centre, bar, angle, size)], colour, cv2.LINE_AA)
    elif kind == "plate":
        square = np.array([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]])
        cv2.fillPoly(canvas, [_polygon(centre, square, angle, size)], colour, cv2.LINE_AA)
    elif kind == "rod":
        rod = np.array([[-1.3, -0.1], [1.3, -0.1], [1.3, 0.1], [-1.3, 0.1]])
        cv2.fillPoly(canvas, [_polygon(centre, rod, angle, size)], colour, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown part kind {kind!r}")


def part_photo(kind: str, rng: np.random.Generator, width: int = 4000,
               height: int = 3000) -> np.ndarray:
    """One BGR photo of a `kind` part, width x height."""
    small_w, small_h = max(64, width // 10), max(48, height // 10)
    belt = rng.uniform(40, 90)
    canvas = np.full((small_h, small_w, 3), belt, np.float32)
    canvas += rng.normal(0, 6, (small_h, small_w, 1))  # belt texture
    draw_part(kind, canvas, rng)
    # Uneven light: a gradient across the belt.
    ys, xs = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    light = 1 + 0.25 * ((xs / small_w - 0.5) * math.cos(direction) +
                        (ys / small_h - 0.5) * math.sin(direction))
    canvas = np.clip(canvas * light[:, :, None], 0, 255).astype(np.uint8)
    return cv2.resize(canvas, (width, height), interpolation=cv2.INTER_LINEAR)


def write_parts_folder(root: str, kinds: Sequence[str], per_class: int, width: int = 4000,
                       height: int = 3000, seed: int = 0, quality: int = 90) -> None:
    """root/<kind>/<kind>_NNN.jpg for each kind: a folder `prepare` reads."""
    rng = np.random.default_rng(seed)
    for kind in kinds:
        os.makedirs(os.path.join(root, kind), exist_ok=True)
        for i in range(per_class):
            photo = part_photo(kind, rng, width, height)
            path = os.path.join(root, kind, f"{kind}_{i:03d}.jpg")
            if not cv2.imwrite(path, photo, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                raise OSError(f"cannot write {path}")
