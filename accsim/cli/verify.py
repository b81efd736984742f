"""``accsim verify``: check a model's error bound on random and ill-conditioned dot
products of several lengths and condition numbers.

For hardware models (``ARCH:INSTRUCTION``) every requested n is rounded UP to a multiple
of the instruction's k (the hardware only chains whole instructions; the dataset's ``n``
coordinate holds the lengths actually used and the attribute ``n_requested`` the
request). Inputs are generated in the model's input formats (binary32 where a generic
model leaves them open); the addend c is 0.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

__all__ = ["register", "verify_command", "parse_sizes", "parse_kappas", "summary_table"]

_EXTS = (".zarr", ".nc")
#: Longest dot product ``--n`` accepts (the generator keeps exact running sums).
MAX_N = 1 << 22
#: Most dot products one verify run computes (``len(n) * len(kappa) * samples``).
MAX_DOTS = 1_000_000


def parse_sizes(text: str) -> list[int]:
    """Comma-separated positive integers."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            v = int(part)
        except ValueError:
            raise ValueError(f"--n: {part!r} is not an integer (give e.g. 16,64,256)") from None
        if v <= 0:
            raise ValueError(f"--n: sizes must be positive, got {v}")
        if v > MAX_N:
            raise ValueError(f"--n: {v} exceeds the limit of {MAX_N} (2**22) terms per dot "
                             "product")
        out.append(v)
    if not out:
        raise ValueError("--n: give at least one size")
    return out


def parse_kappas(text: str) -> list[float]:
    """Comma-separated condition numbers >= 1."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            v = float(part)
        except ValueError:
            raise ValueError(f"--kappa: {part!r} is not a number (give e.g. 1,1e3,1e6)") \
                from None
        if not (math.isfinite(v) and v >= 1):
            raise ValueError(f"--kappa: condition numbers must be finite and >= 1, got {part}")
        out.append(v)
    if not out:
        raise ValueError("--kappa: give at least one condition number")
    return out


def _resolve(name: str):
    from accsim.cli.console import model_spec

    return model_spec(name, "--model")


def _formats(model):
    from accsim.numbers.formats import format as get_format

    acc = getattr(model, "accumulator", model)
    fa = acc.a_format or get_format("binary32")
    fb = acc.b_format or get_format("binary32")
    return fa, fb


def _check_out(out: Path) -> Path:
    from accsim.run.datasets import check_writable

    if out.suffix.lower() not in _EXTS:
        raise ValueError(f"--out must end in .zarr or .nc, got {str(out)!r}")
    return check_writable(out)


def summary_table(ds):
    """rich Table: per n and kappa the achieved kappa, max relative error, max
    error/bound ratio (over finite bounds), the number of infinite bounds (an overflow
    was possible) and the number of violations."""
    from rich.table import Table

    t = Table(title=f"accsim verify: {ds.attrs.get('model', '')} ({ds.attrs.get('kind', '')})")
    for c in ("n", "kappa", "achieved kappa (median)", "max rel error", "max error/bound",
              "inf bounds", "violations"):
        t.add_column(c, justify="right")
    err = ds["abs_error"].values
    bnd = ds["bound"].values
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / bnd)
    ratio = np.where(np.isinf(bnd), np.nan, ratio)  # vacuous (overflow possible)
    for a, n in enumerate(ds["n"].values):
        for b, kap in enumerate(ds["kappa"].values):
            viol = int((~ds["holds"].values[a, b]).sum())
            r = ratio[a, b]
            rs = f"{np.nanmax(r):.3e}" if np.isfinite(r).any() else "-"
            t.add_row(str(int(n)), f"{kap:g}", f"{np.median(ds['kappa_v'].values[a, b]):.3g}",
                      f"{np.max(ds['rel_error'].values[a, b]):.3e}", rs,
                      str(int(np.isinf(bnd[a, b]).sum())),
                      f"[red]{viol}[/red]" if viol else "0")
    return t


def verify_command(model_name: str, n: str, kappa: str, samples: int, seed: int, out: Path,
                   kind: str = "deterministic", plot: bool = True, console=None,
                   force: bool = False):
    """Validate everything, run, write the dataset (and PNG); returns (dataset, path).

    Only an earlier verify run of the same parameters at ``out`` is replaced without
    ``force`` (:func:`accsim.run.outputs.check_replace`); ``out`` is locked for the run and
    published atomically. ``model_name`` is a registry name, a JSON spec or a TOML file
    (:func:`accsim.cli.console.model_spec`). The table goes to stdout, messages to
    ``console`` (default: stderr)."""
    from accsim.accumulators import bounds
    from accsim.cli.console import err_console

    console = console or err_console()
    # ---- validation: nothing is computed or written before all of this passes
    sizes = parse_sizes(n)
    kappas = parse_kappas(kappa)
    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    n_dots = len(sizes) * len(kappas) * samples
    if n_dots > MAX_DOTS:
        raise ValueError(f"--n x --kappa x --samples asks for {n_dots} dot products; the "
                         f"limit is {MAX_DOTS}")
    from accsim.numbers.seeds import check_seed

    seed = check_seed(seed, "--seed")
    if kind not in bounds.KINDS:
        raise ValueError(f"--kind must be one of {', '.join(bounds.KINDS)}, got {kind!r}")
    out = _check_out(Path(out))
    model = _resolve(model_name)
    from accsim.run.outputs import (
        OutputLock,
        check_replace,
        check_target,
        clean_leftovers,
        config_digest,
    )

    digest = config_digest({"model": model_name, "n": sizes, "kappa": kappas,
                            "samples": samples, "seed": seed, "kind": kind})
    with OutputLock(out, "--out"):
        clean_leftovers(out)  # first: puts back a unit killed while being published
        clean_leftovers(out.with_suffix(".png"))
        check_replace(out, "verify", digest, force=force, option="--out")
        if plot:
            check_target(out.with_suffix(".png"), "verify", option="the plot")
        return _verify_locked(model, model_name, sizes, kappas, samples, seed, out, kind,
                              plot, console, digest)


def _verify_locked(model, model_name, sizes, kappas, samples, seed, out, kind, plot,
                   console, digest):
    from accsim.analysis.verify import gen_dot, verify
    from accsim.numbers.seeds import derive
    from accsim.run import datasets

    k_inst = int(getattr(model, "k", 1) or 1)
    used = sorted({-(-s // k_inst) * k_inst for s in sizes})
    if used != sorted(set(sizes)):
        console.print(f"note: n rounded up to multiples of the instruction's k={k_inst}: "
                      f"{used}")
    fa, fb = _formats(model)

    shape = (len(used), len(kappas), samples)
    names = ("computed", "exact", "abs_error", "rel_error", "bound", "kappa_v")
    arrs = {v: np.empty(shape) for v in names}
    holds = np.empty(shape, bool)
    rechecked = np.empty(shape, bool)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for a, nn in enumerate(used):
        for b, kap in enumerate(kappas):
            for s in range(samples):
                x, y, kach = gen_dot(nn, kap, rng, fa, fb)
                r = verify(model, x[None, :], y[:, None], seed=derive(seed, s), kind=kind)
                for v in names[:-1]:
                    arrs[v][a, b, s] = getattr(r, v)[0, 0]
                arrs["kappa_v"][a, b, s] = kach
                holds[a, b, s] = r.holds[0, 0]
                rechecked[a, b, s] = r.rechecked[0, 0]
    secs = time.perf_counter() - t0
    dims = ("n", "kappa", "sample")
    data = {v: (dims, arrs[v]) for v in names}
    data["holds"] = (dims, holds)
    data["rechecked"] = (dims, rechecked)
    attrs = {"kind": kind, "a_format": fa.name, "b_format": fb.name, "c": 0.0,
             "n_requested": ",".join(str(s) for s in sizes), "instruction_k": k_inst,
             "generator": "Ogita-Rump-Oishi GenDot (accsim.analysis.verify.gen_dot)",
             "seconds": secs, "violations": int((~holds).sum()),
             "accsim_kind": "verify", "config_sha256": digest}
    ds = datasets.make_dataset(
        data, {"n": np.asarray(used), "kappa": np.asarray(kappas),
               "sample": np.arange(samples)}, model=model, attrs=attrs, seed=seed)
    ds.attrs["model"] = str(getattr(model, "name", model_name))
    from accsim.run.outputs import Unit, stamp_png

    with Unit(out, "verify") as unit:  # the dataset and its PNG, published as one unit
        datasets.save(ds, out, unit=unit)
        if plot:
            from accsim.plots.verify import save_plot

            png = unit.stage(out.with_suffix(".png"))
            save_plot(ds, png)
            stamp_png(png, "verify")
        unit.publish()
    from accsim.cli.console import detail, print_table

    detail(f"model: {model!r}")
    print_table(summary_table(ds))
    if plot:
        console.print(f"plot: {out.with_suffix('.png')}")
    nv = int((~holds).sum())
    msg = f"[red]{nv} bound violation(s)[/red]" if nv else "no bound violations"
    console.print(f"{msg}; {holds.size} dot products in {secs:.1f} s; results: {out}")
    return ds, out


_EPILOG = (
    "Examples:" "\n\n"
    "accsim verify -m fp16-recursive-rne -o v.zarr --n 16,256,4096 --kappa 1,1e6" "\n\n"
    "accsim verify -m hopper:wgmma.m64n8k32.f32.e4m3.e4m3 -o h.nc --samples 20" "\n\n"
    "Hardware models round n up to a multiple of the instruction's k. Writes the dataset and "
    "OUT with suffix .png; an earlier verify dataset of the same parameters at OUT is replaced "
    "atomically, one of other parameters only with --force, anything else never. Exit code "
    "2 on bad input (nothing is written), 3 when another process writes OUT, 0 otherwise "
    "(violations are reported in the table)."
)


def register(app: typer.Typer) -> None:
    """Add the ``verify`` command to the accsim typer app."""

    @app.command("verify", epilog=_EPILOG)
    def verify(
        model: Annotated[str, typer.Option(
            "--model", "-m", help="ARCH:INSTRUCTION, a generic model name, a JSON spec "
            "('{\"family\": \"recursive\", \"acc_format\": \"binary16\"}') or a TOML "
            "file holding one model table.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output dataset (.zarr/.nc).")],
        n: Annotated[str, typer.Option(help="Comma-separated lengths.")] = "16,64,256,1024,4096",
        kappa: Annotated[str, typer.Option(help="Comma-separated condition numbers >= 1.")]
        = "1,1e3,1e6",
        samples: Annotated[int, typer.Option(help="Dot products per (n, kappa).")] = 10,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        kind: Annotated[str, typer.Option(help="deterministic or probabilistic.")]
        = "deterministic",
        plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Save a PNG.")] = True,
        force: Annotated[bool, typer.Option(
            "--force", help="Replace an accsim verify dataset of other parameters at OUT "
            "(never other files).")] = False,
    ) -> None:
        """Verify a model's componentwise error bound against exact results."""
        from accsim.cli.console import error
        from accsim.run.outputs import OutputBusy

        try:
            _, _ = verify_command(model, n, kappa, samples, seed, out, kind, plot,
                                  force=force)
        except OutputBusy as exc:
            error(str(exc))
            raise typer.Exit(code=3) from None
        except ValueError as exc:
            error(str(exc))
            raise typer.Exit(code=2) from None
        except OSError as exc:  # e.g. the disk filled up while writing
            error(f"cannot write the results: {exc}; the previous output (if any) is "
                  "unchanged")
            raise typer.Exit(code=1) from None
