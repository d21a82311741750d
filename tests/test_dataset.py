"""Training data assembly: the 80/10/10 split by GIF, short GIFs, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from _train_data import sha, synthetic

from training.augment import KINDS, augment_frames, scheme_name
from training.dataset import assemble, split_of, training_set


def test_split_is_80_10_10_by_gif_and_fixed_by_seed() -> None:
    shas = [sha(i) for i in range(200)]
    a = split_of(shas, seed=3)
    assert [sum(v == p for v in a.values()) for p in ("train", "dev", "test")] == [160, 20, 20]
    assert a == split_of(list(reversed(shas)), seed=3)  # order of input does not matter
    b = split_of(shas, seed=4)
    assert a != b
    tiny = split_of(shas[:5], seed=0)
    assert sorted(tiny.values()).count("dev") >= 1 and sorted(tiny.values()).count("test") >= 1


def test_assemble_filters_short_and_missing_and_keeps_gifs_whole() -> None:
    feats, targets, frames = synthetic(40, short=5)
    targets[sha(999)] = np.zeros(17, np.float32)  # a GIF with no cached features
    splits = assemble(targets, feats.get, seed=0, n_frames=frames)
    assert splits.info["too_short"] == 5 and splits.info["no_features"] == 1
    assert len(splits.train) + len(splits.dev) + len(splits.test) == 35
    parts = [set(splits.train.shas), set(splits.dev.shas), set(splits.test.shas)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    i = splits.train.keys.index(splits.train.shas[0])
    np.testing.assert_array_equal(splits.train.targets[i], targets[splits.train.shas[0]])
    x, lengths = splits.train.padded()
    assert x.shape[0] == len(splits.train) and x.shape[2] == 8 and lengths.max() == x.shape[1]


def test_augmented_copies_only_in_train() -> None:
    feats, targets, frames = synthetic(30)

    def aug(s: str) -> list[tuple[str, np.ndarray]]:
        return [(scheme_name("sparse", k), feats[s] + 1) for k in ("flip", "noise")]

    plain = assemble(targets, feats.get, seed=1, n_frames=frames)
    splits = assemble(targets, feats.get, seed=1, n_frames=frames, augmented=aug, set_name="sparse-aug")
    assert len(splits.train) == 3 * len(plain.train)
    assert splits.dev.keys == plain.dev.keys and splits.test.keys == plain.test.keys
    copies = [k for k in splits.train.keys if "#" in k]
    assert len(copies) == 2 * len(plain.train)
    k = splits.train.keys.index(copies[0])
    np.testing.assert_array_equal(splits.train.targets[k], targets[splits.train.shas[k]])


def test_training_sets_by_name() -> None:
    assert training_set("dense-small").sampling == "dense"
    assert training_set("sparse-aug").augment
    with pytest.raises(ValueError, match="unknown training set"):
        training_set("huge")


def test_augmentations_are_deterministic_and_change_pixels() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(3, 32, 40, 3), dtype=np.uint8)
    for kind in KINDS:
        a = augment_frames(frames, kind, seed=0, sha="x")
        assert a.shape == frames.shape and a.dtype == np.uint8
        assert not np.array_equal(a, frames)
        np.testing.assert_array_equal(a, augment_frames(frames, kind, seed=0, sha="x"))
    np.testing.assert_array_equal(augment_frames(frames, "flip")[:, :, 0], frames[:, :, -1])
    noisy = augment_frames(frames, "noise", seed=0, sha="x")
    changed = (noisy != frames).any(axis=-1).mean()
    assert 0.005 < changed < 0.06
    with pytest.raises(ValueError):
        scheme_name("sparse", "rotate")


def test_augmenter_encodes_real_gifs_once_and_caches(sqlite_settings, sqlite_engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from scorer.demo_pool import make_demo_pool
    from scorer.features import feature_path
    from scorer.pool import ingest, pool_gifs
    from training.augment import Augmenter

    manifest = make_demo_pool(tmp_path / "demo", 2, seed=5, workers=1)
    ingest(sqlite_settings, sqlite_engine, "demo", manifest)
    shas = pool_gifs(sqlite_engine, "demo")
    # "motion" needs no network weights: cheap, but a real decode -> augment -> encode.
    aug = Augmenter(sqlite_settings, encoder_id="motion", sampling="sparse", device="cpu")
    first = aug(shas[0])
    assert [scheme for scheme, _ in first] == [scheme_name("sparse", k) for k in KINDS]
    assert aug.encoded == 4 and aug.cached == 0
    assert feature_path(sqlite_settings, shas[0], "motion", "sparse+aug-flip").is_file()
    again = Augmenter(sqlite_settings, encoder_id="motion", sampling="sparse", device="cpu")
    second = again(shas[0])
    assert again.encoded == 0 and again.cached == 4
    for (_, a), (_, b) in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # The copies differ from each other (each transform changes the motion/colour features).
    assert not np.array_equal(first[0][1], first[3][1])
    missing = Augmenter(sqlite_settings, encoder_id="motion", sampling="sparse", device="cpu")
    assert missing("0" * 64) == [] and len(missing.failed) == 1
