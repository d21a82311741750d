"""The fixed prose of the simulation report (docs/simulation.md): why learning used to
feel worse (issue 12) and how to read the numbers. Kept apart from the code that writes
the measured parts (`bot.simulate.report`)."""

CAUSE = """## Why learning used to make it feel worse (issue 12), measured

Before the fix, the product lowered what people feel the more it was used: on the 600-GIF
pool (2,000 requests, seed 0) previews sent without a shuffle fell from 0.54 to 0.30 and
the regret of the first GIF rose from 0.46 to 0.67, while the prior alone stayed at
0.50-0.54 and 0.46-0.49. Ablated one at a time (`docs/bench/learning-loop.md` has the
tables and commands):

1. **Thompson sampling over the whole pool never cooled** (the main cause). A GIF nobody
   voted on keeps the prior's width (sd 0.2) forever, while votes narrow the known-good GIFs
   (median sd 0.09): on the matrix after 2,000 requests the first GIF shown was an unvoted
   one 96 % of the time (truth percentile 0.33 from the top, against 0.02 for the best
   mean). Exploration off: sent without a shuffle 0.87 and regret 0.13 at 2,000 requests;
   thumbs off (no 👍/👎 at all): still 0.32 / 0.65, so not the thumbs; rehearsal off: the
   very same curve, because the retrained head never moved from its warm start (candidate
   and active version score identically on dev), so neither rehearsal nor the score scale
   between fits is it.
2. **With the best-known GIF first, "sent beats skipped" pairs are adversely selected.**
   A GIF sent without a shuffle recorded nothing, and the first GIF could only ever be
   skipped and beaten: the GIFs the ranker believed in most collected losses and no wins.
   P@1 of the posterior fell to 0.12-0.18 at 1,000 requests (prior 0.29) with exploration
   off or bounded. Fitting each preview decision against the sender's bar instead
   (`training/judgements.py`: sent GIF > bar > each skipped GIF) gives P@1 0.41 and
   NDCG@5 0.867-0.894 at every checkpoint (prior 0.851).

The fix: bounded exploration (`MOODGIF_EXPLORATION=bounded`, the default: the best-known GIF
first, Thompson draws only among GIFs whose upper bound beats the best remaining one,
cooling with the emotion's evidence), bar judgements in the fit, and polls picked by
expected information about each emotion's top (active sorting).
"""


HOW_TO = """What the numbers mean for the product, the tuning runs behind the defaults and the known
causes of the gaps: `docs/bench/learning-loop.md`.

## How it works and how to run it

```
moodgif simulate [--pool-size 2000] [--requests 5000] [--retrain-every 500]
                 [--strategies prior,feedback,both,both+polls,random] [--adversarial 0.1]
                 [--seed 0] [--seeds 1] [--pool-seed 0] [--seed-pool-size 800]
                 [--workers 2] [--out docs/]
                 [--cache bench-out/sim-cache] [--fast] [--json]
```

- **Strategies** (each in its own fresh database; all share one feature cache):
  `prior` = the shipped scorer only (no retrain); `feedback` = no scorer prior (the pool
  starts unscored, Bradley-Terry prior strength 0; the heads the retrain trains on the
  users' votes are part of learning from feedback); `both` = the product (scorer prior +
  retrain), no polls; `both+polls` = the product with "which is more X?" polls for
  `MOODGIF_POLL_SHARE` of requests (the core picks the pair by two Thompson draws near the
  top: the pair the ranking is least sure how to order); `random` = nothing scored.
  `--adversarial 0.1` adds one more run of the product as shipped (`both@adv`; `both+polls@adv`
  when polls are on by default) in which 10 % of the users are adversarial (normal people
  turned adversarial; the noisy 5 % stay the same).
- **The shipped scorer (v0)**: a separate seed demo pool gets GIFGIF-style crowd comparisons
  drawn from its truth (Bradley-Terry noise, about 6 per GIF and emotion); `moodgif train`'s
  code fits Bradley-Terry and trains the default head on them. v0 then scores the evaluation
  pool: that is the scorer prior. The evaluation pool never sees its truth.
- **Virtual users** (seeded; 300 people in 20 channels, a few ask a lot): the emotion mix is
  Zipf-like (happiness and amusement common, guilt and shame rare) and typed as words the
  intent parser maps (`happy`, `lol`, `phew`, ...). On each preview a person sends with
  probability expit(12 (truth - their bar)), their bar being their own 80-95th percentile of
  that emotion's truth, else shuffles; after 3 shuffles they send the best one seen or
  cancel. Two channel mates vote 👍/👎 30 % of the time each (expit(12 (truth - 75th
  percentile))). Polls are answered 80 % of the time: left with probability
  expit(12 (truth_left - truth_right)), "neither" within 0.02. 5 % of users click at random;
  adversarial users always vote 👎, send at random and answer polls against what they see.
- **The loop**: every `--retrain-every` requests the scheduled retrain job
  (`training.retrain.scheduled_job`, what APScheduler calls) runs on the simulated clock:
  ledger -> Bradley-Terry -> head -> rescore -> activate; the bot core's ranker notices the
  new version through its own version stamp, as in production.
- **Cache**: `--cache` holds the pools, GIF files, features, v0 and template databases; a
  warm rerun only simulates. `--fast` is a quick look (300-GIF pool, 600 requests).
- **Outputs**: `learning-loop.md` (this page), `learning-curve.png`, and the raw curves
  in the cache folder (`learning-loop.json`: every run and checkpoint, every metric per
  emotion, each retrain's outcome)."""
