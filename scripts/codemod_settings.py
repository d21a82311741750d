"""Rewrite the flat settings accesses to the nested groups of scorer/settings.py.

    .venv/bin/python scripts/codemod_settings.py            # rewrite bot/ scorer/ training/ tests/ benchmarks/
    .venv/bin/python scripts/codemod_settings.py --check    # only list what it would change
    .venv/bin/python scripts/codemod_settings.py FILE...    # only these files

The mapping is `scorer.settings.FLAT_KEYS` (old flat key -> dotted path), so it is the
settings module's own table. Idempotent: a second run changes nothing. What it rewrites:

- `<recv>.<old_key>` -> `<recv>.<group>.<field>` where <recv> is a Settings object: any name
  or attribute ending in `settings` (`settings`, `sqlite_settings`, `self.settings`,
  `env.settings`), `Settings()` / `load_settings(...)` call results, and names this file binds
  to a Settings (`x: Settings`, `x = load_settings(...)`, `x = Settings(...)`,
  `x = dataclasses.replace(<settings>, ...)`, `x = <settings>.override(...)`,
  `x = self.settings`). Comments and
  docstrings that name `settings.<old_key>` are rewritten too, so they stay true.
- `dataclasses.replace(<settings>, old_key=v, **extra)` -> `<settings>.override(group__field=v,
  **extra)` (override also takes old flat keys, so `**extra` dicts keep working).
- `X.__class__(**{**X.__dict__, "old_key": v})` -> `X.override(group__field=v)`.
- keyword arguments of `load_settings(...)`, `Settings(...)` and `.override(...)` named by an
  old flat key -> `group__field=`.
- `<scoped>["key"]` -> `<scoped>.key` where <scoped> was bound to `get_all_scoped(...)`
  (the scoped settings are a typed `ChannelSettings` now).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scorer.settings import FLAT_KEYS, ChannelSettings  # noqa: E402

DIRS = ("bot", "scorer", "training", "tests", "benchmarks", "scripts", "deploy")
SKIP = {"scorer/settings.py", "scripts/codemod_settings.py"}
MOVED = {k: v for k, v in FLAT_KEYS.items() if k != v}  # old key -> "group.field"
KW = {k: v.replace(".", "__") for k, v in MOVED.items()}  # old key -> "group__field"
FIELDS = "|".join(sorted(MOVED, key=len, reverse=True))
SCOPED_KEYS = "|".join(ChannelSettings.model_fields)

# A Settings-typed name bound in this file (module, function or parameter).
_BIND = [
    re.compile(r"\b(\w+)\s*:\s*[\"']?Settings\b(?!\w)"),
    re.compile(r"\b(\w+)\s*=\s*(?:\w+\.)?(?:load_settings|Settings)\("),
    re.compile(r"\b(\w+)\s*=\s*(?:\w+\.)?\w*settings\.override\("),
    re.compile(r"(?m)\b(\w+)\s*=\s*(?:\w+\.)*\w*settings\s*(?:#.*)?$"),  # s = self.settings
]
_BIND_REPLACE = re.compile(r"\b(\w+)\s*=\s*(?:dataclasses\.)?replace\(\s*([\w.]+)\s*,")
_BIND_SCOPED = re.compile(r"\b(\w+)\s*=\s*(?:\w+\.)?get_all_scoped\(")


def settings_names(text: str) -> set[str]:
    """Names this file binds to a Settings object (besides the *settings names)."""
    names: set[str] = set()
    for pattern in _BIND:
        names.update(m.group(1) for m in pattern.finditer(text))
    grew = True
    while grew:  # x = dataclasses.replace(<a settings name>, ...) makes x one too
        before = len(names)
        for m in _BIND_REPLACE.finditer(text):
            if _is_settings_expr(m.group(2), names):
                names.add(m.group(1))
        grew = len(names) > before
    return {n for n in names if not n.endswith("settings") and n not in {"self", "cls", "_"}}


def _is_settings_expr(expr: str, names: set[str]) -> bool:
    return expr.split(".")[-1].endswith("settings") or expr in names


def _receiver_pattern(names: set[str]) -> re.Pattern[str]:
    alts = [r"(?:\w+\.)*\w*settings", r"(?:\w+\.)?(?:load_settings|Settings)\([^()]*\)"]
    alts += [rf"(?<![\w.]){re.escape(n)}" for n in sorted(names)]
    return re.compile(rf"(?P<recv>{'|'.join(alts)})\.(?P<key>{FIELDS})\b")


def rewrite_attributes(text: str, names: set[str]) -> str:
    pattern = _receiver_pattern(names)

    def sub(m: re.Match[str]) -> str:
        recv = m.group("recv")
        if recv.split(".")[0] in {"scorer", "bot", "training"}:  # a module path, not an object
            return m.group(0)
        return f"{recv}.{MOVED[m.group('key')]}"

    return pattern.sub(sub, text)


def _call_end(text: str, open_paren: int) -> int:
    """Index just after the parenthesis closing the one at `open_paren`."""
    tokens = text[open_paren:]
    for end in range(1, len(tokens) + 1):
        chunk = tokens[:end]
        if chunk.count("(") == chunk.count(")") and chunk.endswith(")"):
            try:
                ast.parse("f" + chunk, mode="eval")
                return open_paren + end
            except SyntaxError:
                continue
    raise ValueError(f"no closing parenthesis at {open_paren}")


def _kw_source(call: ast.Call, src: str) -> list[str]:
    parts = []
    for kw in call.keywords:
        value = ast.get_source_segment(src, kw.value) or ""
        parts.append(f"**{value}" if kw.arg is None else f"{KW.get(kw.arg, kw.arg)}={value}")
    return parts


def rewrite_replace(text: str, names: set[str]) -> str:
    """`dataclasses.replace(<settings>, k=v)` -> `<settings>.override(group__k=v)`."""
    out, pos = [], 0
    for m in re.finditer(r"(?<![\w.])(?:dataclasses\.)?replace\(", text):
        if m.start() < pos:
            continue
        end = _call_end(text, m.end() - 1)
        src = "f" + text[m.end() - 1:end]
        call = ast.parse(src, mode="eval").body
        assert isinstance(call, ast.Call)
        if len(call.args) != 1 or not _is_settings_expr(ast.get_source_segment(src, call.args[0])
                                                        or "", names):
            continue
        head = f"{ast.get_source_segment(src, call.args[0])}.override("
        column = m.start() - text.rfind("\n", 0, m.start()) - 1 + len(head)
        out += [text[pos:m.start()], head + _wrap(_kw_source(call, src), column) + ")"]
        pos = end
    return "".join(out) + text[pos:]


def _wrap(parts: list[str], column: int, width: int = 100) -> str:
    """Arguments joined by ", ", wrapped under the opening parenthesis past `width`."""
    lines = [""]
    for part in parts:
        piece = f"{part}, "
        if lines[-1] and column + len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return ("\n" + " " * column).join(line.rstrip() for line in lines).rstrip(",")


def drop_unused_dataclasses_import(text: str) -> str:
    if "dataclasses." not in text:
        text = re.sub(r"(?m)^[ \t]*import dataclasses\n", "", text)
    if not re.search(r"(?<![\w.])replace\(", text):
        text = re.sub(r"(?m)^from dataclasses import replace\n", "", text)
    return text


def rewrite_kwargs(text: str) -> str:
    """Old flat keyword names in load_settings(...), Settings(...) and .override(...) calls."""
    out, pos = [], 0
    for m in re.finditer(r"(?:\bload_settings|(?<![\w.])Settings|\.override)\(", text):
        if m.start() < pos:
            continue
        end = _call_end(text, m.end() - 1)
        body = text[m.end():end]
        body = re.sub(rf"(?<![\w.\"'])({FIELDS})(\s*=)(?!=)",
                      lambda k: f"{KW[k.group(1)]}{k.group(2)}", body)
        out += [text[pos:m.end()], body]
        pos = end
    return "".join(out) + text[pos:]


_CLASS_DICT = re.compile(
    r"(?P<x>[\w.]+)\.__class__\(\*\*\{\*\*(?P=x)\.__dict__,\s*(?P<items>[^{}]*)\}\)")


def rewrite_class_dict(text: str) -> str:
    """`X.__class__(**{**X.__dict__, "k": v})` -> `X.override(group__k=v)`."""
    def sub(m: re.Match[str]) -> str:
        items = ast.parse("{" + m.group("items") + "}", mode="eval").body
        assert isinstance(items, ast.Dict)
        src = "{" + m.group("items") + "}"
        kws = [f"{KW.get(k.value, k.value)}={ast.get_source_segment(src, v)}"
               for k, v in zip(items.keys, items.values, strict=True)
               if isinstance(k, ast.Constant)]
        return f"{m.group('x')}.override({', '.join(kws)})"

    return _CLASS_DICT.sub(sub, text)


def rewrite_scoped(text: str) -> str:
    """`scoped["pools"]` -> `scoped.pools` for names bound to get_all_scoped(...)."""
    for name in {m.group(1) for m in _BIND_SCOPED.finditer(text)}:
        text = re.sub(rf"(?<![\w.]){re.escape(name)}\[[\"']({SCOPED_KEYS})[\"']\]",
                      lambda m, n=name: f"{n}.{m.group(1)}", text)
    return text


def rewrite(text: str) -> str:
    names = settings_names(text)
    text = rewrite_class_dict(text)
    text = rewrite_replace(text, names)
    text = rewrite_kwargs(text)
    text = rewrite_attributes(text, names)
    return drop_unused_dataclasses_import(rewrite_scoped(text))


def _files(args: list[str]) -> list[Path]:
    if args:
        return [Path(a).resolve() for a in args]
    return sorted(p for d in DIRS for p in (ROOT / d).rglob("*.py")
                  if p.relative_to(ROOT).as_posix() not in SKIP and ".venv" not in p.parts)


def _show_changes(rel: str, old: str, new: str) -> int:
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{rel}", f"b/{rel}",
                                     n=0, lineterm=""))
    print("\n".join(diff))
    return sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))


def _tidy_imports(paths: list[Path]) -> None:
    """Unused or unsorted imports left by the rewrite: ruff's own fixes, on these files only."""
    ruff = Path(sys.executable).with_name("ruff")
    cmd = [str(ruff) if ruff.exists() else "ruff", "check", "--fix", "--quiet",
           "--select", "F401,I001", *map(str, paths)]
    try:
        subprocess.run(cmd, cwd=ROOT, check=False)
    except FileNotFoundError:
        print("ruff not found: run `ruff check --fix --select F401,I001` on the changed files",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list the changes, write nothing")
    parser.add_argument("files", nargs="*")
    opts = parser.parse_args(argv)
    files_changed = lines_changed = 0
    changed: list[Path] = []
    for path in _files(opts.files):
        old = path.read_text()
        new = rewrite(old)
        if new == old:
            continue
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        lines_changed += _show_changes(rel, old, new)
        files_changed += 1
        changed.append(path)
        if not opts.check:
            path.write_text(new)
    if changed and not opts.check:
        _tidy_imports(changed)
    verb = "would change" if opts.check else "changed"
    print(f"{verb} {lines_changed} lines in {files_changed} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
