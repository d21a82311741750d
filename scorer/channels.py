"""The zero-shot prior's channels as inputs of the heads trained from votes.

`moodgif score` (with the prior) stores, per GIF and sampling scheme, one (1, 26) row in
the feature cache under `CHANNELS_ID`:

    [0:7]   face-api's 7 expression classes, each by its own evidence (scorer.prior.face_classes)
    [7]     the face channel's confidence (0 = no face found, or the channel was off)
    [8:25]  the word channel's 17-axis evidence (the GIF's words through the intent model)
    [25]    the word channel's confidence (0 = no readable words)

A head trained from votes (training/retrain.py) whose meta names `channels` gets this row
appended to every frame's CNN features, so what people said about some GIFs reaches the GIFs
that look, or are titled, alike: the channels are shared across GIFs in a way the 1024-d frame
features of a few hundred voted GIFs are not. A GIF scored without the prior reads as zeros
(no face, no words), the same at training and at scoring time. Heads without `channels` in
their meta (older versions, the demo) read frame features alone, as before.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from scorer.emotions import N_EMOTIONS
from scorer.faces import FACE_API_VERSION, N_CLASSES
from scorer.features import has_features, load_features, save_features
from scorer.settings import Settings

CHANNELS_ID = f"channels-v1-faceapi-{FACE_API_VERSION}"
N_CHANNELS = N_CLASSES + 1 + N_EMOTIONS + 1


def channel_vector(face_classes: np.ndarray | None, face_conf: float,
                   word_evidence: np.ndarray | None, word_conf: float) -> np.ndarray:
    """The (26,) float32 row above; None / zero confidence parts are zeros."""
    out = np.zeros(N_CHANNELS, np.float32)
    if face_classes is not None and face_conf > 0:
        out[:N_CLASSES] = np.clip(np.asarray(face_classes, np.float64)[:N_CLASSES], 0.0, 1.0)
        out[N_CLASSES] = float(face_conf)
    if word_evidence is not None and word_conf > 0:
        out[N_CLASSES + 1:N_CLASSES + 1 + N_EMOTIONS] = np.clip(
            np.asarray(word_evidence, np.float64)[:N_EMOTIONS], 0.0, 1.0)
        out[-1] = float(word_conf)
    return np.nan_to_num(out, nan=0.0)


def save_channels(settings: Settings, sha: str, scheme: str, vector: np.ndarray,
                  channels_id: str = CHANNELS_ID) -> None:
    save_features(settings, sha, channels_id, scheme, np.asarray(vector, np.float32).reshape(1, -1))


def load_channels(settings: Settings, sha: str, scheme: str, channels_id: str = CHANNELS_ID
                  ) -> np.ndarray:
    """(26,) float32; zeros (no face, no words) when the GIF has none stored."""
    got = load_features(settings, sha, channels_id, scheme)
    if got is None or got.size != N_CHANNELS:
        return np.zeros(N_CHANNELS, np.float32)
    return got.reshape(N_CHANNELS)


def any_channels(settings: Settings, shas: Iterable[str], scheme: str,
                 channels_id: str = CHANNELS_ID) -> bool:
    """Whether any of `shas` has stored channels: a head trained on GIFs that have none
    would only learn that the inputs are zero."""
    return any(has_features(settings, sha, channels_id, scheme) for sha in shas)


def with_channels(frames: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """(T, D) frame features -> (T, D + 26): the GIF's channels repeated on every frame, so
    every head kind (max-pool, LSTM) reads them without a new input path."""
    frames = np.asarray(frames, np.float32)
    tiled = np.broadcast_to(np.asarray(vector, np.float32), (frames.shape[0], N_CHANNELS))
    return np.concatenate([frames, tiled], axis=1)


def head_features(settings: Settings, sha: str, encoder_id: str, scheme: str,
                  channels_id: str | None) -> np.ndarray | None:
    """What a head reads for one GIF: its cached frame features, with its channels appended
    when the head was trained with them (`channels_id` from the head's meta)."""
    frames = load_features(settings, sha, encoder_id, scheme)
    if frames is None or not channels_id:
        return frames
    return with_channels(frames, load_channels(settings, sha, scheme, channels_id))


def head_channels(meta: dict | None) -> str | None:
    """The channel set a head was trained with (its meta's "channels"), or None."""
    value = (meta or {}).get("channels")
    return str(value) if value else None


__all__ = ["CHANNELS_ID", "N_CHANNELS", "any_channels", "channel_vector", "head_channels",
           "head_features", "load_channels", "save_channels", "with_channels"]
