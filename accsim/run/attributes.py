"""CF-style variable attributes of every dataset accsim writes: one table.

Every data variable and coordinate of a run, graph-run, sweep, verify or MiniLM dataset
gets ``long_name`` and, where it has a unit, ``units`` (CF conventions 1.11, section 3.1:
``units`` is a UDUNITS string; ``"1"`` for dimensionless numbers: fractions, ratios,
errors of dimensionless values, counts). :func:`annotate` sets them from
:data:`ATTRIBUTES`; a name not in the table is looked up without a known suffix
(:data:`SUFFIXES`: ``bit_cost_layer`` is ``bit_cost`` per layer, ``accuracy_lo`` the lower
end of its confidence interval).

To add a variable, add one line to :data:`ATTRIBUTES` (``name: (long_name, units)``,
units ``None`` for labels and indices). ``tests/test_cf_attributes.py`` writes a store of
every kind and names any variable left without ``long_name``.

Model descriptions are one JSON attribute, ``model_descriptions`` (:func:`models_attr`):
``{name: model.describe()}``.
"""

from __future__ import annotations

import json
import re

from accsim.analysis.stats import COMPARISON_ATTRS
from accsim.run.hwcost import HW_COLUMNS

__all__ = ["ATTRIBUTES", "PREFIXES", "SUFFIXES", "UNITS", "annotate", "lookup",
           "missing_long_names", "models_attr"]

#: The units used (UDUNITS strings): dimensionless, bits, picojoules, seconds,
#: nanoseconds, per second, nats (natural-log information, for KL divergences).
UNITS = ("1", "bit", "Gbit", "pJ", "s", "ns", "s-1", "nat")

_BITS = "accumulator significand bits x terms, per input"

#: name -> (long_name, units or None)
ATTRIBUTES: dict[str, tuple[str, str | None]] = {
    # ---- per component (run records, verify)
    "computed": ("value computed by the model (float64 holding out_format values)", "1"),
    "exact": ("exact result rounded once to binary64", "1"),
    "abs_error": ("absolute error |computed - exact|", "1"),
    "rel_error": ("relative error |computed - exact| / |exact|", "1"),
    "bound": ("componentwise error bound", "1"),
    "kappa_v": ("condition number of the inner product", "1"),
    "kappa_phi": ("condition number of the activation at the exact value", "1"),
    "holds": ("error within the bound (decided between real numbers)", None),
    "rechecked": ("verdict decided by the exact rational re-check", None),
    "level": ("precision level that produced the component (0 = low)", None),
    "propagated": ("value propagated to the next layer", "1"),
    "input_scale": ("power-of-two scale of the layer input", "1"),
    # ---- coordinates
    "strategy": ("strategy label", None),
    "layer": ("layer", None),
    "component": ("recorded output component", None),
    "component_layer": ("layer of the recorded component", None),
    "component_feature": ("output feature (row of W) of the recorded component", None),
    "component_sample": ("input of the recorded component", None),
    "sample": ("sample index", None),
    "image": ("test input index", None),
    "n": ("inner-product length", "1"),
    "kappa": ("requested condition number", "1"),
    "prob_lambda": ("lambda of the probabilistic bound at the layer's length", "1"),
    "layer_class": ("operation class of the layer", None),
    "layer_K": ("inner-product length of the layer", "1"),
    "layer_macs": ("multiply-accumulates of the layer per input", "1"),
    "cell": ("sweep cell index", None),
    "cell_id": ("sweep cell identifier (hash of its parameters)", None),
    "sentence": ("sentence index", None),
    # ---- per strategy (run, graph run) and per cell (sweep)
    "accuracy": ("top-1 accuracy", "1"),
    "agreement": ("top-1 agreement with the exact network", "1"),
    "agree": ("top-1 prediction equals the exact network's", None),
    "correct": ("top-1 prediction is correct", None),
    "logit_rel_error": ("relative error of the logits (max over classes)", "1"),
    "logit_rel_error_median": ("median relative error of the logits", "1"),
    "logit_rel_error_max": ("largest relative error of the logits", "1"),
    "recomputed_fraction": ("fraction of output components recomputed in high precision",
                            "1"),
    "bit_cost": (f"total cost: {_BITS}", "bit"),
    "base_bit_cost": (f"cost of the low-precision pass: {_BITS}", "bit"),
    "estimate_bit_cost": (f"cost of the condition estimate: {_BITS}", "bit"),
    "recompute_bit_cost": (f"cost of the recomputations: {_BITS}", "bit"),
    "max_error_bound_ratio": ("largest error / bound", "1"),
    "max_rel_error": ("largest relative error of a component", "1"),
    "max_abs_error": ("largest absolute error of a component", "1"),
    "violations": ("deterministic bound violations", "1"),
    "violations_prob": ("probabilistic bound violations", "1"),
    "vacuous_bound_fraction": ("fraction of components with an infinite bound", "1"),
    "nonfinite": ("non-finite output components", "1"),
    "delta": ("accuracy difference to the reference strategy (paired)", "1"),
    "p_mcnemar": ("McNemar exact test p-value against the reference strategy", "1"),
    "flip_rate": ("fraction of inputs whose correctness differs from the reference", "1"),
    "mcnemar_b": ("inputs correct here only (McNemar b)", "1"),
    "mcnemar_c": ("inputs correct in the reference only (McNemar c)", "1"),
    "matched_to": ("adaptive strategy a control is matched to", None),
    "strategy_kind": ("kind of strategy (uniform, adaptive, random, oracle, ...)", None),
    "criterion": ("recomputation criterion", None),
    "tau": ("recomputation threshold", "1"),
    "guard": ("guard band applied to the criterion", None),
    "models": ("accumulator models of the strategy", None),
    "constant_kind": ("kind of bound constant used by the criterion", None),
    "probabilistic_constant": ("probabilistic rounding-error constant c(n) u", "1"),
    "deterministic_constant": ("deterministic rounding-error constant gamma_n", "1"),
    "net_rel_error_max": ("largest relative error of the layer output vs the exact network",
                          "1"),
    "net_rel_error_mean": ("mean relative error of the layer output vs the exact network",
                           "1"),
    "weight_scale": ("power-of-two scale of the layer weights", "1"),
    "scale_format": ("format of the per-tensor scales", None),
    "budget": ("recomputation budget of the strategy (fraction of components)", "1"),
    "control_seed": ("seed of the random control", None),
    "seconds": ("wall-clock time", "s"),
    "elapsed": ("wall-clock time of the cell", "s"),
    "status": ("cell status (ok, error, missing)", None),
    "error": ("error message of a failed cell", None),
    # ---- sweep cell parameters (coordinates over cell)
    "network": ("network", None),
    "dataset": ("data set", None),
    "low": ("low-precision accumulator model", None),
    "high": ("high-precision accumulator model", None),
    "control": ("control of the adaptive strategy (none, random, oracle)", None),
    "estimate": ("estimate of |W||x| used by the criterion", None),
    "samples": ("test inputs per cell", "1"),
    "seed": ("seed", None),
    "cell_seed": ("seed of the cell (derived from the master seed)", None),
    "zero": ("treatment of zero pre-activations", None),
    "output_kappa": ("activation condition number used on the output layer", None),
    "bias": ("where the bias is added", None),
    "input_format": ("format of the network inputs", None),
    "activation_format": ("format of the activations", None),
    "normalization": ("input normalisation", None),
    "label": ("cell label", None),
    "model": ("accumulator model", None),
    "high_model": ("high-precision accumulator model", None),
    "levels": ("accumulator models of the precision levels, low to high", None),
    "n_samples": ("test inputs evaluated", "1"),
    "correct_bits": ("per-input correctness, numpy.packbits as hex", None),
    "agree_bits": ("per-input agreement with the exact network, numpy.packbits as hex",
                   None),
    # ---- model parameters (sweep coordinates low_<param>, high_<param>)
    "family": ("accumulator family", None),
    "acc_format": ("accumulator format", None),
    "inner_format": ("format of the in-block sums", None),
    "outer_format": ("format of the sums of blocks", None),
    "out_format": ("output format", None),
    "product": ("how products enter the sum (exact, rounded, fused)", None),
    "product_format": ("format of the rounded products", None),
    "mode": ("rounding mode", None),
    "sr_bits": ("random bits of stochastic rounding", "1"),
    "block": ("block size", "1"),
    "chunk": ("terms per chunk before promotion", "1"),
    # ---- MiniLM (per cell = strategy x seed)
    "linear": ("policy of the linear layers", None),
    "attention": ("policy of the attention scores", None),
    "lin_tau": ("threshold of the linear-layer policy", "1"),
    "att_tau": ("threshold of the attention policy", "1"),
    "cos_min": ("smallest cosine similarity to the reference embedding", "1"),
    "cos_mean": ("mean cosine similarity to the reference embedding", "1"),
    "emb_err_median": ("median relative error of the sentence embeddings", "1"),
    "emb_err_max": ("largest relative error of the sentence embeddings", "1"),
    "emb_err": ("relative error of the sentence embedding", "1"),
    "spearman": ("Spearman correlation of pairwise similarities with the reference", "1"),
    "nn_agree": ("nearest-neighbour agreement with the reference", "1"),
    "kl_mean": ("mean KL divergence of the attention rows from the reference", "1"),
    "kl_max": ("largest KL divergence of an attention row from the reference", "1"),
    "last_layer_err": ("relative error after the last layer", "1"),
    "layer_rel_error": ("relative error of the hidden states after each layer", "1"),
    "lin_recomputed": ("fraction of linear-layer outputs recomputed", "1"),
    "scores_recomputed": ("fraction of attention scores recomputed", "1"),
    "gbits_per_sentence": ("cost per sentence, 10^9 accumulator significand bits x terms",
                           "Gbit"),
    "macs_per_sentence": ("multiply-accumulates per sentence", "1"),
    "mac_per_s": ("simulated multiply-accumulates per second", "s-1"),
    "att_kl": ("mean KL divergence of the input's attention rows from the reference",
               "nat"),
    "out_kl": ("KL divergence of the input's output distribution from the reference",
               "nat"),
    "out_kl_mean": ("mean over inputs of the output-distribution KL divergence", "nat"),
    "inputs": ("inputs the cell ran", "1"),
    "rule": ("LAMP criterion the cell applies or its control matches", None),
    "m_bits": ("fraction bits of the scores accumulator (-1: not swept)", "1"),
}

# The hardware cost columns and the paired comparison variables keep their entries where
# they are computed (accsim/run/hwcost.py, accsim/analysis/stats.py); one lookup here.
ATTRIBUTES.update(HW_COLUMNS)
ATTRIBUTES.update({f"cmp_{k}": v for k, v in COMPARISON_ATTRS.items()})
ATTRIBUTES["comparison"] = ("paired comparison (row against comparator)", None)

#: name suffix (a regular expression) -> long_name template of the base variable's
#: entry, whose units are kept: ``{0}`` its long_name, ``{1}`` the first group.
SUFFIXES = {
    r"_layer": "{0} (per layer)",
    r"_layer(\d+)": "{0} (layer {1})",
    r"_lo": "{0}: lower end of the 95 % bootstrap confidence interval",
    r"_hi": "{0}: upper end of the 95 % bootstrap confidence interval",
}
#: name prefix -> long_name template of the rest's entry (sweep model parameters).
PREFIXES = {
    "low_": "low-precision model: {0}",
    "high_": "high-precision model: {0}",
}


def lookup(name: str) -> tuple[str, str | None] | None:
    """``(long_name, units)`` of a variable name, or ``None`` if the table lacks it."""
    if name in ATTRIBUTES:
        return ATTRIBUTES[name]
    for suffix, template in SUFFIXES.items():
        m = re.fullmatch(rf"(.+){suffix}", name)
        if m and (base := lookup(m.group(1))) is not None:
            return template.format(base[0], *m.groups()[1:]), base[1]
    for prefix, template in PREFIXES.items():
        if name.startswith(prefix) and (base := lookup(name[len(prefix):])) is not None:
            return template.format(base[0]), base[1]
    return None


def annotate(ds):
    """Set ``long_name`` (and ``units``) on every data variable and coordinate of ``ds``
    found in the table (in place; an existing ``long_name`` is kept); returns ``ds``."""
    for name in [*ds.data_vars, *ds.coords]:
        entry = lookup(str(name))
        if entry is None:
            continue
        attrs = ds[name].attrs
        attrs.setdefault("long_name", entry[0])
        if entry[1] is not None:
            attrs.setdefault("units", entry[1])
    return ds


def missing_long_names(ds) -> list[str]:
    """Names of the data variables and coordinates of ``ds`` without ``long_name``."""
    return sorted(str(n) for n in [*ds.data_vars, *ds.coords]
                  if "long_name" not in ds[n].attrs)


def models_attr(models: dict) -> str:
    """The ``model_descriptions`` attribute: JSON of ``{name: model.describe()}``
    (values that JSON lacks as strings)."""
    return json.dumps({str(k): (m.describe() if hasattr(m, "describe") else m)
                       for k, m in models.items()}, default=str, sort_keys=True)
