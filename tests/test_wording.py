"""What people read: button labels and message sizes every platform accepts."""

from __future__ import annotations

from pathlib import Path

from bot.adapters import discord_views, slack_blocks
from bot.events import GifCard, PostView, Reply
from bot.intent import help_text
from scorer.emotions import NAMES


def _post() -> PostView:
    card = GifCard(sha256="a" * 64, emotion="happiness", title="a cat", source_url=None,
                   local_path=Path("/nonexistent.gif"), bytes=10, width=1, height=1)
    return PostView(post_id=7, card=card, emotion="happiness", requested_by="U1")


def test_vote_buttons_have_words_not_only_an_emoji_and_the_same_ones_everywhere() -> None:
    slack = slack_blocks.post_message(_post(), {"image_url": "https://x/y.gif"})
    slack_labels = [e["text"]["text"] for b in slack["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert slack_labels == ["👍 Fits", "👎 Not really"]

    view = discord_views.post_message(_post(), "https://gifs.example.org", 0).view
    assert view is not None
    discord_labels = [(str(item.item.emoji), item.item.label) for item in view.children]
    assert discord_labels == [("👍", "Fits"), ("👎", "Not really")]

    app_js = (Path(discord_views.__file__).with_name("web_static") / "app.js").read_text()
    assert '"👍 Fits"' in app_js and '"👎 Not really"' in app_js
    assert '"aria-label": "thumbs up"' not in app_js  # the visible words are the button's name


def _units(text: str) -> int:  # how Discord counts a message's length: UTF-16 code units
    return len(text.encode("utf-16-le")) // 2


def test_a_discord_message_never_exceeds_2000_characters() -> None:
    # An unknown 800-character "word" is quoted back ahead of the 17-line help: 2,184
    # characters, which Discord refuses whole (the person saw only "something went wrong").
    lead = "No " + "zzzq" * 200 + " GIFs in this pool. I couldn't read an emotion in that."
    reply = Reply(kind="help", text=f"{lead}\n\n{help_text()}", choices=NAMES)
    msg = discord_views.render(reply, "", 0)
    assert msg.content is not None and _units(msg.content) <= 2000
    assert msg.content.endswith(" more lines")  # the help is cut at a line, and says so
    assert len(msg.view.children) == len(NAMES)  # every feeling still one click away
    note = discord_views.render(Reply(kind="error", text="x" * 2500), "", 0)
    assert note.content is not None and len(note.content) == 2000 and note.content.endswith("…")
    emoji = discord_views.render(Reply(kind="error", text="😮‍💨" * 900), "", 0)  # 5 UTF-16 units each
    assert emoji.content is not None and _units(emoji.content) <= 2000 < len("😮‍💨") * 900 * 5 // 3
    short = discord_views.render(Reply(kind="error", text="Nope."), "", 0)
    assert short.content == "Nope."


def test_a_long_discord_list_says_how_many_lines_it_leaves_out() -> None:
    listed = "Hidden in this server:\n" + "\n".join(f"{i:012x}  demo face {i:05d}" for i in range(120))
    cut = discord_views.fit(listed)
    assert cut is not None and _units(cut) <= 2000
    shown = cut.split("\n")
    left_out = int(shown[-1].removeprefix("… and ").removesuffix(" more lines"))
    assert shown[:-1] == listed.split("\n")[: len(shown) - 1]  # whole lines, in order
    assert len(shown) - 1 + left_out == 121  # every line is either shown or counted
