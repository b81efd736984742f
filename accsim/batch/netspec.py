"""The networks of a sweep besides the shipped ones (``[networks.NAME]`` tables).

A table names a layer graph (``format`` = ``"torch"``, ``"h5"``, ``"pth"`` or
``"npz"``, the keys of the ``[network]`` table of an ``accsim run`` graph config) with
its inputs (the keys of an ``[inputs]`` table) and run settings. A grid's ``network``
axis names it like a shipped network; its cells run
:func:`accsim.batch.graph_cell.evaluate_graph` with the same strategy vocabulary and write the
same store schema.

:func:`network_specs` turns the tables into the specs the cells carry (paths resolved
against the config's folder; the SHA-256 of every file is part of the spec, hence of
the cell id, so a changed model or input file gives new cells instead of reusing stale
results); :func:`check_networks` loads every network a cell uses, once, before any cell
runs (the torch lowering checked, the inputs checked against the network), raising
:class:`~accsim.batch.config.ConfigError` at ``FILE:LINE: networks.NAME.KEY``.
:func:`evaluate_cell` is the sweep's default cell function: a cell with a ``graph``
spec goes to :func:`~accsim.batch.graph_cell.evaluate_graph`, any other to
:func:`accsim.run.experiment.evaluate`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from accsim.batch.config import Locator, SweepConfig

__all__ = ["check_networks", "check_samples", "evaluate_cell", "network_specs"]


def evaluate_cell(**kwargs) -> dict:
    """One sweep cell: :func:`accsim.batch.graph_cell.evaluate_graph` for a cell with a
    ``graph`` spec (a ``[networks.NAME]`` layer graph),
    :func:`accsim.batch.minilm_cell.evaluate_minilm` for a ``minilm`` spec, else
    :func:`accsim.run.experiment.evaluate` (a shipped network)."""
    if kwargs.get("graph") is not None:
        from accsim.batch.graph_cell import evaluate_graph

        return evaluate_graph(**kwargs)
    if kwargs.get("minilm") is not None:
        from accsim.batch.minilm_cell import evaluate_minilm

        return evaluate_minilm(**kwargs)
    from accsim.run.experiment import evaluate

    return evaluate(**kwargs)


def _resolve(file: str, base: Path) -> tuple[str, str]:
    """``(absolute path, sha256 of the file)``; a torch ``FILE.py:FUNC`` keeps its
    ``:FUNC``; ``pkg:`` files are resolved too (the cells then need no lookup)."""
    from accsim.graph.config import resolve_file

    func = ""
    if ":" in file and not file.startswith("pkg:") and file.rsplit(":", 1)[0].endswith(".py"):
        file, func = file.rsplit(":", 1)
    p = resolve_file(file, base)  # ValueError: no such file / package
    try:
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError as exc:
        raise ValueError(f"cannot read {str(p)!r}: {exc.strerror}") from None
    return str(p.resolve()) + (f":{func}" if func else ""), digest


def network_specs(cfg: SweepConfig, loc: Locator) -> dict[str, dict]:
    """``{name: spec}`` of the ``[networks]`` tables (the ``graph`` argument of
    :func:`accsim.batch.graph_cell.evaluate_graph`); a missing file is a ConfigError."""
    base = Path(loc.file).resolve().parent if loc.file else Path.cwd()
    out = {}
    for name, t in cfg.networks.items():
        spec = t.model_dump(exclude_none=True)
        spec["name"] = name
        if t.format == "minilm":
            if t.text_file is not None:
                try:
                    spec["text_file"], spec["text_sha256"] = _resolve(t.text_file, base)
                except ValueError as exc:
                    raise loc.error(("networks", name, "text_file"), str(exc)) from None
            out[name] = spec
            continue
        try:
            spec["file"], spec["sha256"] = _resolve(t.file, base)
        except ValueError as exc:
            raise loc.error(("networks", name, "file"), str(exc)) from None
        if t.inputs.file is not None:
            try:
                spec["inputs"]["file"], spec["inputs"]["sha256"] = _resolve(t.inputs.file,
                                                                            base)
            except ValueError as exc:
                raise loc.error(("networks", name, "inputs", "file"), str(exc)) from None
        out[name] = spec
    return out


def check_networks(specs: dict[str, dict], used: set[str], loc: Locator,
                   shipped: list[str] | None) -> dict[str, int]:
    """Load every network in ``used`` (graph and inputs, once per process) and return
    ``{name: number of inputs}``; a table named like a shipped network is refused (it
    would shadow it), as are formats and files the network cannot use."""
    from accsim.batch.graph_cell import spec_graph, spec_inputs
    from accsim.numbers.formats import format as get_format

    for name in specs:
        if shipped and name in shipped:
            raise loc.error(("networks", name), f"the table name {name!r} is a shipped "
                            "network's name; rename the table (it would shadow it)")
    sizes = {}
    for name in sorted(used & set(specs)):
        spec = specs[name]
        if spec["format"] == "minilm":
            from accsim.batch.minilm_cell import minilm_inputs

            try:
                sizes[name] = minilm_inputs(spec)
            except ValueError as exc:
                raise loc.error(("networks", name, "text_file" if "text_file" in spec
                                 else "sentences"), str(exc)) from None
            continue
        for key in ("input_format", "activation_format"):
            try:
                get_format(spec.get(key, "binary32"))
            except ValueError as exc:
                raise loc.error(("networks", name, key), str(exc)) from None
        try:
            spec_graph(spec)
        except ValueError as exc:
            raise loc.error(("networks", name, "file"), str(exc)) from None
        try:
            x, _ = spec_inputs(spec)
        except ValueError as exc:
            raise loc.error(("networks", name, "inputs"),
                            str(exc).removeprefix("inputs: ")) from None
        sizes[name] = len(x)
    return sizes


def check_samples(values: list, path: tuple, listed: bool, sizes: dict, names: list[str],
                  loc: Locator) -> None:
    """A ``samples`` value larger than the inputs of one of ``names`` is an error
    (0 or None: all of them)."""
    for name in names:
        if name not in sizes:
            continue
        for i, v in enumerate(values):
            if isinstance(v, int) and v > sizes[name]:
                raise loc.error(path + (i,) if listed else path,
                                f"samples = {v} exceeds the {sizes[name]} inputs of "
                                f"network {name!r}; use 0 for all of them")
