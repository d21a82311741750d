"""The word channel computed while the GIFs are decoded and encoded, not after them.

The zero-shot prior (`scorer.prior.write_prior`) reads each GIF's words through the intent
model (`TextModel`: lexicon, then MiniLM). Called once per GIF after the last GIF was
encoded, that was a serial stage in the scoring process: ~11 ms a real GIF on the project's
loaded 2-core VM (docs/benchmarks.md, issue 17), little beside a CPU encoder but a cap of
~90 GIFs/s for a GPU one.
`WordsAhead` runs the same model on the same texts (`scorer.prior.gif_text` of the rows
read up front) in one thread while the stream runs, and hands `write_prior` a text model
that answers from those results: the same function on the same text, so the same scores.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.engine import Engine

from scorer.prior import TextModel, gif_text
from scorer.store import Gif, session_scope


class WordsAhead:
    """Starts reading the words of `shas` at once; `model()` waits for it to finish."""

    def __init__(self, engine: Engine, shas: Sequence[str], text_model: TextModel) -> None:
        self._text_model = text_model
        self._answers: dict[str, tuple[bool, object]] = {}  # text -> (ok, answer or exception)
        # The rows are read here, in the caller's thread: the thread only runs the model.
        texts = list(dict.fromkeys(t for t in _texts(engine, shas) if t.strip()))
        self._thread = threading.Thread(target=self._run, args=(texts,), name="words-ahead",
                                         daemon=True)
        self._thread.start()

    def _run(self, texts: list[str]) -> None:
        for text in texts:
            try:
                self._answers[text] = (True, self._text_model(text))
            except Exception as exc:  # raised again from model(): word_channel logs it there
                self._answers[text] = (False, exc)

    def model(self) -> TextModel:
        """The text model, answering from the results computed ahead (after waiting for
        them); a text not seen ahead goes to the model itself."""
        self._thread.join()
        answers = self._answers

        def answer(text: str):  # type: ignore[no-untyped-def]
            got = answers.get(text)
            if got is None:
                return self._text_model(text)
            ok, value = got
            if not ok:
                raise value  # type: ignore[misc]
            return value

        return answer


def _texts(engine: Engine, shas: Sequence[str]) -> list[str]:
    out: list[str] = []
    for i in range(0, len(shas), 500):
        with session_scope(engine) as s:
            out += [gif_text(g.title or "", g.tags or [], g.alt_text or "", g.slug or "")
                    for g in s.scalars(select(Gif).where(Gif.sha256.in_(list(shas[i:i + 500]))))]
    return out
