"""How torch's OpenMP threads wait: passively, unless the admin set `OMP_WAIT_POLICY`.

By default an OpenMP thread that runs out of work spins for a while before it sleeps. On a
machine whose cores are shared (a small VM, the chat process and the worker side by side)
the spinning takes the cores the other threads need: on the project's 2-core VM at load 8-11,
the same encoder code did 3.29 GIFs/s with `PASSIVE` against 0.82 spinning, with 7.1 against
22.2 CPU seconds for the same frames; quiet (load 1.4-2.0), the whole scoring pipeline did
7.86 against 7.59 GIFs/s, the encoder alone 10.1 against 12.1 (docs/benchmarks.md, issue 17).
OpenMP reads the variable once, when the runtime starts (the first `import torch`), so the
process entry points call this before anything imports torch.
"""

from __future__ import annotations

import os


def prefer_passive_waits() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
