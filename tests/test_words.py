"""Ingest keeps a GIF's words: titles from file names, slugs from URLs, manifest text, sanitised."""

from __future__ import annotations

import json
from pathlib import Path

from _h1_gifs import good_gif
from click.testing import CliRunner
from sqlalchemy import select

from scorer.pool import ingest, pool_details, read_source
from scorer.settings import Settings
from scorer.store import Gif, session_scope
from scorer.words import (
    MAX_TITLE,
    clean_tags,
    clean_text,
    reading_text,
    slug_from_url,
    title_from_path,
)


def test_title_from_file_name() -> None:
    assert title_from_path("happy-dance.gif") == "happy dance"
    assert title_from_path("sub/HappyDance_3f9a2c1b7d.webp") == "happy dance"
    assert title_from_path("no_way_Neil.deGrasse.Tyson.gif") == "no way neil de grasse tyson"
    # A file named by its hash, or by a camera counter, has no words.
    assert title_from_path("71933b59c9a76424162a91b99896070c915e33cf8fbd06b367c0c4e874e3f660.gif") == ""
    assert title_from_path("0001.gif") == ""
    assert title_from_path("驚き.gif") == "驚き"


def test_slug_from_url() -> None:
    assert slug_from_url("https://giphy.com/gifs/happy-dance-abc123") == "happy-dance"
    assert slug_from_url("https://giphy.com/gifs/excited-yes-l0MYt5jPR6QX5pnqM") == "excited-yes"
    assert slug_from_url("https://media.giphy.com/media/l0MYt5jPR6QX5pnqM/giphy.gif") == ""
    assert slug_from_url("https://example.com/x/so-sad.gif?x=1") == "so-sad"
    assert slug_from_url("not a url") == "not a url" or slug_from_url("not a url") == ""


def test_hostile_text_is_cleaned() -> None:
    assert clean_text("<b>so</b>\x00 happy\u202e &amp; <script>alert(1)</script>") == "so happy &"
    assert clean_text(None) == "" and clean_text("   ") == ""
    long = clean_text("word " * 10_000)
    assert 0 < len(long) <= MAX_TITLE
    assert clean_text("悲しい 😢 حزين") == "悲しい 😢 حزين"
    assert clean_tags(["a", "A", "", "<i>b</i>"] + ["t"] * 100) == ["a", "b", "t"]


def test_format_words_are_not_read() -> None:
    """'gif', 'reaction', 'meme' describe the file, not a feeling: the word channel skips
    them (the sentence model reads "gif" alone as amusement); everything else stays."""
    assert reading_text("i dont give a fuck boba fett gif") == "i dont give a fuck boba fett"
    assert reading_text("Reaction GIF") == "" and reading_text("reaction-gif") == ""
    assert reading_text("reaction_gif") == "" and reading_text("GIF") == ""
    assert reading_text("happy-dance") == "happy-dance" and reading_text("giffy gift") == "giffy gift"
    assert reading_text("悲しい gif 😢") == "悲しい 😢" and reading_text("😂😂😂") == "😂😂😂"
    assert reading_text("gif :)") == ":)" and reading_text("") == ""


def test_ingest_keeps_words(sqlite_settings: Settings, sqlite_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "happy-dance.gif").write_bytes(good_gif(1))
    (folder / "c0ffee1234abcd5678.gif").write_bytes(good_gif(2))
    (folder / "m.gif").write_bytes(good_gif(3))
    (folder / "n.gif").write_bytes(good_gif(4))
    report = ingest(sqlite_settings, sqlite_engine, "f", folder)
    assert len(report.added) == 4
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,title,tags,caption\n"
        'f/m.gif,"<b>So</b> proud\x07",win;yay,"a kid raises a trophy"\n'
        "f/n.gif,,,\n"
    )
    # The manifest's words fill what the folder's file names did not know.
    ingest(sqlite_settings, sqlite_engine, "m", manifest)
    jl = tmp_path / "x.jsonl"
    (tmp_path / "o.gif").write_bytes(good_gif(5))
    jl.write_text(json.dumps({"path": "o.gif", "alt_text": "<img src=x onerror=1>" + "y" * 5000,
                              "slug": "facepalm-xyz"}) + "\n")
    ingest(sqlite_settings, sqlite_engine, "j", jl)
    with session_scope(sqlite_engine) as s:
        rows = {g.title: g for g in s.scalars(select(Gif))}
    assert "happy dance" in rows
    assert "" in rows  # the hash-named file
    # The folder only guessed "m" from the file's name: the manifest's own title replaces it,
    # and its tags and caption fill what was unknown.
    assert "m" not in rows
    assert (rows["So proud"].tags, rows["So proud"].alt_text) == (["win", "yay"], "a kid raises a trophy")
    o = rows["o"]
    assert o.slug == "facepalm-xyz" and "<" not in o.alt_text and len(o.alt_text) <= 1000
    details = pool_details(sqlite_engine, "f")
    assert {g["title"] for g in details["first"]} >= {"happy dance"}
    assert all("tags" in g and "alt_text" in g and "slug" in g for g in details["first"])


def test_manifest_words_on_new_gif(sqlite_settings: Settings, sqlite_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.gif").write_bytes(good_gif(7))
    m = tmp_path / "m.csv"
    m.write_text('path,title,tags,alt_text\na.gif,"<b>So</b> proud\x07",win;yay,a kid raises a trophy\n')
    ingest(sqlite_settings, sqlite_engine, "m", m)
    with session_scope(sqlite_engine) as s:
        g = s.scalars(select(Gif)).one()
    assert (g.title, g.tags, g.alt_text) == ("So proud", ["win", "yay"], "a kid raises a trophy")


def test_url_list_keeps_slug(sqlite_settings: Settings, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("https://giphy.com/gifs/happy-dance-abc123\nhttps://media.giphy.com/media/abc/giphy.gif\n")
    items = read_source(sqlite_settings, urls)
    assert (items[0].slug, items[0].title) == ("happy-dance", "happy dance")
    assert (items[1].slug, items[1].title) == ("", "")


def test_pool_show_prints_words(sqlite_settings: Settings, sqlite_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import cli

    (tmp_path / "a.gif").write_bytes(good_gif(8))
    m = tmp_path / "m.csv"
    m.write_text("path,title,tags\na.gif,so proud,win;yay\n")
    ingest(sqlite_settings, sqlite_engine, "team", m)
    out = CliRunner().invoke(cli, ["pool", "show", "team"], env={"MOODGIF_HOME": str(sqlite_settings.home)})
    assert out.exit_code == 0, out.output
    assert "so proud" in out.output and "tags: win, yay" in out.output
