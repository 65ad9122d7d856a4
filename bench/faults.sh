#!/usr/bin/env bash
# The fault benchmark: the scale benchmark's stand-in sweep (exact mode, one rung at 25 % keeping a quarter, 3 epochs
# × 10 evaluations, recorded SST-2 curves) on a real v1.20 control plane (../shared/k8s) with the node simulator,
# run once uninterrupted and then under each fault, each on a fresh control plane: the operator SIGKILLed 10 times,
# the leader of two replicas SIGKILLed 3 times, 1/8 of the trials' metrics endpoints unreachable for 60 % of an
# attempt, 1/8 of the kept trials' processes SIGKILLed mid-training, the apiserver restarted twice (etcd kept).
# Prints one line of figures per scenario and every broken invariant; exits 1 if any; reports in <out>/summary.json.
# docs/benchmarks.md ("Faults") explains each figure.
#
#   bench/faults.sh                                      # 64 trials, parallelism 16, 20 s per attempt (~10 min)
#   bench/faults.sh --scenarios leader-kills --seed 7    # one scenario (and the uninterrupted run), other moments
#   bench/faults.sh --help                               # every option
#
# Builds what it runs first, in the dev profile (what is measured is behaviour under faults, not speed).
set -euo pipefail
cd "$(dirname "$0")/.."
export SEEDSWEEP_K8S_DIR="${SEEDSWEEP_K8S_DIR:-$PWD/../shared/k8s}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet -p seedsweep-operator --bin seedsweep
cargo build --quiet -p seedsweep-tests --bin seedsweep-standin --bin seedsweep-faults-bench
exec "$target/debug/seedsweep-faults-bench" --operator "$target/debug/seedsweep" \
    --standin "$target/debug/seedsweep-standin" --curves bench/curves/sst2-6x6.json "$@"
