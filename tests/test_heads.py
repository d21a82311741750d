"""Heads: shapes and ranges, variable lengths (padding never matters), save/load, baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scorer.heads import (
    LinearFirstFrame,
    LSTMHead,
    MaxPoolFC,
    MeanOnly,
    build_head,
    head_meta,
    load_head,
    pad_batch,
    predict,
    save_head,
)


def _feats(seed: int, lengths: list[int], d: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, d)).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("kind", ["fc-maxpool-0", "fc-maxpool-2", "rnn-1", "rnn-2"])
def test_padding_never_changes_a_gifs_scores(kind: str) -> None:
    torch.manual_seed(0)
    head = build_head(kind, 6, hidden=8, dropout=0.3).eval()
    feats = _feats(0, [1, 4, 2])
    together = predict(head, feats, "cpu")
    alone = np.concatenate([predict(head, [f], "cpu") for f in feats])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    assert together.shape == (3, 17) and ((together > 0) & (together < 1)).all()
    # Garbage after a sequence's length is ignored.
    x, lengths = pad_batch(feats)
    x[0, 1:] = 1e3
    with torch.no_grad():
        np.testing.assert_allclose(head(x, lengths).numpy(), together, atol=1e-5)


def test_maxpool_head_pools_with_max_and_lstm_reads_the_last_valid_step() -> None:
    torch.manual_seed(0)
    fc = MaxPoolFC(6, hidden=8, n_layers=1, dropout=0.0).eval()
    f = _feats(1, [5])[0]
    shuffled = f[::-1].copy()  # max over frames does not care about order
    np.testing.assert_allclose(predict(fc, [f], "cpu"), predict(fc, [shuffled], "cpu"), atol=1e-6)
    rnn = LSTMHead(6, hidden=8, n_layers=2, dropout=0.0).eval()
    assert not np.allclose(predict(rnn, [f], "cpu"), predict(rnn, [shuffled], "cpu"))
    with torch.no_grad():
        out, _ = rnn.lstm(rnn._norm(torch.from_numpy(f))[None])
        manual = torch.sigmoid(rnn.out(out[:, -1])).numpy()
    np.testing.assert_allclose(predict(rnn, [f], "cpu"), manual, atol=1e-6)


def test_heads_learn_a_simple_target() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(int(rng.integers(1, 6)), 4)).astype(np.float32) for _ in range(64)]
    y = np.stack([np.full(17, 1.0 / (1.0 + np.exp(-f[:, 0].max()))) for f in feats]).astype(np.float32)
    head = build_head("fc-maxpool-1", 4, hidden=16, dropout=0.0)
    head.fit_input_norm(feats)  # type: ignore[operator]
    x, lengths = pad_batch(feats)
    opt = torch.optim.Adam(head.parameters(), lr=0.02)
    first = None
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(head(x, lengths), torch.from_numpy(y))
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 5


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    head = build_head("rnn-2", 6, hidden=8, dropout=0.1)
    head.fit_input_norm(_feats(3, [3, 3]))  # type: ignore[operator]
    meta = {"kind": "rnn-2", "in_dim": 6, "cfg": {"hidden": 8, "dropout": 0.1},
            "encoder_id": "motion", "sampling": "sparse", "note": "kept"}
    path = save_head(tmp_path / "models" / "h.pt", head, meta)
    loaded, meta2 = load_head(path)
    assert meta2 == meta and isinstance(loaded, LSTMHead)
    feats = _feats(2, [2, 5])
    np.testing.assert_allclose(predict(loaded, feats, "cpu"), predict(head.eval(), feats, "cpu"), atol=1e-7)
    assert [p.name for p in path.parent.iterdir()] == ["h.pt"]  # no temporary left behind
    with pytest.raises(ValueError, match="lacks"):
        save_head(tmp_path / "x.pt", head, {"kind": "rnn-2"})


def test_head_meta_is_what_load_head_needs(tmp_path: Path) -> None:
    head = build_head("fc-maxpool-1", 4, hidden=3)
    plain = head_meta(kind="fc-maxpool-1", in_dim=4, cfg={"hidden": 3}, encoder_id="motion",
                      sampling="sparse", channels=None)
    assert "channels" not in plain  # a head on frames alone names no channel set
    path = save_head(tmp_path / "h.pt", head, {**plain})
    assert load_head(path)[1] == plain
    with_channels = head_meta(kind="fc-maxpool-1", in_dim=4, cfg={}, encoder_id="motion",
                              sampling="sparse", channels="faces7+words17")
    assert with_channels["channels"] == "faces7+words17"


def test_build_head_kinds() -> None:
    assert isinstance(build_head("fc-maxpool-3", 5), MaxPoolFC)
    assert len([m for m in build_head("fc-maxpool-3", 5).mlp if isinstance(m, torch.nn.Linear)]) == 4
    assert build_head("rnn-3", 5).lstm.num_layers == 3  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown head kind"):
        build_head("transformer-2", 5)


def test_baselines(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(size=(20, 17)).astype(np.float32)
    mean = MeanOnly().fit(y)
    np.testing.assert_allclose(mean.predict(3), np.tile(y.mean(0), (3, 1)), atol=1e-6)
    np.testing.assert_allclose(predict(mean, _feats(0, [2, 1]), "cpu"), np.tile(y.mean(0), (2, 1)), atol=1e-6)

    feats = _feats(4, [3] * 40, d=5)
    w = rng.normal(size=(5, 17)) * 0.05
    target = np.stack([f[0] @ w + 0.5 for f in feats])  # depends on the first frame only
    lin = LinearFirstFrame(5, alpha=1e-3).fit(feats, target)
    np.testing.assert_allclose(lin.predict(feats), np.clip(target, 0, 1), atol=1e-3)
    far = [np.full((1, 5), 100.0, np.float32)]
    out = lin.predict(far)
    assert ((out >= 0) & (out <= 1)).all()
    save_head(tmp_path / "lin.pt", lin, {"kind": "linear-first", "in_dim": 5, "cfg": {"alpha": 1e-3},
                                          "encoder_id": "motion", "sampling": "sparse"})
    loaded, _ = load_head(tmp_path / "lin.pt")
    np.testing.assert_allclose(predict(loaded, feats, "cpu"), lin.predict(feats), atol=1e-6)
