"""Shared test set-up: the test directory on ``sys.path`` and ``PYTHONPATH`` (for
``reference`` -- the slow ``fractions.Fraction`` references --, ``helpers`` and the sweep
test double ``doubles``), and fixtures built on them."""

import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS)
# Subprocesses (CLI runs) and dask worker processes import the test double ``doubles``.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [TESTS] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

import reference  # noqa: E402


@pytest.fixture(scope="session")
def ref():
    """The Fraction reference module (``tests/reference.py``)."""
    return reference
