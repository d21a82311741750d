"""The bot core's flows, one module per thing a person does; `bot.core.BotCore` composes them.

- `context`  what every flow shares (settings, DB, clock, ranker, parser, caches) and the
             unit of work: one Session, one transaction per user action (`for_user`).
- `cards`, `readings` the context's per-process caches of GIF cards and request readings.
- `requests` `/gif` -> preview; Shuffle, Send, Cancel.
- `offers` what nobody typed `/gif` for: a watched channel's offer; `suggest`.
- `feedback` 👍/👎 votes and reactions on a post; the post's platform message id.
- `polls`    "which is more X?" polls and their answers.
- `admin`    typed admin commands (`AddPool`, `SetRating`, ...) and `parse_admin` for text.
- `reports`  the pools and stats an admin reads.
- `jobs`     heavy admin work queued for the worker process (`core_jobs`), and its runner.
"""
