"""The ONNX Runtime sentence model gives sentence-transformers' embeddings (within float
tolerance), so the intent parser answers the same without torch in the chat process."""

from __future__ import annotations

import numpy as np
import pytest

from bot import embedder

TEXTS = [
    "happy", "ugh", "so proud of you!!", "I can't believe we shipped it 🎉",
    "the cat knocked my coffee over again, this morning is a disaster",
    "nooooo", "", "grr " * 200,  # past 256 tokens: truncated the same way
]


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):  # type: ignore[no-untyped-def]
    path = embedder.onnx_path(tmp_path_factory.mktemp("home"))
    return embedder.ensure_onnx(path.parent.parent.parent)


@pytest.mark.slow
def test_onnx_embeddings_equal_sentence_transformers(onnx_file) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("sentence_transformers")
    ours = embedder.OnnxMiniLM(onnx_file).encode(TEXTS, normalize_embeddings=True, batch_size=3)
    ref = embedder._torch_model().encode(TEXTS, normalize_embeddings=True, batch_size=3,
                                         show_progress_bar=False)
    assert ours.shape == ref.shape == (len(TEXTS), 384)
    assert ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 2e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # Batching (and so padding) does not change an embedding.
    one = embedder.OnnxMiniLM(onnx_file).encode(TEXTS[3:4])
    assert np.abs(one[0] - ours[3]).max() < 2e-6


@pytest.mark.slow  # the ONNX export of MiniLM (7 s); the intent tests use the embedder in the fast loop
def test_cached_export_is_reused_and_settings_choose_the_runtime(onnx_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    home = onnx_file.parent.parent.parent
    mtime = onnx_file.stat().st_mtime_ns
    assert embedder.ensure_onnx(home) == onnx_file and onnx_file.stat().st_mtime_ns == mtime
    monkeypatch.setenv("MOODGIF_HOME", str(home))
    monkeypatch.setenv("MOODGIF_INTENT_EMBEDDER", "onnx")
    assert isinstance(embedder.load_sentence_model(), embedder.OnnxMiniLM)
    monkeypatch.setenv("MOODGIF_INTENT_EMBEDDER", "nonsense")
    from scorer.settings import SettingsError

    with pytest.raises(SettingsError, match="INTENT_EMBEDDER"):
        embedder.load_sentence_model()
