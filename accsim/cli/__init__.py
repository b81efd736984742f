"""The ``accsim`` command line (typer). Each command lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="accsim: hardware-accurate accumulator simulation for neural network inference.",
)


def _register() -> None:
    import importlib

    for mod in ("accsim.cli.run", "accsim.cli.verify", "accsim.cli.sweep", "accsim.cli.models",
                "accsim.cli.minilm"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        m.register(app)


_register()

if __name__ == "__main__":  # pragma: no cover
    app()
