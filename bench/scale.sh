#!/usr/bin/env bash
# The scale benchmark: a real v1.20 control plane (../shared/k8s) with a simulated node of --sweeps × --parallelism
# GPUs, the `seedsweep operator` release binary, and --sweeps SeedSweeps (default one) of stand-in trials created at
# once, replaying the recorded SST-2 curves in bench/curves/ (exact mode, one rung at 25 % keeping a quarter, 3
# epochs × 10 evaluations). Prints a JSON report, per sweep and over all (also <out>/report.json);
# docs/benchmarks.md explains every figure.
#
#   bench/scale.sh                                   # 625 trials (25 × 25), parallelism 64, 20 s per trial
#   bench/scale.sh --trials 25 --parallelism 8       # a reduced run, about 1.5 minutes
#   bench/scale.sh --sweeps 3                        # three such sweeps at once (the node gets 3 × 64 GPUs)
#   bench/scale.sh --controller-manager-qps 100      # its Job controller allowed 100 requests a second (default 20)
#   bench/scale.sh --help                            # every option (--trial-seconds, --scrape-interval, --out ...)
#
# Builds what it runs first: the operator and the stand-in in release mode (not the trainer).
set -euo pipefail
cd "$(dirname "$0")/.."
export SEEDSWEEP_K8S_DIR="${SEEDSWEEP_K8S_DIR:-$PWD/../shared/k8s}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p seedsweep-operator --bin seedsweep
cargo build --release --quiet -p seedsweep-tests --bin seedsweep-standin --bin seedsweep-scale-bench
exec "$target/release/seedsweep-scale-bench" --operator "$target/release/seedsweep" \
    --standin "$target/release/seedsweep-standin" --curves bench/curves/sst2-6x6.json "$@"
