"""Should a workspace's learned words also teach their paraphrases, and by which likeness?

`bot.learned_phrases` reads a request the way people here sent the *same* words before. A
teammate who says the same thing differently ("prod went down AGAIN" after "prod is down
again" was sent as anger) gets the parser's own reading. This measures whether matching a
request to the nearest learned phrase would help, and what it would break.

Data (`tests/data/phrase_paraphrases.csv`, written for this project by two writers who saw no
file of it): groups of six lines, a *source* (what someone sent), three *paras* (the same
situation and feeling in other words) and two *contrasts* (the same topic, another situation
and feeling). Groups split by id into a tune half (odd numbers) and a held-out half (even),
read only once a rule is fixed. The thirty-fourth round selected on both halves (`all`) and
was judged on new groups by two more writers (`tests/data/phrase_paraphrases_new.csv`, `new`).

The workspace's book is every source of the split, each learned as its feeling. Each para and
contrast is then asked: if its nearest book phrase is at least `theta` alike and the parser is
not sure of it (`bot.learned_phrases.is_sure`, what the exact match already requires), the
answer is that phrase's learned feeling; else the parser's. Two scenarios:

- **label**: the book's feelings are the writers' labels (a team that means what most would).
- **idiom**: each source is learned as a random other feeling and its paras mean that too (a
  team's own idiom: "monday again" as anger); contrasts keep their labels.

A gate (`--gates`) may also ask that the parser read the request as it reads the learned words
(the thirty-fourth round). Printed per likeness, gate and threshold: right at once on paras and on contrasts, and the
transfers that were right and wrong. Likenesses: `plain` (MiniLM cosine, the short path's
encoder), `tuned` (the fine-tuned encoder's cosine), `shipped` (the same encoder as the bot
runs it: the request as the sentence model reads it, the learned words as keys) and `words`
(Jaccard of stemmed content words).

    .venv/bin/python benchmarks/bench_phrase_likeness.py [--split tune|held|all|new] [--seeds 0,1,2]
        [--kinds plain,tuned,words] [--gates none,same,overlap]
    .venv/bin/python benchmarks/bench_phrase_likeness.py --latency [--keys 2000]

`--latency` times what the request path adds (`bot.phrase_book` as the bot runs it: the
request's vector, the nearest of a full shelf of learned keys, the gate) against the parser's
own reading of the same unseen sentences, in one run.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.flows.switches import SWITCH_SURE  # noqa: E402
from bot.intent import _EMBEDDER, Intent, IntentParser  # noqa: E402
from bot.intent_lexicon import STOPWORDS  # noqa: E402
from bot.learned_phrases import is_sure, phrase_key  # noqa: E402
from bot.phrase_book import first_choice, reads_alike  # noqa: E402
from bot.topics import Reading, stem  # noqa: E402
from scorer.emotions import NAMES  # noqa: E402

DATA = REPO / "tests" / "data" / "phrase_paraphrases.csv"
NEW = REPO / "tests" / "data" / "phrase_paraphrases_new.csv"  # the thirty-fourth round's judge
THETAS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class Line:
    group: str
    role: str
    emotion: str
    text: str


def load(split: str) -> list[Line]:
    with (NEW if split == "new" else DATA).open(newline="", encoding="utf-8") as f:
        rows = [Line(r["group"], r["role"], r["emotion"], r["text"]) for r in csv.DictReader(f)]
    if split in ("all", "new"):
        return rows
    want = 1 if split == "tune" else 0
    return [r for r in rows if int(r.group[1:]) % 2 == want]


def content_words(text: str) -> set[str]:
    return {stem(w) for w in phrase_key(text).split() if w.isalnum() and w not in STOPWORDS}


def likeness(kind: str, texts: list[str], parser: IntentParser) -> np.ndarray:
    """(n, n) likeness of every asked text (rows) to every learned key (columns)."""
    if kind == "words":
        sets = [content_words(t) for t in texts]
        return np.array([[len(a & b) / max(1, len(a | b)) for b in sets] for a in sets])
    assert _EMBEDDER.load()
    keys = [phrase_key(t) for t in texts]  # what the book keeps
    if kind == "plain":
        vecs = np.asarray(_EMBEDDER._model.encode(keys, normalize_embeddings=True))
        return vecs @ vecs.T
    assert _EMBEDDER.tuned is not None, "the tuned sentence model is not built"
    if kind == "tuned":  # rounds 33-34: requests embedded as their keys too
        vecs = _EMBEDDER.tuned.vectors(keys)
        return vecs @ vecs.T
    # "shipped": as the bot does it, the request as the sentence model reads it (so a
    # sentence's reading and its likeness share one encoding), the learned words as keys
    asked = parser.likeness_vectors(texts)
    book = parser.likeness_vectors(keys)
    assert asked is not None and book is not None
    return asked[0] @ book[0].T


def first_choices(intent: Intent, n: int) -> list[str]:
    """The parser's first `n` choices: its feeling, else its "did you mean"s, then the rest."""
    return [e for e in intent.choices if e][:n]


def gate_passes(gate: str, asked: Intent, learned: Intent) -> bool:
    """Whether the parser reads the request as it reads the learned words: `same` first
    choice, or either first choice among the other's first three (`overlap`)."""
    if gate == "none":
        return True
    a, b = first_choices(asked, 3), first_choices(learned, 3)
    if not a or not b:
        return False
    if gate == "same":
        return reads_alike(asked, first_choice(learned))  # what the bot ships
    return a[0] in b or b[0] in a


def latency(n_keys: int) -> None:
    import time

    from bot.phrase_book import PhraseBook
    from bot.situation_bank import bank_texts

    parser = IntentParser()
    _EMBEDDER.load()
    _EMBEDDER.wait_tuned(1800)
    texts = bank_texts()[0]
    keys = [phrase_key(t) for t in texts[:n_keys]]
    asked = [r.text for r in load("all")][: 300]
    book = PhraseBook(lambda p, w: keys, parser.likeness_vectors, parser.parse)
    t = time.perf_counter()
    book.refresh_soon("bench", "T1")
    book.wait(3600)
    print(f"shelf of {len(book.keys('bench', 'T1'))} keys loaded in the background in {time.perf_counter() - t:.1f} s")
    parser.parse("warm up the encoder")
    alone, added = [], []
    for text in asked:
        _EMBEDDER.clear_cache()
        t0 = time.perf_counter()
        intent = parser.parse(text)
        t1 = time.perf_counter()
        key = phrase_key(text)
        near = book.nearest("bench", "T1", lambda text=text: parser.likeness_vectors([text]), key)
        if near is not None:
            reads_alike(intent, near.first)
        t2 = time.perf_counter()
        alone.append(t1 - t0)
        added.append(t2 - t1)
    a, b = np.array(alone) * 1e3, (np.array(alone) + np.array(added)) * 1e3
    print(f"{len(asked)} unseen lines (the paraphrase groups), uncached, one thread:")
    print(f"  parser alone      p50 {np.percentile(a, 50):.1f} ms  p99 {np.percentile(a, 99):.1f} ms")
    print(f"  with the book     p50 {np.percentile(b, 50):.1f} ms  p99 {np.percentile(b, 99):.1f} ms"
          f"  (x{np.percentile(b, 99) / np.percentile(a, 99):.2f} at p99)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("tune", "held", "all", "new"), default="tune",
                    help="odd groups, even groups, both (the thirty-fourth round's selection), "
                         "or the new groups that judged it")
    ap.add_argument("--seeds", default="0,1,2", help="idiom scenario draws")
    ap.add_argument("--kinds", default="plain,tuned,words")
    ap.add_argument("--gates", default="none", help="comma list of none, same, overlap (see `gate_passes`)")
    ap.add_argument("--latency", action="store_true", help="time the request path instead")
    ap.add_argument("--keys", type=int, default=2000, help="--latency: keys on the shelf")
    args = ap.parse_args()
    if args.latency:
        latency(args.keys)
        return

    lines = load(args.split)
    parser = IntentParser()
    _EMBEDDER.load()
    _EMBEDDER.wait_tuned(1800)
    readings = [Reading(parser.parse(r.text)) for r in lines]
    sources = [i for i, r in enumerate(lines) if r.role == "source"]
    asked = [i for i, r in enumerate(lines) if r.role != "source"]
    groups = {r.group for r in lines}
    print(f"{args.split}: {len(groups)} groups, {len(asked)} lines asked "
          f"({sum(lines[i].role == 'para' for i in asked)} paras)")

    scenarios: list[tuple[str, dict[str, str]]] = [("label", {lines[i].group: lines[i].emotion for i in sources})]
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = np.random.default_rng(seed)
        meaning = {}
        for i in sources:
            taken = {r.emotion for r in lines if r.group == lines[i].group}
            meaning[lines[i].group] = str(rng.choice([e for e in NAMES if e not in taken]))
        scenarios.append((f"idiom{seed}", meaning))

    for kind, gate in ((k, g) for k in args.kinds.split(",") for g in args.gates.split(",")):
        sim = likeness(kind, [r.text for r in lines], parser)
        print(f"\n## likeness: {kind}, gate: {gate}")
        print("| scenario | theta | paras right | contrasts right | transfers right / wrong | own group nearest |")
        print("|---|---|---|---|---|---|")
        for name, meaning in scenarios:
            truth = {i: (meaning[lines[i].group] if lines[i].role == "para" else lines[i].emotion)
                     for i in asked}
            for theta in (None, *THETAS):
                right = {"para": 0, "contrast": 0}
                moved_right = moved_wrong = own = unsure = 0
                for i in asked:
                    reading = readings[i]
                    answer = reading.emotion
                    if theta is not None and not is_sure(reading, SWITCH_SURE):
                        unsure += 1
                        j = max(sources, key=lambda s: sim[i, s])
                        own += lines[j].group == lines[i].group
                        if sim[i, j] >= theta and gate_passes(gate, reading.intent, readings[j].intent):
                            answer = meaning[lines[j].group]
                            if answer != reading.emotion:
                                if answer == truth[i]:
                                    moved_right += 1
                                elif reading.emotion == truth[i]:
                                    moved_wrong += 1
                    right[lines[i].role] += answer == truth[i]
                n_para = sum(lines[i].role == "para" for i in asked)
                n_con = len(asked) - n_para
                label = "parser alone" if theta is None else f"{theta:.2f}"
                print(f"| {name} | {label} | {right['para'] / n_para:.3f} | "
                      f"{right['contrast'] / n_con:.3f} | {moved_right} / {moved_wrong} | "
                      f"{'' if theta is None else f'{own / max(1, unsure):.2f}'} |")


if __name__ == "__main__":
    main()
