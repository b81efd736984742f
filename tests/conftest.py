"""Shared test set-up: the test directory on ``sys.path`` (for ``reference`` -- the slow
``fractions.Fraction`` references -- and ``helpers``), and fixtures built on them."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reference  # noqa: E402


@pytest.fixture(scope="session")
def ref():
    """The Fraction reference module (``tests/reference.py``)."""
    return reference
