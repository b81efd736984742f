"""Line numbers of TOML keys, for error messages that point into a config file.

``tomllib`` keeps no positions; :func:`key_lines` is a light scanner used by both the
single-run config (:mod:`accsim.run.config`) and the sweep config
(:mod:`accsim.batch.config`), so neither imports the other.
"""

from __future__ import annotations

import re

__all__ = ["key_lines", "split_key", "parse_key", "where"]


def split_key(text: str) -> list[str]:
    """Split a TOML (dotted, possibly quoted) key."""
    out, cur, q = [], "", None
    for ch in text.strip():
        if q:
            if ch == q:
                q = None
            else:
                cur += ch
        elif ch in "\"'":
            q = ch
        elif ch == ".":
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def key_lines(text: str) -> dict[tuple, int]:
    """Map TOML key paths (as tuples, array indices as ints) to their 1-based lines.

    A light scanner (tomllib keeps no positions): tables, arrays of tables, ``key =``
    lines and the elements of a key's array value (also across lines).
    """
    lines: dict[tuple, int] = {}
    aot: dict[tuple, int] = {}
    table: tuple = ()
    value_path: tuple = ()
    depth, elem, quote, expect, is_array = 0, 0, "", False, False

    def resolve(raw):
        out, prefix = [], ()
        for part in raw:
            prefix += (part,)
            out.append(part)
            if prefix in aot:
                out.append(aot[prefix])
        return tuple(out)

    for n, line in enumerate(text.splitlines(), 1):
        i = 0
        if depth == 0 and not quote:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if s.startswith("[["):
                raw = tuple(split_key(s[2:s.find("]]")]))
                aot[raw] = aot.get(raw, -1) + 1
                table = resolve(raw)
                lines.setdefault(table[:-1], n)
                lines.setdefault(table, n)
                continue
            if s.startswith("["):
                table = resolve(tuple(split_key(s[1:s.find("]")])))
                lines.setdefault(table, n)
                continue
            if "=" not in s:
                continue
            eq = line.index("=")
            value_path = table + tuple(split_key(line[:eq]))
            lines.setdefault(value_path, n)
            i, elem, expect, is_array = eq + 1, 0, False, False
        while i < len(line):
            ch = line[i]
            if quote:
                if line.startswith(quote, i):
                    i += len(quote) - 1
                    quote = ""
                elif ch == "\\" and quote[0] == '"':
                    i += 1
                i += 1
                continue
            if ch == "#":
                break
            if depth == 1 and is_array and expect and not ch.isspace() and ch not in ",]":
                lines.setdefault(value_path + (elem,), n)
                expect = False
            if ch in "\"'":
                quote = line[i:i + 3] if line[i:i + 3] in ('"""', "'''") else ch
                i += len(quote) - 1
            elif ch in "[{":
                depth += 1
                if depth == 1:
                    is_array, elem, expect = ch == "[", 0, ch == "["
            elif ch in "]}":
                depth -= 1
            elif ch == "," and depth == 1 and is_array:
                elem += 1
                expect = True
            i += 1
        if len(quote) == 1:
            quote = ""
    return lines


def parse_key(key: str) -> tuple:
    """``"strategies[2].model"`` -> ``("strategies", 2, "model")``."""
    out: list = []
    for name, idx in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key):
        out.append(int(idx) if idx else name)
    return tuple(out)


def where(source: str, lines: dict, key: str) -> str:
    """``"FILE:LINE: key"`` for a key path such as ``"strategies[2].model"``: the line of
    the longest prefix of the key found in ``lines`` (:func:`key_lines`); no line for a
    key not in the file (dict input)."""
    path = parse_key(key)
    line = None
    for k in range(len(path), 0, -1):
        if path[:k] in lines:
            line = lines[path[:k]]
            break
    return f"{source}{'' if line is None else f':{line}'}: {key}"
