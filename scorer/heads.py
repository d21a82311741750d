"""The decoders of the paper (frame features -> 17 emotion scores in [0, 1]) and baselines.

Every head has the same call: `forward(x (B, T, D) zero-padded, lengths (B,)) -> (B, 17)`.

- `MaxPoolFC` ("fc-maxpool-N"): max over the valid frames, then N hidden fully connected
  layers (ReLU, dropout), then a 17-unit layer and a sigmoid. N = 0 is a linear read-out.
- `LSTMHead` ("rnn-N"): an N-layer LSTM over the frames (packed, so padding is never
  seen); the top layer's output at the last valid frame goes to a 17-unit layer + sigmoid.
- `MeanOnly` ("mean"): the per-emotion training mean, whatever the input.
- `LinearFirstFrame` ("linear-first"): ridge regression on the first frame's features,
  clipped to [0, 1].
- `ZeroShotHead` ("clip-zeroshot"): CLIP frame embeddings against one text embedding per
  emotion (see scorer.encoders.clip_text_embeddings); a prior, not a trained model.

Inputs are standardised inside the module (`in_mean`/`in_std` buffers, set with
`fit_input_norm` by the trainer), because the default encoder concatenates a 1024-d CNN
feature with small hand-made motion features of very different scales.

A head trained from votes may also read the zero-shot prior's channels (faces, words),
appended to every frame (`scorer.channels`); its meta then names them under "channels" and
`in_dim` includes them. Heads without that key (older versions, the demo) read frames alone.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from scorer.emotions import N_EMOTIONS


class _Head(nn.Module):
    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))

    def fit_input_norm(self, feats: list[np.ndarray]) -> None:
        """Standardise inputs with the frame-level mean/std of the training features."""
        allf = np.concatenate([np.asarray(f, np.float32).reshape(-1, self.in_dim) for f in feats])
        self.in_mean.copy_(torch.from_numpy(allf.mean(axis=0)))
        self.in_std.copy_(torch.from_numpy(np.maximum(allf.std(axis=0), 1e-6)))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.in_mean) / self.in_std


def _mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


def _mlp(in_dim: int, hidden: int, n_layers: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(n_layers):
        layers += [nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout)]
        d = hidden
    layers.append(nn.Linear(d, N_EMOTIONS))
    return nn.Sequential(*layers)


class MaxPoolFC(_Head):
    def __init__(self, in_dim: int, hidden: int = 256, n_layers: int = 1, dropout: float = 0.2) -> None:
        super().__init__(in_dim)
        self.mlp = _mlp(in_dim, hidden, n_layers, dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self._norm(x)
        mask = _mask(lengths.to(x.device), x.shape[1])
        pooled = x.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        return torch.sigmoid(self.mlp(pooled))


class LSTMHead(_Head):
    def __init__(self, in_dim: int, hidden: int = 256, n_layers: int = 1, dropout: float = 0.2) -> None:
        super().__init__(in_dim)
        self.lstm = nn.LSTM(
            in_dim, hidden, num_layers=max(1, n_layers), batch_first=True,
            dropout=dropout if n_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, N_EMOTIONS)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self._norm(x)
        packed = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        # h_n[-1] is the top layer's output at each sequence's last valid step.
        return torch.sigmoid(self.out(self.drop(h_n[-1])))


class ChannelLinear(_Head):
    """"channels-linear": a linear read-out of the zero-shot prior's channels alone (the last
    N_CHANNELS inputs of every frame, scorer.channels), for pools with few votes: 26 shared
    inputs generalise from a few dozen voted GIFs where 1,000-d frame features cannot."""

    def __init__(self, in_dim: int, dropout: float = 0.0) -> None:
        from scorer.channels import N_CHANNELS

        super().__init__(in_dim)
        self.n_channels = N_CHANNELS
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(N_CHANNELS, N_EMOTIONS)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # The channels are the same on every frame: the first (always valid) one is enough.
        x = self._norm(x)[:, 0, -self.n_channels:]
        return torch.sigmoid(self.out(self.drop(x)))


class PriorResidual(_Head):
    """"prior-residual": the zero-shot prior itself, computed from its channels (the last
    N_CHANNELS inputs, scorer.channels) with scorer.prior's formula, plus a learned linear
    correction of the channels in logit units that starts at zero. Untrained it IS the prior;
    votes move it, and through the 26 shared inputs they move every GIF with a similar face
    or similar words, not only the voted ones."""

    def __init__(self, in_dim: int, dropout: float = 0.0) -> None:
        from scorer.channels import N_CHANNELS
        from scorer.prior import COMBINE_CONSTANTS, face_matrix

        super().__init__(in_dim)
        self.n_channels = N_CHANNELS
        self.register_buffer("face_map", torch.from_numpy(face_matrix().T.astype(np.float32)))
        self.register_buffer("constants", torch.tensor(COMBINE_CONSTANTS, dtype=torch.float32))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(N_CHANNELS, N_EMOTIONS)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def prior(self, ch: torch.Tensor) -> torch.Tensor:
        """(B, 17) the zero-shot prior's mean from (B, 26) raw channels."""
        from scorer.faces import N_CLASSES
        from scorer.prior import prior_mean

        face_ev = (ch[:, :N_CLASSES] @ self.face_map).clamp(0.0, 1.0)
        return prior_mean(ch[:, N_CLASSES + 1:-1], ch[:, -1:], face_ev, ch[:, N_CLASSES:N_CLASSES + 1],
                          tuple(self.constants.unbind()))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # The channels are the same on every frame: the first (always valid) one is enough.
        raw = x[:, 0, -self.n_channels:]
        z = self._norm(x)[:, 0, -self.n_channels:]
        return torch.sigmoid(torch.logit(self.prior(raw), eps=1e-4) + self.out(self.drop(z)))


class MeanOnly(nn.Module):
    """Baseline: predicts the training mean of each emotion for every GIF."""

    def __init__(self, in_dim: int = 0) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.register_buffer("means", torch.full((N_EMOTIONS,), 0.5))

    def fit(self, y: np.ndarray) -> MeanOnly:
        self.means.copy_(torch.from_numpy(np.asarray(y, np.float32).reshape(-1, N_EMOTIONS).mean(axis=0)))
        return self

    def predict(self, n: int) -> np.ndarray:
        return np.tile(self.means.cpu().numpy(), (n, 1)).astype(np.float32)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.means[None, :].expand(x.shape[0], -1)


class LinearFirstFrame(nn.Module):
    """Baseline: ridge regression on the first frame's features, clipped to [0, 1]."""

    def __init__(self, in_dim: int, alpha: float = 1.0) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.alpha = alpha
        self.register_buffer("weight", torch.zeros(in_dim, N_EMOTIONS))
        self.register_buffer("bias", torch.full((N_EMOTIONS,), 0.5))
        self.register_buffer("x_mean", torch.zeros(in_dim))
        self.register_buffer("x_std", torch.ones(in_dim))

    def fit(self, feats: list[np.ndarray], y: np.ndarray) -> LinearFirstFrame:
        x = np.stack([np.asarray(f, np.float64)[0] for f in feats])
        y = np.asarray(y, np.float64).reshape(-1, N_EMOTIONS)
        mu, sd = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
        z = (x - mu) / sd
        ym = y.mean(axis=0)
        # Ridge in closed form on standardised features (the bias is not penalised).
        a = z.T @ z + self.alpha * np.eye(z.shape[1])
        w = np.linalg.solve(a, z.T @ (y - ym))
        self.weight.copy_(torch.from_numpy(w.astype(np.float32)))
        self.bias.copy_(torch.from_numpy(ym.astype(np.float32)))
        self.x_mean.copy_(torch.from_numpy(mu.astype(np.float32)))
        self.x_std.copy_(torch.from_numpy(sd.astype(np.float32)))
        return self

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        z = (x[:, 0, :] - self.x_mean) / self.x_std
        return (z @ self.weight + self.bias).clamp(0.0, 1.0)

    def predict(self, feats: list[np.ndarray]) -> np.ndarray:
        return predict(self, feats, "cpu")


class ZeroShotHead(nn.Module):
    """Mean over frames of cos(frame, emotion prompt), centred per GIF and squashed to (0, 1)."""

    def __init__(self, in_dim: int, scale: float = 50.0) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.register_buffer("text", torch.zeros(N_EMOTIONS, in_dim))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def set_text(self, text: np.ndarray) -> ZeroShotHead:
        self.text.copy_(torch.from_numpy(np.asarray(text, np.float32)))
        return self

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        sims = x @ self.text.T  # (B, T, 17)
        mask = _mask(lengths.to(x.device), x.shape[1]).float()[..., None]
        mean = (sims * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.sigmoid((mean - mean.mean(dim=1, keepdim=True)) * self.scale)


_KIND = re.compile(r"^(fc-maxpool|rnn)-(\d+)$")


def build_head(kind: str, in_dim: int, **cfg: Any) -> nn.Module:
    """'fc-maxpool-N' / 'rnn-N' (N layers; cfg: hidden, dropout), 'mean', 'linear-first'
    (cfg: alpha) or 'clip-zeroshot' (cfg: scale)."""
    m = _KIND.match(kind)
    if m:
        cls = MaxPoolFC if m.group(1) == "fc-maxpool" else LSTMHead
        return cls(in_dim, hidden=int(cfg.get("hidden", 256)), n_layers=int(m.group(2)),
                   dropout=float(cfg.get("dropout", 0.2)))
    if kind == "prior-residual":
        return PriorResidual(in_dim, dropout=float(cfg.get("dropout", 0.0)))
    if kind == "channels-linear":
        return ChannelLinear(in_dim, dropout=float(cfg.get("dropout", 0.0)))
    if kind == "mean":
        return MeanOnly(in_dim)
    if kind == "linear-first":
        return LinearFirstFrame(in_dim, alpha=float(cfg.get("alpha", 1.0)))
    if kind == "clip-zeroshot":
        return ZeroShotHead(in_dim, scale=float(cfg.get("scale", 50.0)))
    raise ValueError(f"unknown head kind {kind!r}; expected fc-maxpool-N, rnn-N, prior-residual, channels-linear, "
                     "mean, linear-first or clip-zeroshot")


REQUIRED_META = ("kind", "in_dim", "cfg", "encoder_id", "sampling")


def head_meta(*, kind: str, in_dim: int, cfg: dict, encoder_id: str, sampling: str,
              channels: str | None) -> dict:
    """What a trained head's file says about the inputs it was trained on, so scoring feeds
    it the same (encoder, frame sampling, the prior's channels); `moodgif train` and the
    retrain both write it."""
    return {"kind": kind, "in_dim": in_dim, "cfg": cfg, "encoder_id": encoder_id,
            "sampling": sampling, **({"channels": channels} if channels else {})}


def save_head(path: str | Path, module: nn.Module, meta: dict) -> Path:
    """Write {state_dict, meta} atomically (a reader never sees half a file)."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"head meta lacks {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"state_dict": state, "meta": dict(meta)}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_head(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    meta = blob["meta"]
    module = build_head(meta["kind"], int(meta["in_dim"]), **dict(meta.get("cfg") or {}))
    module.load_state_dict(blob["state_dict"])
    return module.to(device).eval(), meta


def pad_batch(feats: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(f) for f in feats], dtype=torch.long)
    d = feats[0].shape[1]
    x = torch.zeros(len(feats), int(lengths.max()), d)
    for i, f in enumerate(feats):
        x[i, : len(f)] = torch.from_numpy(np.asarray(f, np.float32))
    return x, lengths


@torch.inference_mode()
def predict(module: nn.Module, feats: list[np.ndarray], device: str | torch.device = "cpu",
            batch_size: int = 256) -> np.ndarray:
    """(N, 17) float32 scores for N GIFs' (T_i, D) features, in input order."""
    if not feats:
        return np.zeros((0, N_EMOTIONS), np.float32)
    module = module.to(device).eval()
    # Similar lengths together keep padding small.
    order = np.argsort([len(f) for f in feats], kind="stable")
    out = np.zeros((len(feats), N_EMOTIONS), np.float32)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        x, lengths = pad_batch([feats[i] for i in idx])
        out[idx] = module(x.to(device), lengths.to(device)).float().cpu().numpy()
    return out
