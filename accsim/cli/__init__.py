"""The ``accsim`` command line (typer). Each command lives in its own module; what they
share (stdout / stderr, ``--quiet`` / ``--verbose``, ``NO_COLOR``, tables that fit the
terminal) is in :mod:`accsim.cli.console`."""

from __future__ import annotations

from typing import Annotated

import typer

from accsim.cli import console

app = typer.Typer(
    cls=console.AccsimGroup,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="accsim: hardware-accurate accumulator simulation for neural network inference.",
)


def _version(value: bool) -> None:
    if value:
        from accsim import __version__

        typer.echo(f"accsim {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
    = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only results and errors: no messages, no progress bars.")]
    = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="More details on stderr.")] = False,
    no_progress: Annotated[bool, typer.Option(
        "--no-progress", help="No progress bars (there are none off a terminal anyway).")]
    = False,
) -> None:
    """accsim: hardware-accurate accumulator simulation for neural network inference.

    Results (tables) go to stdout, messages and progress to stderr; NO_COLOR is honoured.
    """
    console.reset(console.QUIET if quiet else console.VERBOSE if verbose
                  else console.NORMAL, progress=not no_progress)
    console.plain_help()


def _register() -> None:
    import importlib

    for mod in ("accsim.cli.run", "accsim.cli.verify", "accsim.cli.sweep", "accsim.cli.models",
                "accsim.cli.minilm", "accsim.cli.examples"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        m.register(app)


console.plain_help()
_register()

if __name__ == "__main__":  # pragma: no cover
    app()
