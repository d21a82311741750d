"""A real moodgif web application on a loopback port, for the attacks in this folder.

`running(core, settings, engine)` serves `bot.adapters.web.build_app` (plus the ops routes
and, when configured, the Slack routes, as `moodgif serve` mounts them) with aiohttp on
127.0.0.1, port 0, and yields its base URL. `forwarder(port)` is a header-less TCP
forwarder (what `socat` or a plain stream proxy does): the server sees a loopback peer and
no X-Forwarded-For.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bot.adapters.web import build_app
from bot.serve import mount_adapters


@contextlib.asynccontextmanager
async def running(core: Any, settings: Any, engine: Any) -> AsyncIterator[str]:
    app = build_app(core, settings, engine)
    mount_adapters(app, core, settings, engine)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def forwarder(target_port: int) -> AsyncIterator[int]:
    """A plain TCP forwarder on a loopback port (adds no header); yields its port."""
    tasks: set[asyncio.Task] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
        for t in (asyncio.create_task(_pipe(reader, up_w)), asyncio.create_task(_pipe(up_r, writer))):
            tasks.add(t)
            t.add_done_callback(tasks.discard)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
