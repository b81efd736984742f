"""What every ``accsim`` command shares: where its output goes and how it looks.

* Results (tables) go to stdout (:func:`out_console`); messages, progress and errors to
  stderr (:func:`err_console`, :func:`info`, :func:`error`).
* ``--quiet`` / ``-q`` silences the messages and progress bars (errors and the tables
  stay); ``--verbose`` / ``-v`` adds details (:func:`detail`). Both are accepted before
  the command (``accsim -q run ...``) and after it (``accsim run ... -q``):
  :class:`AccsimGroup` adds them, and ``--no-progress``, to every command.
* Progress bars only on a terminal (:func:`progress_enabled`).
* ``NO_COLOR`` (https://no-color.org: set and not empty) turns every escape sequence off,
  bold and italic included (rich alone drops only the colours), also in ``--help``.
* Tables wider than the console are split into several tables of the columns that fit,
  each repeating the first (key) column (:func:`fit_columns`), rather than truncating
  every cell.
* Model options take a registry name, a JSON spec or a TOML file (:func:`model_spec`).
"""

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated

import typer
import typer.rich_utils
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

__all__ = ["QUIET", "NORMAL", "VERBOSE", "AccsimGroup", "level", "set_level", "no_color",
           "out_console", "err_console", "info", "detail", "error", "progress_enabled",
           "fit_columns", "print_table", "model_spec", "reset"]

QUIET, NORMAL, VERBOSE = 0, 1, 2
_state = {"level": NORMAL, "progress": True}


def level() -> int:
    """The verbosity of the current command: :data:`QUIET`, :data:`NORMAL` or
    :data:`VERBOSE`."""
    return _state["level"]


def set_level(value: int) -> None:
    _state["level"] = value


def reset(value: int = NORMAL, progress: bool = True) -> None:
    """The state at the start of a command: verbosity ``value``, whether progress bars
    are allowed."""
    _state.update(level=value, progress=progress)


def no_color() -> bool:
    """Whether ``NO_COLOR`` asks for plain text (present and not empty)."""
    return bool(os.environ.get("NO_COLOR"))


def _console(**kw) -> Console:
    if no_color():
        kw.update(color_system=None, no_color=True)
    return Console(highlight=False, **kw)


def out_console(**kw) -> Console:
    """The console of results (stdout): tables, listings."""
    return _console(**kw)


def err_console(**kw) -> Console:
    """The console of messages and progress (stderr), silent with ``--quiet``."""
    kw.setdefault("quiet", level() == QUIET)
    kw.setdefault("soft_wrap", True)  # a message is never broken inside a word or path
    return _console(stderr=True, **kw)


def info(msg: str, *, markup: bool = True) -> None:
    """A message on stderr (not with ``--quiet``), never broken inside a word or path."""
    err_console().print(msg, markup=markup, soft_wrap=True)


def detail(msg: str, *, markup: bool = False) -> None:
    """A message on stderr with ``--verbose`` only."""
    if level() >= VERBOSE:
        err_console().print(msg, markup=markup, soft_wrap=True)


def error(msg: str, *, label: str = "error") -> None:
    """``error: MSG`` on stderr, whatever the verbosity; ``msg`` is printed as is
    (never read as markup)."""
    text = Text(f"{label}:", style="red")
    text.append(" " + str(msg), style="")
    _console(stderr=True).print(text, soft_wrap=True)


def progress_enabled(console: Console) -> bool:
    """Progress bars only on a terminal, and not with ``--quiet`` or ``--no-progress``."""
    return level() > QUIET and _state["progress"] and console.is_terminal


def _cell_width(cell) -> int:
    if isinstance(cell, Text):
        return max((cell_len(line) for line in cell.plain.splitlines()), default=0)
    if isinstance(cell, str):
        plain = Text.from_markup(cell).plain
        return max((cell_len(line) for line in plain.splitlines()), default=0)
    return 8


def fit_columns(table: Table, width: int) -> list[Table]:
    """``table`` itself if its columns fit in ``width`` cells, else several tables of
    the columns that fit side by side, each starting with the first (key) column; the
    title stays on the first, the caption on the last."""
    cols = table.columns
    pad = 3  # one space either side and one border per column
    widths = [max(_cell_width(c.header), *(_cell_width(x) for x in c.cells), 1) + pad
              for c in cols]
    if len(cols) < 3 or sum(widths) + 1 <= width:
        return [table]
    groups, cur, used = [], [], 1 + widths[0]
    for i in range(1, len(cols)):
        if cur and used + widths[i] > width:
            groups.append(cur)
            cur, used = [], 1 + widths[0]
        cur.append(i)
        used += widths[i]
    groups.append(cur)
    out = []
    cells = [list(c.cells) for c in cols]
    for g, idx in enumerate(groups):
        t = Table(title=table.title if g == 0 else None,
                  caption=table.caption if g == len(groups) - 1 else None,
                  box=table.box, show_lines=table.show_lines, show_header=table.show_header)
        for i in (0, *idx):
            c = cols[i]
            t.add_column(c.header, justify=c.justify, style=c.style,
                         header_style=c.header_style, overflow="fold")
        for r in range(table.row_count):
            t.add_row(*(cells[i][r] for i in (0, *idx)))
        out.append(t)
    return out


def print_table(table: Table, console: Console | None = None) -> None:
    """Print ``table`` on ``console`` (default: stdout), split to fit its width."""
    console = console or out_console()
    for t in fit_columns(table, console.width):
        console.print(t)


def model_spec(text: str, option: str = "--model"):
    """A model from a command-line option: a registry name (``fp16-recursive-rne``,
    ``hopper:wgmma.m64n8k32.f32.e4m3.e4m3``), a JSON object
    (``{"family": "recursive", "acc_format": "binary16"}``) or a TOML file holding
    one model table (top-level keys, or one ``[model]`` / ``[models.NAME]`` table), as in
    a run configuration's ``[models.NAME]``. Formats may be tables
    (:func:`accsim.run.formatspec.materialize`). ``ValueError`` names the option."""
    import hwmodels
    from accsim.run.formatspec import materialize

    text = str(text).strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{option}: not valid JSON ({exc.msg} at column "
                             f"{exc.colno})") from None
    elif text.lower().endswith(".toml"):
        path = Path(text)
        try:
            doc = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ValueError(f"{option}: cannot read {text!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{option}: {text}: {exc}") from None
        spec = doc
        if "family" not in doc:
            tables = doc.get("models", {}) if "model" not in doc else {"model": doc["model"]}
            if len(tables) != 1:
                raise ValueError(f"{option}: {text} must hold one model: top-level keys with "
                                 f"'family', or one [model] or [models.NAME] table")
            spec = next(iter(tables.values()))
    else:
        return hwmodels.resolve(text)
    if not isinstance(spec, dict) or "family" not in spec:
        raise ValueError(f"{option}: a model spec is an object with a 'family' key, got "
                         f"{text[:60]!r}")
    try:
        return hwmodels.resolve(materialize(spec))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{option}: {exc}") from None


# ------------------------------------------------------------------- common options
def _set_quiet(value: bool) -> None:
    if value:
        set_level(QUIET)


def _set_verbose(value: bool) -> None:
    if value:
        set_level(VERBOSE)


def _set_no_progress(value: bool) -> None:
    if value:
        _state["progress"] = False


def _options_template(
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", callback=_set_quiet,
        help="Only results and errors: no messages, no progress bars.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", callback=_set_verbose, help="More details on stderr.")] = False,
    no_progress: Annotated[bool, typer.Option(
        "--no-progress", callback=_set_no_progress,
        help="No progress bar (there is none off a terminal anyway).")] = False,
) -> None:  # pragma: no cover - never called: its options are copied to every command
    pass


def common_options() -> list:
    """``-q/--quiet``, ``-v/--verbose`` and ``--no-progress`` (typer's own options, built from
    ``_options_template``), not passed to the command: they set :func:`level`."""
    tmp = typer.Typer(add_completion=False)
    tmp.command()(_options_template)
    params = typer.main.get_command(tmp).params
    for p in params:
        p.expose_value = False
    return params


class AccsimGroup(TyperGroup):
    """The ``accsim`` command group: every command gets ``--quiet`` and ``--verbose``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for cmd in self.commands.values():
            _add_common(cmd)

    def add_command(self, cmd, name=None):
        _add_common(cmd)
        super().add_command(cmd, name)


def _add_common(cmd) -> None:
    have = {o for p in cmd.params for o in p.opts}
    for opt in common_options():
        if not set(opt.opts) & have:
            cmd.params.append(opt)


def plain_help() -> None:
    """``--help`` without escape sequences under ``NO_COLOR`` (typer's rich help)."""
    if no_color():
        typer.rich_utils.COLOR_SYSTEM = None
