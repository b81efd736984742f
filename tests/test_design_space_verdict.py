"""scripts/design_space_verdict.py --runs: the design-space verdict of run datasets.

A synthetic run dataset with known per-image errors: the rows read back from its
comparison family must name the right comparator, carry the family's raw and Holm p,
pick the most accurate affordable uniform row, and place the adaptive row on the Pareto
front exactly under the cost models where no implementable row dominates it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

N = 300


def _dataset():
    import xarray as xr

    from accsim.analysis.stats import comparison_family, family_variables

    rng = np.random.default_rng(7)
    base = rng.lognormal(0.0, 0.3, N)
    # label, kind, matched_to, log10 error level, bits, energy, h100, tiles
    spec = [("uniform-lo", "uniform", "", -1.0, 1.0, 1.0, 1.0, 1.0),
            ("uniform-mid", "uniform", "", -2.0, 3.0, 2.0, 2.0, 2.0),
            ("uniform-hi", "uniform", "", -4.0, 10.0, 3.0, 3.0, 3.0),
            ("ad", "adaptive", "", -2.5, 5.0, 5.0, 2.5, 2.5),
            ("random@ad", "random", "ad", -1.5, 4.0, 4.0, 2.0, 2.0),
            ("random-active@ad", "random-active", "ad", -2.2, 4.0, 4.0, 2.0, 2.0),
            ("oracle@ad", "oracle", "ad", -3.0, 4.0, 4.0, 2.0, 2.0)]
    err = np.array([base * 10.0**s[3] for s in spec])
    err[3] *= rng.lognormal(0.0, 0.05, N)  # the adaptive row: paired noise
    agree = np.ones((len(spec), N), bool)
    agree[0, :20] = False
    rows = [{"label": s[0], "kind": s[1], "matched_to": s[2], "cost": s[4],
             "error": err[i], "agree": agree[i], "correct": agree[i]}
            for i, s in enumerate(spec)]
    comps = comparison_family(rows)
    data, attrs = family_variables(comps)
    ds = xr.Dataset(
        {**data,
         "strategy_kind": ("strategy", np.array([s[1] for s in spec])),
         "logit_rel_error": (("strategy", "sample"), err),
         "recomputed_fraction": ("strategy", np.array([0, 0, 0, .3, .3, .3, .3], float)),
         "bit_cost": ("strategy", np.array([s[4] for s in spec])),
         "energy_pj": ("strategy", np.array([s[5] for s in spec])),
         "h100_time_ns": ("strategy", np.array([s[6] for s in spec])),
         "h100_tile_time_ns": ("strategy", np.array([s[7] for s in spec]))},
        coords={"strategy": [s[0] for s in spec]},
        attrs={**attrs, "network": "synthetic", "n_samples": N, "run_seconds": 1.0})
    return ds, comps


def test_run_rows_read_the_comparison_family():
    import design_space_verdict as dsv

    ds, comps = _dataset()
    rows, head = dsv.run_rows(ds)
    assert [r["row"] for r in rows] == ["ad"]
    r = rows[0]
    c = r["cmp"]
    ra = r["rel"]["random-active"]
    assert str(c["other"][ra]) == "random-active@ad"
    want = next(x for x in comps if x["relation"] == "random-active")
    assert c["median_log10_diff"][ra] == want["median_log10_diff"]
    assert c["p_wilcoxon"][ra] == want["p_wilcoxon"]
    assert c["p_wilcoxon_holm"][ra] == want["p_wilcoxon_holm"]
    # about -0.3 decades against random-active, Holm-significant at n = 300
    assert -0.35 < c["median_log10_diff"][ra] < -0.25
    assert c["p_wilcoxon_holm"][ra] < 0.01
    assert c["p_wilcoxon_holm"][ra] >= c["p_wilcoxon"][ra]
    # the affordable uniform rows are lo (1 bit) and mid (3 bits); mid is more accurate;
    # hi (10 bits) is not affordable at 5 bits
    assert str(c["other"][r["best_uniform"]]) == "uniform-mid"
    # bits: ad (5, -2.5) is not dominated (hi costs 10); energy: uniform-mid (2, -2.0)
    # is cheaper but less accurate, uniform-hi (3, -4.0) dominates ad (5, -2.5)
    assert r["front"] == ["bits", "H100", "H100 tiles"]
    assert head["n"] == N and head["m"] == ds.attrs["comparison_family_size"]
    assert head["mdd"][0] <= head["mdd"][1]


def test_print_runs_prints_raw_and_holm_p(monkeypatch, capsys):
    import design_space_verdict as dsv

    ds, _ = _dataset()
    monkeypatch.setattr("accsim.run.datasets.load", lambda path: ds)
    assert dsv.main(["--runs", "x.zarr", "y.zarr"]) == 0
    out = capsys.readouterr().out
    assert out.count("**synthetic**") == 2
    line = next(x for x in out.splitlines() if x.startswith("| ad |"))
    cells = [x.strip() for x in line.strip("|").split("|")]
    assert cells[3].startswith("**-0.") and ";" in cells[3]  # diff (raw p; Holm p)
    assert cells[8].startswith("mid: ")
    assert cells[9] == "bits, H100, H100 tiles"


def test_compact_table_and_counts(monkeypatch, capsys):
    import design_space_verdict as dsv

    ds, _ = _dataset()
    monkeypatch.setattr("accsim.run.datasets.load", lambda path: ds)
    assert dsv.main(["--runs", "--compact", "x.zarr", "y.zarr"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("| ad |"))
    assert line.count("**-0.") == 4 and line.count("mid **-0.5") == 2
    counts = [x for x in out.splitlines() if x.startswith("* synthetic")]
    assert len(counts) == 2
    assert ("of 1 points, 1 beat random-active on output error, 0 lose to it, 0 beat "
            "it on agreement; 1 beat the best affordable uniform row") in counts[0]
    assert "bits 1, energy 0, H100 1, H100 tiles 1" in counts[0]


def test_p_formatting():
    import design_space_verdict as dsv

    assert dsv._p(0.0) == "< 1e-300"
    assert dsv._p(float("nan")) == "n/a"
    assert dsv._p(2.5e-5) == "2.5e-05"
    assert dsv._p(0.0123) == "0.012"


def test_several_sweep_stores_are_refused():
    import design_space_verdict as dsv

    with pytest.raises(SystemExit):
        dsv.main(["a.zarr", "b.zarr"])
