#!/usr/bin/env bash
# The local executor at scale: the scale benchmark's sweep (bench/scale.sh: 25 × 25 seeds, exact mode, one rung at
# 25 % keeping a quarter, 3 epochs × 10 evaluations, parallelism 64) run by `seedsweep run` on this machine, with
# `seedsweep-standin` as the trainer (--trainer) replaying the recorded SST-2 curves in bench/curves/; the stand-ins'
# settings go through seedsweep run's environment, which its trainers inherit. Prints a JSON report (also
# <out>/report.json) and fails unless the trials kept are exactly the offline cut; docs/benchmarks.md explains
# every figure.
#
#   bench/local-scale.sh                                   # 625 trials, parallelism 64, 20 s per trial
#   bench/local-scale.sh --trials 25 --parallelism 8       # a reduced run, about 1.5 minutes
#   bench/local-scale.sh --help                            # every option (--trial-seconds, --scrape-interval, --out ...)
#
# Builds what it runs first: seedsweep and the stand-in in release mode (not the trainer).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p seedsweep-operator --bin seedsweep
cargo build --release --quiet -p seedsweep-tests --bin seedsweep-standin --bin seedsweep-local-bench
exec "$target/release/seedsweep-local-bench" --seedsweep "$target/release/seedsweep" \
    --standin "$target/release/seedsweep-standin" --curves bench/curves/sst2-6x6.json "$@"
