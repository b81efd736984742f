"""Format tables in model specs: a preset with its overflow rule changed, or a custom format.

A model spec (a ``[models.NAME]`` table of a run or sweep configuration) names its formats
by preset (``inner_format = "float8_e4m3"``) or gives a table:

* ``{name = "float8_e4m3", saturate = true}``: the preset with some fields changed
  (``saturate``, ``subnormals``); a saturating copy is named ``<preset>_sat``. This is how
  a configuration states the e4m3 accumulator of El Arar et al.'s released script: mptorch
  ``float_quantize(x, exp=4, man=3, rounding="nearest", subnormals=True, saturate=True)``
  (mptorch ``examples/mp_mlp_paper/script_mp.py``, branch feature-mixedprec), whose
  overflow rule (``clip_exponent`` in ``mptorch/quant/quant_cpu/bit_helper.cpp``) replaces
  a result whose exponent exceeds ``2^(exp-1) - 1 = 7`` by ``+-(2 - 2^-3) 2^7 = +-240``:
  the IEEE-style e4m3 (``float8_e4m3``, max 240, bias 7), not the OCP ``e4m3fn`` (max 448),
  saturating instead of giving infinity;
* ``{exponent_bits = E, mantissa_bits = M, ...}`` or ``{p = P, emax = EMAX, ...}``: a
  custom IEEE-style format (:meth:`accsim.numbers.formats.FloatFormat.from_bits` /
  :meth:`~accsim.numbers.formats.FloatFormat.from_precision`).

:func:`materialize` turns these tables into :class:`~accsim.numbers.formats.FloatFormat`
objects (the accumulator factory takes names or format objects).
"""

from __future__ import annotations

__all__ = ["FORMAT_KEYS", "PRESET_OVERRIDES", "materialize", "format_from_table"]

#: Keys that make a table a custom format (by field widths or by precision and emax).
FORMAT_KEYS = ("p", "emax", "exponent_bits", "mantissa_bits")
#: Fields of a preset a ``{name = ..., FIELD = ...}`` table may change.
PRESET_OVERRIDES = ("saturate", "subnormals")


def format_from_table(table: dict):
    """The :class:`~accsim.numbers.formats.FloatFormat` a format table stands for.

    Raises
    ------
    ValueError
        Unknown preset, unknown or badly typed key (the message names it).
    """
    from accsim.numbers.formats import FloatFormat
    from accsim.numbers.formats import format as get_format

    if "name" in table and not set(table) & set(FORMAT_KEYS):
        bad = sorted(set(table) - {"name", *PRESET_OVERRIDES})
        if bad:
            raise ValueError(f"format table {table!r}: unknown key(s) {', '.join(bad)}; a "
                             f"preset table takes name and {', '.join(PRESET_OVERRIDES)}")
        changes = {k: table[k] for k in PRESET_OVERRIDES if k in table}
        for k, v in changes.items():
            if not isinstance(v, bool):
                raise ValueError(f"format table {table!r}: {k} must be true or false")
        base = get_format(table["name"])
        if not changes or all(getattr(base, k) == v for k, v in changes.items()):
            return base
        suffix = "".join(("_sat" if k == "saturate" and v else
                          "_nosat" if k == "saturate" else
                          "_sub" if v else "_nosub") for k, v in sorted(changes.items()))
        return base.with_(name=base.name + suffix, **changes)
    kw = {k: v for k, v in table.items() if k not in FORMAT_KEYS}
    if "p" in table:
        return FloatFormat.from_precision(table["p"], table["emax"], **kw)
    return FloatFormat.from_bits(table["exponent_bits"], table["mantissa_bits"], **kw)


def _is_format_table(spec: dict) -> bool:
    return "family" not in spec and (bool(set(spec) & set(FORMAT_KEYS)) or "name" in spec)


def materialize(spec):
    """A model spec with its format tables turned into format objects.

    Nested dicts and lists are converted; other values are returned unchanged. A dict
    with a ``family`` key is a model spec (its ``name`` is the model's name, not a format).
    """
    if isinstance(spec, list):
        return [materialize(x) for x in spec]
    if not isinstance(spec, dict):
        return spec
    if _is_format_table(spec):
        return format_from_table(spec)
    return {k: materialize(v) for k, v in spec.items()}
