"""What a simulation run is: strategies, the virtual users' model, the run's knobs.

Part of `bot.simulate` (`moodgif simulate`); see the package's doc for the whole loop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from bot.events import SIM_PLATFORM  # noqa: F401 (the simulator's name for it)
from scorer.settings import Settings

STRATEGIES: tuple[str, ...] = ("prior", "feedback", "both", "both+polls", "random")
ADVERSARIAL_SUFFIX = "@adv"  # "both@adv" = the same strategy with adversarial users


def product_strategy() -> str:
    """The strategy that is the product as shipped: prior + feedback, with polls only when
    the `poll_share` default turns them on."""
    return "both+polls" if Settings().ranking.poll_share > 0 else "both"
POLL_SHARE_WHEN_OFF = 0.15  # the poll share `both+polls` runs with when the default is 0
SIM_WORKSPACE = "sim-team"

# How popular each emotion is among requests: a Zipf-like mix over this order (the common
# chat feelings first, the self-conscious ones last).
POPULARITY: tuple[str, ...] = (
    "happiness", "amusement", "excitement", "sadness", "anger", "surprise", "satisfaction",
    "relief", "disgust", "contentment", "fear", "pleasure", "pride", "embarrassment",
    "contempt", "guilt", "shame",
)
# What virtual users type for each emotion (checked against the intent parser at start).
WORDS: dict[str, tuple[str, ...]] = {
    "amusement": ("lol", "amusement", "funny", "haha"),
    "anger": ("angry", "anger", "furious", "mad"),
    "contempt": ("contempt", "scorn", "disdain"),
    "contentment": ("content", "contentment", "cozy"),
    "disgust": ("gross", "disgust", "disgusting", "eww"),
    "embarrassment": ("embarrassed", "awkward", "embarrassment"),
    "excitement": ("excited", "excitement", "hyped"),
    "fear": ("scared", "fear", "afraid", "terrified"),
    "guilt": ("guilty", "guilt"),
    "happiness": ("happy", "happiness", "joy", "glad"),
    "pleasure": ("pleasure", "delight", "bliss"),
    "pride": ("proud", "pride"),
    "relief": ("relieved", "relief", "phew"),
    "sadness": ("sad", "sadness", "crying", "upset"),
    "satisfaction": ("satisfied", "satisfaction", "nailed it"),
    "shame": ("ashamed", "shame"),
    "surprise": ("surprised", "surprise", "wow", "shocked"),
}


# ---------------------------------------------------------------------------------------
# configuration


@dataclass
class UserModel:
    """How virtual users act on the truth (all scales are the truth's [0, 1])."""

    n_users: int = 300
    n_channels: int = 20
    seconds_between_requests: float = 60.0  # simulated clock step per request
    accept_quantile: tuple[float, float] = (0.80, 0.95)  # per-user acceptance level range
    choice_k: float = 12.0  # Bradley-Terry sharpness of send/shuffle and 👍/👎 decisions
    poll_k: float = 12.0  # sharpness of poll answers
    poll_tie: float = 0.02  # "neither" when the two truths are this close
    max_shuffles: int = 3
    vote_prob: float = 0.3  # chance that each of two channel members votes on a post
    vote_quantile: float = 0.75  # 👍 when the GIF beats this level of the emotion
    answer_poll_prob: float = 0.8
    noisy_share: float = 0.05  # users who click at random
    zipf_s: float = 1.0  # emotion popularity ~ 1 / rank^s


@dataclass
class SimConfig:
    pool_size: int = 2000
    requests: int = 5000
    retrain_every: int = 500
    strategies: tuple[str, ...] = STRATEGIES
    adversarial: float = 0.0  # share of adversarial users in the adversarial comparison run
    seed: int = 0  # the users, the core's draws, the held-out pairs
    pool_seed: int = 0  # the two demo pools (a new one means encoding them: minutes)
    seed_pool_size: int = 800  # the "GIFGIF" the shipped scorer was trained on
    crowd_comparisons_per_gif: int = 6  # per GIF and emotion, GIFGIF-style
    crowd_k: float = 5.0  # GIFGIF crowds are noisy: Bradley-Terry sharpness of their answers
    heldout_pairs: int = 500  # per emotion, truth-derived, never recorded
    seeds: int = 1  # each strategy runs with user seeds seed .. seed + seeds - 1
    workers: int = 2  # strategies run in parallel processes
    extra_checkpoints: tuple[int, ...] = (1000,)
    users: UserModel = field(default_factory=UserModel)

    def checkpoints(self) -> list[int]:
        pts = set(range(self.retrain_every, self.requests + 1, self.retrain_every))
        pts |= {c for c in self.extra_checkpoints if 0 < c <= self.requests}
        pts.add(self.requests)
        return [0, *sorted(pts)]


@dataclass(frozen=True)
class StrategySpec:
    name: str
    prior: bool  # start from v0's predictions
    retrain: bool  # run the scheduled retrain every K requests
    polls: bool  # show polls (settings.ranking.poll_share); else poll_share = 0
    prior_strength: float | None = None  # None = settings.training.bt_prior_strength
    adversarial: float = 0.0


def strategy_spec(name: str, adversarial: float = 0.0) -> StrategySpec:
    base, _, adv = name.partition(ADVERSARIAL_SUFFIX)
    specs = {
        "prior": StrategySpec("prior", prior=True, retrain=False, polls=False),
        "feedback": StrategySpec("feedback", prior=False, retrain=True, polls=False,
                                 prior_strength=0.0),
        "both": StrategySpec("both", prior=True, retrain=True, polls=False),
        "both+polls": StrategySpec("both+polls", prior=True, retrain=True, polls=True),
        "random": StrategySpec("random", prior=False, retrain=False, polls=False),
    }
    if base not in specs:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)} "
                         f"(optionally with {ADVERSARIAL_SUFFIX})")
    spec = specs[base]
    if adv is not None and ADVERSARIAL_SUFFIX in name:
        spec = dataclasses.replace(spec, name=name, adversarial=adversarial)
    return spec
