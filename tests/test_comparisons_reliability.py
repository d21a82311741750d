"""Each person's judgements weighed by their agreement with everyone else's (training.reliability)."""

from __future__ import annotations

import numpy as np

from scorer.emotions import INDEX
from training import bradley_terry as bt
from training.comparisons import LedgerArrays
from training.judgements import bar_id, weigh_ledger_people, with_judgements
from training.reliability import REPEAT_CAP

HAPPY = INDEX["happiness"]
N_GIFS = 12


def _sha(i: int) -> str:
    return f"{i:064x}"


def _empty() -> LedgerArrays:
    ids = [_sha(i) for i in range(N_GIFS)]
    z = np.zeros(0, np.int64)
    return LedgerArrays(ids, z.astype(np.int16), z, z.copy(), z.astype(bool), z.astype(float), 0,
                        is_send=z.astype(bool), who=np.zeros(0, dtype=object))


def _decisions(rng: np.random.Generator, truth: np.ndarray, people: list[str], per_person: int,
               against: bool = False, coin: bool = False) -> list[tuple]:
    """Each person judges random GIFs against the bar: a Bradley-Terry choice on the truth,
    a coin flip (`coin`), or the opposite of what they see (`against`)."""
    bar = bar_id(HAPPY)
    rows = []
    for who in people:
        for g in rng.integers(0, N_GIFS, per_person):
            p = 1.0 / (1.0 + np.exp(-6.0 * (truth[g] - 0.5)))
            sent = rng.random() < (0.5 if coin else p)
            if against:
                sent = not sent
            rows.append((HAPPY, _sha(g), bar, who) if sent else (HAPPY, bar, _sha(g), who))
    return rows


def _theta(ledger: LedgerArrays) -> np.ndarray:
    e = ledger.emotion == HAPPY
    return bt.fit_all(len(ledger.ids), ledger.emotion[e], ledger.winner[e], ledger.loser[e],
                      ledger.tie[e], ledger.weight[e])[HAPPY].theta[:N_GIFS]


def test_contrarians_and_coin_flippers_fade_and_honest_people_count_fully() -> None:
    rng = np.random.default_rng(0)
    truth = np.linspace(0.0, 1.0, N_GIFS)
    honest = [f"{i:064x}" for i in range(100, 140)]
    against = [f"{i:064x}" for i in range(200, 208)]
    coins = [f"{i:064x}" for i in range(300, 304)]
    rows = (_decisions(rng, truth, honest, 20) + _decisions(rng, truth, against, 20, against=True)
            + _decisions(rng, truth, coins, 20, coin=True))
    ledger = with_judgements(_empty(), rows, weigh_people=False)
    _, report = weigh_ledger_people(ledger)
    trust = report.trust
    assert np.mean([trust[p] for p in honest]) > 0.95 and min(trust[p] for p in honest) > 0.6
    assert max(trust[p] for p in against) == 0.0
    assert max(trust[p] for p in coins) < 0.5
    assert report.muted == len(against) + sum(trust[p] < 0.5 for p in coins)


def test_one_person_repeating_a_judgement_counts_at_most_the_cap() -> None:
    rng = np.random.default_rng(1)
    truth = np.linspace(0.0, 1.0, N_GIFS)
    honest = [f"{i:064x}" for i in range(100, 130)]
    spammer = "f" * 64
    best = N_GIFS - 1
    rows = _decisions(rng, truth, honest, 12)
    rows += [(HAPPY, bar_id(HAPPY), _sha(best), spammer)] * 200  # skips the best GIF, 200 times
    raw = with_judgements(_empty(), rows, weigh_people=False)
    weighed = with_judgements(_empty(), rows)
    spam = raw.who == spammer
    assert raw.weight[spam].sum() == 200.0
    assert weighed.weight[spam].sum() <= REPEAT_CAP + 1e-9
    # the raw fit lets one person sink the best GIF; the weighed fit keeps it on top
    assert int(np.argmax(_theta(raw))) != best
    assert int(np.argmax(_theta(weighed))) == best


def test_rows_without_a_person_are_left_alone() -> None:
    ledger = with_judgements(_empty(), [(HAPPY, _sha(1), bar_id(HAPPY))] * 5)
    assert ledger.weight.tolist() == [1.0] * 5 and list(ledger.who) == [""] * 5


def test_a_contrarian_between_two_gifs_stays_muted_in_every_round() -> None:
    """Poll answers (GIF against GIF, no reference item): the first round mutes the
    contrarian; the second, whose consensus gives their rows weight 0, must not give them
    back their trust (it did: their rows were skipped and scored as nobody's 0.5)."""
    rng = np.random.default_rng(4)
    truth = np.linspace(0.0, 1.0, N_GIFS)
    honest = [_sha(100 + k) for k in range(3)]
    contrarian = _sha(999)
    rows = []
    for _ in range(120):
        i, j = rng.choice(N_GIFS, 2, replace=False)
        better, worse = (i, j) if truth[i] > truth[j] else (j, i)
        rows += [(HAPPY, _sha(better), _sha(worse), who) for who in honest]
        rows.append((HAPPY, _sha(worse), _sha(better), contrarian))
    ledger = with_judgements(_empty(), rows, weigh_people=False)
    weight, report = weigh_ledger_people(ledger)
    assert report.trust[contrarian] == 0.0 and report.reliability[contrarian] < 0
    assert min(report.trust[p] for p in honest) == 1.0
    assert weight[ledger.who == contrarian].sum() == 0.0
