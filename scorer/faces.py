"""The face channel: facial expressions in a GIF's sampled frames, with no download at run time.

Detection: OpenCV's frontal-face Haar cascade (`opencv-python-headless<5` ships it; Apache-2.0,
cascade under the Intel BSD-like licence). Expression: `@vladmandic/face-api`'s
FaceExpressionNet (MIT), a 112x112 RGB dense-block CNN with 7 classes, re-implemented here in
torch and loaded from the package's own tfjs weight files, which `scripts/setup` fetches from
the npm registry (sha256 checked, licence kept beside them; see `FACE_API_VERSION`).

`frame_expressions(frames)` -> (T, 8) float32: per sampled frame, the largest probability of
each of the 7 classes over the faces found in it, then the number of faces (0 = none; its
probabilities stay 0). The prior (`scorer.prior`) aggregates those rows per class by each
class's own evidence (a high quantile over frames), never by the arg-max: "neutral" wins most
frames even in the most expressive GIF.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FACE_API_VERSION = "1.7.15"
CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
N_CLASSES = len(CLASSES)
FACE_CHANNEL_ID = f"faces:haar+faceapi-expr-{FACE_API_VERSION}"
MANIFEST = "face_expression_model-weights_manifest.json"

DETECT_MAX_SIDE = 240  # frames are shrunk to this for detection: Haar cost grows with pixels
DETECT_SCALE = 1.2  # the cascade's step between scales: fewer steps, cheaper, coarser
MIN_FACE_PX = 20  # at detection scale; smaller faces carry no readable expression
MAX_FACES = 6  # per frame: a crowd's faces beyond the largest six add cost, not signal
MAX_FRAMES = 4  # frames looked at per GIF (evenly spread over the sampled ones): the cost cap
_MEAN_RGB = (122.782, 117.001, 104.298)


def default_model_dir() -> Path:
    """Where scripts/setup puts the face-api weights: inside the environment, not the repo."""
    return Path(sys.prefix) / "share" / "moodgif" / f"face-api-{FACE_API_VERSION}"


def model_dir(configured: str | os.PathLike | None = None) -> Path | None:
    """The folder holding the expression weights, or None when they are not installed."""
    d = Path(configured).expanduser() if configured else default_model_dir()
    return d if (d / MANIFEST).is_file() else None


# ---------------------------------------------------------------------------------------
# weights


def load_tfjs_weights(folder: Path) -> dict[str, np.ndarray]:
    """A tfjs weights manifest + shards -> {name: float32 array}, uint8 quantisation undone."""
    groups = json.loads((folder / MANIFEST).read_text())
    out: dict[str, np.ndarray] = {}
    for group in groups:
        blob = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            shape = [int(x) for x in w["shape"]]
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q:
                if q["dtype"] != "uint8":
                    raise ValueError(f"{w['name']}: unsupported quantisation {q['dtype']}")
                raw = np.frombuffer(blob, np.uint8, n, offset)
                arr = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
                offset += n
            else:
                arr = np.frombuffer(blob, "<f4", n, offset).astype(np.float32)
                offset += 4 * n
            out[w["name"]] = arr.reshape(shape)
        if offset != len(blob):
            raise ValueError(f"{folder}: weight shards have {len(blob) - offset} extra bytes")
    return out


def _build_net(weights: dict[str, np.ndarray]):  # type: ignore[no-untyped-def]
    import torch
    import torch.nn.functional as F

    def t(name: str, perm: tuple[int, ...] | None = None) -> torch.Tensor:
        a = torch.from_numpy(np.ascontiguousarray(weights[name]))
        return a.permute(*perm).contiguous() if perm else a

    def pad_same(x: torch.Tensor, stride: int) -> torch.Tensor:
        # TF 'same' with a 3x3 kernel: stride 1 pads 1 on each side; stride 2 on an even
        # size pads 0 before and 1 after.
        return F.pad(x, (1, 1, 1, 1)) if stride == 1 else F.pad(x, (0, 1, 0, 1))

    blocks = []
    for b in range(4):
        convs = []
        for c in range(4):
            p = f"dense{b}/conv{c}"
            if b == 0 and c == 0:
                convs.append(("conv", t(f"{p}/filters", (3, 2, 0, 1)), None, t(f"{p}/bias")))
            else:
                convs.append(("sep", t(f"{p}/depthwise_filter", (2, 3, 0, 1)),
                              t(f"{p}/pointwise_filter", (3, 2, 0, 1)), t(f"{p}/bias")))
        blocks.append(convs)
    fc_w, fc_b = t("fc/weights").T.contiguous(), t("fc/bias")

    def conv(x: torch.Tensor, spec: tuple, stride: int) -> torch.Tensor:
        kind, a, pw, bias = spec
        x = pad_same(x, stride)
        if kind == "conv":
            return F.conv2d(x, a, bias, stride=stride)
        x = F.conv2d(x, a, None, stride=stride, groups=a.shape[0])
        return F.conv2d(x, pw, bias)

    def forward(x: torch.Tensor) -> torch.Tensor:  # (N, 3, 112, 112) normalised -> (N, 7)
        for convs in blocks:
            out1 = F.relu(conv(x, convs[0], 2))
            out2 = conv(out1, convs[1], 1)
            out3 = conv(F.relu(out1 + out2), convs[2], 1)
            out4 = conv(F.relu(out1 + out2 + out3), convs[3], 1)
            x = F.relu(out1 + out2 + out3 + out4)
        x = F.avg_pool2d(x, 7, 2)  # 7x7 -> 1x1
        return torch.softmax(F.linear(x.flatten(1), fc_w, fc_b), dim=1)

    return forward


class FaceExpressionModel:
    """Haar face boxes + face-api expressions. Thread-safe lazy load; one per process."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._net = None
        self._cascade = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._net is not None:
                return
            import cv2

            cascade = cv2.CascadeClassifier(
                str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
            if cascade.empty():
                raise RuntimeError("OpenCV's frontal-face cascade is missing (opencv-python-headless<5)")
            self._cascade = cascade
            self._net = _build_net(load_tfjs_weights(self.folder))

    def detect(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, w, h) in the frame's own pixels, largest first."""
        import cv2

        self._load()
        h, w = rgb.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        gray = cv2.equalizeHist(cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY))
        found = self._cascade.detectMultiScale(  # type: ignore[union-attr]
            gray, scaleFactor=DETECT_SCALE, minNeighbors=5, minSize=(MIN_FACE_PX, MIN_FACE_PX))
        boxes = [tuple(round(v / scale) for v in b) for b in (found if len(found) else [])]
        boxes.sort(key=lambda b: -b[2] * b[3])
        return boxes[:MAX_FACES]  # type: ignore[return-value]

    def expressions(self, rgb: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
        """(faces, 7) class probabilities for the boxes of one frame."""
        import cv2
        import torch

        self._load()
        if not boxes:
            return np.zeros((0, N_CLASSES), np.float32)
        h, w = rgb.shape[:2]
        crops = []
        for x, y, bw, bh in boxes:
            # A little margin around Haar's tight box, as face-api's detector boxes have.
            m = int(0.1 * max(bw, bh))
            x0, y0 = max(0, x - m), max(0, y - m)
            x1, y1 = min(w, x + bw + m), min(h, y + bh + m)
            crop = rgb[y0:y1, x0:x1]
            side = max(crop.shape[:2])
            square = np.zeros((side, side, 3), np.uint8)  # face-api pads to a square, centred
            oy, ox = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
            square[oy:oy + crop.shape[0], ox:ox + crop.shape[1]] = crop
            crops.append(cv2.resize(square, (112, 112), interpolation=cv2.INTER_LINEAR))
        x = torch.from_numpy(np.stack(crops).astype(np.float32))
        x = (x - torch.tensor(_MEAN_RGB)) / 255.0
        with _one_thread(), torch.inference_mode():
            return self._net(x.permute(0, 3, 1, 2).contiguous()).numpy().astype(np.float32)  # type: ignore[misc]

    def frame_expressions(self, frames: np.ndarray) -> np.ndarray:
        """(T', 8): per looked-at frame, max class probability over its faces, then face count."""
        n = int(frames.shape[0])
        if n == 0:
            return np.zeros((0, N_CLASSES + 1), np.float32)
        pick = np.unique(np.round(np.linspace(0, n - 1, min(n, MAX_FRAMES))).astype(int))
        rows = np.zeros((len(pick), N_CLASSES + 1), np.float32)
        with _one_thread():
            self._fill(frames, pick, rows)
        return rows

    def _fill(self, frames: np.ndarray, pick: np.ndarray, rows: np.ndarray) -> None:
        for r, i in enumerate(pick):
            frame = np.asarray(frames[i])
            if frame.ndim != 3 or frame.shape[2] < 3 or min(frame.shape[:2]) < MIN_FACE_PX:
                continue
            frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
            boxes = self.detect(frame)
            if boxes:
                probs = self.expressions(frame, boxes)
                rows[r, :N_CLASSES] = probs.max(axis=0)
                rows[r, N_CLASSES] = len(boxes)


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread for a GIF's few 112x112 crops. On torch's pool of threads this
    tiny net cost 10x the CPU on a busy machine (threads spinning: 0.39 vs 0.046 s per GIF);
    switched once per GIF, not per frame (each switch rebuilds the pool)."""
    import torch

    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


_MODELS: dict[str, FaceExpressionModel] = {}


def get_model(folder: Path) -> FaceExpressionModel:
    key = str(folder)
    if key not in _MODELS:
        _MODELS[key] = FaceExpressionModel(folder)
    return _MODELS[key]


__all__ = [
    "CLASSES",
    "FACE_API_VERSION",
    "FACE_CHANNEL_ID",
    "N_CLASSES",
    "FaceExpressionModel",
    "default_model_dir",
    "get_model",
    "load_tfjs_weights",
    "model_dir",
]
