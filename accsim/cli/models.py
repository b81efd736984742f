"""``accsim models [ARCH]``: list the registered accumulator models."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register", "models_table"]


def models_table(arch: str | None = None, pattern: str | None = None) -> list[tuple[str, str]]:
    """Rows ``(name, description)`` of the registered models.

    Without ``arch``: every generic model plus one row per architecture with its count
    of instructions; with a ``pattern`` too, every model (generic or
    ``ARCH:INSTRUCTION``) whose name or instruction part matches it. With ``arch``:
    every instruction of that architecture (optionally filtered by a shell-style
    ``pattern``).
    """
    import fnmatch

    import hwmodels

    names = hwmodels.available()
    if arch is None and pattern:
        # every model whose name, or instruction part, matches
        return [(n, _summary(hwmodels.get(n)) if ":" not in n else "") for n in names
                if fnmatch.fnmatch(n, pattern)
                or (":" in n and fnmatch.fnmatch(n.split(":", 1)[1], pattern))]
    if arch is None:
        rows = []
        for name in names:
            if ":" not in name:
                rows.append((name, _summary(hwmodels.get(name))))
        archs: dict[str, int] = {}
        for name in names:
            if ":" in name:
                a = name.split(":", 1)[0]
                archs[a] = archs.get(a, 0) + 1
        for a, count in archs.items():
            rows.append((f"{a}:*", f"{count} instructions (accsim models {a})"))
        return rows
    inst = [n for n in names if n.startswith(arch + ":")]
    if not inst:
        known = sorted({n.split(":", 1)[0] for n in names if ":" in n})
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(known)}")
    if pattern:
        inst = [n for n in inst if fnmatch.fnmatch(n.split(":", 1)[1], pattern)]
    return [(n, "") for n in inst]


_KEYS = ("acc_format", "inner_format", "outer_format", "block", "chunk", "product",
         "out_format", "mode", "sr_bits")


def _summary(model) -> str:
    """``family: key=value, ...`` of the parameters a designer looks at first."""
    d = model.describe()
    parts = [f"{k}={d[k]}" for k in _KEYS if k in d and d[k] not in ("none", None)]
    return f"{d.get('family', '?')}: " + ", ".join(parts)


def register(app: typer.Typer) -> None:
    """Add the ``models`` command to the accsim typer app."""

    @app.command("models", epilog="Examples: accsim models; accsim models hopper; "
                 "accsim models ampere --match 'mma.m16n8k16.*'")
    def models(
        arch: Annotated[str | None, typer.Argument(
            help="Architecture to list (volta ... cdna3); omit for an overview.")] = None,
        match: Annotated[str | None, typer.Option(
            "--match", help="Shell-style filter on instruction names.")] = None,
    ) -> None:
        """List registered accumulator models (generic names and ARCH:INSTRUCTION)."""
        from rich.table import Table

        from accsim.cli.console import error, print_table

        try:
            rows = models_table(arch, match)
        except ValueError as exc:
            error(str(exc))
            raise typer.Exit(2) from None
        if match and not rows:
            error(f"no model matches {match!r}")
            raise typer.Exit(1)
        table = Table(title="accsim models" + (f": {arch}" if arch else ""))
        table.add_column("name")
        if arch is None:
            table.add_column("description")
        for name, desc in rows:
            table.add_row(name, desc) if arch is None else table.add_row(name)
        print_table(table)
