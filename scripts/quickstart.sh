#!/usr/bin/env bash
# The README's main command: on a fresh Debian machine, install libtorch and the MiniLM model (.venv), build
# seedsweep and seedsweep-trainer, and run a small real sweep on this machine (examples/local/mrpc-quick.yaml:
# 2 × 2 seeds on 800 MRPC examples, one rung). Extra arguments go to `seedsweep run` (e.g. --parallel 1).
# Running it again resumes the sweep, or just prints the summary of a finished one.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/setup-libtorch.sh
cargo build --release --locked -p seedsweep-operator -p seedsweep-trainer
exec target/release/seedsweep run examples/local/mrpc-quick.yaml "$@"
