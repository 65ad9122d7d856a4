#!/usr/bin/env bash
# End to end on a kind cluster, the steps .github/workflows/e2e-kind.yml runs: build the release binaries on Debian
# bookworm (the images' glibc), build the CPU images, create a kind cluster, load the images, helm install the chart,
# fill the example's PVC, run examples/kind/sweep.yaml to completion, assert its discards and status, then run the
# operator's integration tests against the same cluster (SEEDSWEEP_TEST_KUBECONFIG).
#
# Needs docker, kind, kubectl, helm, a Rust toolchain and python3-venv; the project's development machines have no
# Docker, so this runs in CI (or on a workstation) only.
#   tests/e2e/kind.sh                 # everything; deletes the cluster at the end
#   KEEP_CLUSTER=1 tests/e2e/kind.sh  # keep it for debugging (kind delete cluster --name seedsweep-e2e)
#   SKIP_BUILD=1 tests/e2e/kind.sh    # reuse target/release binaries already built on bookworm
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
CLUSTER=${KIND_CLUSTER:-seedsweep-e2e}
NS=seedsweep-system
SWEEP_NS=default
OPERATOR_IMAGE=seedsweep-operator:kind
TRAINER_IMAGE=seedsweep-trainer:kind
TEST_IMAGE=seedsweep-trainer:kind-test
RUST_IMAGE=${RUST_IMAGE:-rust:1.89-bookworm}
start=$(date +%s)
log() { echo "e2e-kind [$(( $(date +%s) - start )) s]: $*" >&2; }
sudo_if_needed() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

dump() {
    log "failure: state of the cluster follows"
    kubectl get ssw,jobs,pods -A -o wide || true
    kubectl describe ssw -n "$SWEEP_NS" mrpc-kind || true
    kubectl logs -n "$NS" deployment/seedsweep --tail=200 || true
    kubectl get events -A --sort-by=.lastTimestamp | tail -50 || true
}
cleanup() {
    local rc=$?
    [[ $rc == 0 ]] || dump
    if [[ ${KEEP_CLUSTER:-0} != 1 ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
    exit "$rc"
}

# 1. Release binaries, built in a bookworm container so that they run on the bookworm-based images.
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building release binaries in $RUST_IMAGE"
    # A target and venv of their own (root-owned, from the container), so the host's .venv and target/debug stay
    # the host's; the binaries are copied to target/release, the only place the Dockerfiles copy from.
    mkdir -p target/release target/bookworm
    docker run --rm -v "$PWD:/src" -w /src -e CARGO_HOME=/src/target/bookworm/cargo-home \
        -e CARGO_TARGET_DIR=/src/target/bookworm "$RUST_IMAGE" bash -ec '
        apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        mkdir /tmp/src && tar --exclude=./target --exclude=./.venv --exclude=./.tools -cf - . | tar -xf - -C /tmp/src
        cd /tmp/src && rm -f .libtorch .minilm
        scripts/setup-libtorch.sh
        cargo build --release --locked -p seedsweep-operator -p seedsweep-trainer'
    cp target/bookworm/release/seedsweep target/bookworm/release/seedsweep-trainer target/release/
fi

# 2. Images: the operator, the CPU trainer with MiniLM, and for the integration tests the same with the MRPC subset.
log "building images"
docker build -q -f operator/Dockerfile -t "$OPERATOR_IMAGE" .
docker build -q -f trainer/Dockerfile --target cpu --build-arg WITH_MINILM=1 -t "$TRAINER_IMAGE" .
printf 'FROM %s\nCOPY MRPC /opt/data/MRPC\n' "$TRAINER_IMAGE" | docker build -q -t "$TEST_IMAGE" -f - examples/local/data

# 3. The cluster, the images in it, and a route from this host to its pod network (the integration tests run the
#    operator here, out of the cluster, and it scrapes pod IPs).
trap cleanup EXIT
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kubectl config use-context "kind-$CLUSTER" >/dev/null
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$TRAINER_IMAGE" "$TEST_IMAGE"
node_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CLUSTER-control-plane")
pod_cidr=$(kubectl get node "$CLUSTER-control-plane" -o jsonpath='{.spec.podCIDR}')
sudo_if_needed ip route replace "$pod_cidr" via "$node_ip"

# 4. The chart, with fast scrapes so the sweep's decisions come quickly.
log "helm install"
helm install seedsweep charts/seedsweep -n "$NS" --create-namespace --wait --timeout 180s \
    --set image.repository=seedsweep-operator --set image.tag=kind --set image.pullPolicy=Never \
    --set trainer.image="$TRAINER_IMAGE" --set scrape.interval=2 --set statusInterval=5 --set logging.format=text
kubectl -n "$NS" rollout status deployment/seedsweep --timeout=120s
holder=
for _ in $(seq 60); do
    holder=$(kubectl -n "$NS" get lease seedsweep-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
    [[ $holder == seedsweep-* ]] && break
    sleep 2
done
[[ $holder == seedsweep-* ]] || { log "no replica holds the lease"; exit 1; }
log "leader: $holder"

# 5. Model and data onto the PVC, then the sweep.
log "filling the data PVC"
kubectl -n "$SWEEP_NS" create configmap mrpc-data --from-file=examples/local/data/MRPC
kubectl -n "$SWEEP_NS" apply -f examples/kind/data.yaml
kubectl -n "$SWEEP_NS" wait --for=condition=complete job/seedsweep-fill-data --timeout=300s
log "running examples/kind/sweep.yaml"
kubectl -n "$SWEEP_NS" apply -f examples/kind/sweep.yaml
phase=
for _ in $(seq 600); do
    phase=$(kubectl -n "$SWEEP_NS" get ssw mrpc-kind -o jsonpath='{.status.phase}')
    [[ $phase == Succeeded || $phase == Failed || $phase == Invalid ]] && break
    sleep 2
done
log "sweep phase: $phase"
[[ $phase == Succeeded ]] || { log "the sweep did not succeed"; exit 1; }

# 6. The outcome: 4 trials, the rung kept 1, so 3 discarded and 1 trained to completion with a score.
field() { kubectl -n "$SWEEP_NS" get ssw mrpc-kind -o jsonpath="$1"; }
discarded=$(field '{.status.counts.discarded}')
succeeded=$(field '{.status.counts.succeeded}')
best=$(field '{.status.bestTrial.score}')
complete=$(field '{.status.conditions[?(@.type=="Complete")].status}')
log "discarded=$discarded succeeded=$succeeded best=$best Complete=$complete"
[[ $discarded == 3 && $succeeded == 1 && $complete == True ]] || { log "unexpected sweep status"; exit 1; }
awk -v b="$best" 'BEGIN { exit !(b > 0 && b <= 1) }' || { log "best score $best not in (0, 1]"; exit 1; }
discard_events=$(kubectl -n "$SWEEP_NS" get events --field-selector reason=TrialDiscarded -o name | wc -l)
[[ $discard_events -ge 3 ]] || { log "expected 3 TrialDiscarded events, got $discard_events"; exit 1; }
# Discarded trials' Jobs are deleted; the kept trial's finished Job stays with its logs.
jobs=$(kubectl -n "$SWEEP_NS" get jobs -l seedsweep.dev/sweep=mrpc-kind -o name | wc -l)
[[ $jobs == 1 ]] || { log "expected the kept trial's Job only, found $jobs"; exit 1; }

# 7. The operator's integration tests against this cluster, with the operator out of the cluster.
log "operator integration tests against kind"
helm uninstall seedsweep -n "$NS" --wait
SEEDSWEEP_TEST_KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config} \
SEEDSWEEP_TEST_TRAINER_IMAGE=$TEST_IMAGE \
SEEDSWEEP_TEST_MODEL_DIR=/opt/models/minilm-l6 \
SEEDSWEEP_TEST_DATA_DIR=/opt/data/MRPC \
    cargo test --locked -p seedsweep-operator --test operator_e2e -- --nocapture
log "passed"
