"""``python -m accsim.cli``: the ``accsim`` command."""

from accsim.cli import app

app()
