#!/usr/bin/env bash
# The operator running in the cluster, installed by the chart, as a kubelet would run it: a v1.20 control plane
# (../shared/k8s), the node simulator as the kubelet (seedsweep-node-sim; the chart's operator image mapped to the
# seedsweep binary with --image-entrypoint, trial pods running the seedsweep-trainer binary), `helm install` of
# charts/seedsweep unchanged but for local flags (trainer command, short intervals, metrics port, text logs). Checks:
#   - the operator pod is Running as the chart's ServiceAccount: its spec, the token the admission plugin mounted,
#     the kubeconfig the simulator built from it (the only credentials the process has; a TokenReview of its token
#     says system:serviceaccount:<release ns>:<sa>), /healthz and /readyz on its pod IP, and it holds the Lease;
#   - a real sweep (MiniLM from .minilm on a small MRPC subset, 2 x 2 seeds, one rung at 25 % keeping 1) ends
#     Succeeded with 1 trial Succeeded and 3 Discarded, the Succeeded one being the offline top-1 by the rung scores
#     recorded in status.trials[].rungs (ties to the earlier trial in `seedsweep plan`'s launch order);
#   - `helm uninstall` leaves no object of the release (Deployment, ReplicaSet, pods, ServiceAccount, Roles,
#     ClusterRole, bindings, Service, ConfigMaps) and no operator process.
#
#   scripts/check-in-cluster.sh [BIN_DIR]   BIN_DIR holds seedsweep, seedsweep-trainer, seedsweep-node-sim (default
#                                           target/debug; copied first, so a concurrent build cannot relink them)
# Needs scripts/setup-libtorch.sh's .minilm; tools from scripts/install-tools.sh (helm; run when missing).
# Ports: K8S_APISERVER_PORT (27443), K8S_ETCD_PORT (27379, +1), K8S_KCM_PORT (27257), K8S_SCHED_PORT (27259),
# OPERATOR_PORT (18081, the operator's metrics port, bound on 0.0.0.0 as in a real pod). About 2-3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
src=$(cd "${1:-target/debug}" && pwd)
chart=charts/seedsweep
k8s_dir=${SEEDSWEEP_K8S_DIR:-$repo/../shared/k8s}
export PATH="$repo/.tools/bin:$PATH"
start=$(date +%s)
log() { echo "check-in-cluster [$(( $(date +%s) - start )) s]: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
for b in seedsweep seedsweep-trainer seedsweep-node-sim; do
    [[ -x $src/$b ]] || fail "missing $src/$b (cargo build -p seedsweep-operator -p seedsweep-trainer -p seedsweep-tests --bins, or pass BIN_DIR)"
done
[[ -d $repo/.minilm ]] || fail "missing .minilm: run scripts/setup-libtorch.sh"
[[ -x $k8s_dir/start.sh ]] || fail "no control plane at $k8s_dir (set SEEDSWEEP_K8S_DIR)"
command -v kubectl >/dev/null || fail "kubectl is missing"
command -v helm >/dev/null || scripts/install-tools.sh >/dev/null

work=$(mktemp -d)
sim_pid=
cleanup() {
    local rc=$?
    trap - EXIT
    if [[ -n $sim_pid ]]; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    [[ -f $work/k8s/env ]] && "$k8s_dir/stop.sh" "$work/k8s" >/dev/null 2>&1
    if [[ $rc != 0 ]]; then
        for f in "$work"/node-sim.log "$work"/node/pods/seedsweep-system_*/operator.log; do
            [[ -f $f ]] && { echo "--- ${f#"$work"/} (tail)"; tail -30 "$f"; }
        done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

bin=$work/bin
mkdir -p "$bin"
cp "$src/seedsweep" "$src/seedsweep-trainer" "$src/seedsweep-node-sim" "$bin/"

export K8S_APISERVER_PORT=${K8S_APISERVER_PORT:-27443} K8S_ETCD_PORT=${K8S_ETCD_PORT:-27379}
export K8S_KCM_PORT=${K8S_KCM_PORT:-27257} K8S_SCHED_PORT=${K8S_SCHED_PORT:-27259}
OPERATOR_PORT=${OPERATOR_PORT:-18081}
RELEASE=ssw
RNS=seedsweep-system
SA=ssw-seedsweep
NS=sweeps
SWEEP=incluster
SA_PATH=/var/run/secrets/kubernetes.io/serviceaccount

log "control plane v1.20 on 127.0.0.1:$K8S_APISERVER_PORT"
"$k8s_dir/start.sh" "$work/k8s" > "$work/k8s.log" 2>&1 || { cat "$work/k8s.log"; exit 1; }
# shellcheck disable=SC1091
source "$work/k8s/env"

log "node simulator (operator image -> $bin/seedsweep)"
"$bin/seedsweep-node-sim" --kubeconfig "$KUBECONFIG" --node-name sim-0 --cpu 16 --memory 64Gi \
    --ip-base 127.44.0.0 --work-dir "$work/node" \
    --image-entrypoint "ghcr.io/seedsweep/operator:*=$bin/seedsweep" > "$work/node-sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 60); do
    [[ $(kubectl get node sim-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]] && break
    sleep 1
done
[[ $(kubectl get node sim-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]] \
    || fail "node sim-0 not Ready"

log "helm install $RELEASE into $RNS (cluster-wide, the chart's CRD)"
helm install "$RELEASE" "$chart" -n "$RNS" --create-namespace \
    --set trainer.command="$bin/seedsweep-trainer" --set scrape.interval=1 --set statusInterval=1 \
    --set metrics.port="$OPERATOR_PORT" --set logging.format=text --wait --timeout 120s > /dev/null \
    || { kubectl -n "$RNS" get pods -o wide; kubectl -n "$RNS" describe pods | tail -40; fail "helm install --wait"; }
kubectl wait --for condition=established --timeout=30s crd/seedsweeps.seedsweep.dev > /dev/null

# ---- the operator pod, as the chart's ServiceAccount -----------------------------------------------------------------
selector="app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=operator"
mapfile -t pods < <(kubectl -n "$RNS" get pods -l "$selector" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[[ ${#pods[@]} == 1 ]] || fail "expected 1 operator pod, found ${#pods[@]}: ${pods[*]}"
pod=${pods[0]}
field() { kubectl -n "$RNS" get pod "$pod" -o jsonpath="$1"; }
[[ $(field '{.status.phase}') == Running ]] || fail "operator pod $pod is $(field '{.status.phase}')"
[[ $(field '{.spec.serviceAccountName}') == "$SA" ]] || fail "pod $pod runs as $(field '{.spec.serviceAccountName}'), not $SA"
token_secret=$(kubectl -n "$RNS" get sa "$SA" -o jsonpath='{.secrets[0].name}')
mount_volume=$(field "{.spec.containers[0].volumeMounts[?(@.mountPath==\"$SA_PATH\")].name}")
[[ -n $mount_volume ]] || fail "pod $pod has no service-account token mount at $SA_PATH"
mounted_secret=$(field "{.spec.volumes[?(@.name==\"$mount_volume\")].secret.secretName}")
[[ $mounted_secret == "$token_secret" ]] \
    || fail "the token mounted at $SA_PATH is secret '$mounted_secret', not $SA's '$token_secret'"
ip=$(field '{.status.podIP}')
pid=$(field '{.status.containerStatuses[0].containerID}'); pid=${pid#sim://}
log "operator pod $pod: Running on $ip (pid $pid) as ServiceAccount $SA, token secret $token_secret at $SA_PATH"

for probe in healthz readyz; do
    ok=
    for _ in $(seq 30); do curl -sf "http://$ip:$OPERATOR_PORT/$probe" > /dev/null && { ok=1; break; }; sleep 1; done
    [[ -n $ok ]] || fail "http://$ip:$OPERATOR_PORT/$probe does not answer"
done

# The process's credentials: KUBECONFIG (the simulator's service-account kubeconfig) and nothing else.
[[ -r /proc/$pid/environ ]] || fail "no process $pid for pod $pod"
env_of() { tr '\0' '\n' < "/proc/$pid/environ" | sed -n "s/^$1=//p"; }
op_kubeconfig=$(env_of KUBECONFIG)
[[ -n $op_kubeconfig && -f $op_kubeconfig ]] || fail "the operator process has no KUBECONFIG file ('$op_kubeconfig')"
[[ $op_kubeconfig != "$KUBECONFIG" ]] || fail "the operator process inherited the admin kubeconfig"
token_file=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["users"][0]["user"]["tokenFile"])' "$op_kubeconfig")
grep -q admin-token "$op_kubeconfig" "$token_file" && fail "the operator's kubeconfig holds the admin token"
user=$(kubectl create -o jsonpath='{.status.user.username}' -f - <<EOT
{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "$(cat "$token_file")"}}
EOT
)
[[ $user == "system:serviceaccount:$RNS:$SA" ]] || fail "the operator's token authenticates as '$user'"
holder=
for _ in $(seq 30); do
    holder=$(kubectl -n "$RNS" get lease seedsweep-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
    [[ $holder == "$pod" ]] && break
    sleep 1
done
[[ $holder == "$pod" ]] || fail "Lease $RNS/seedsweep-operator held by '$holder', not $pod"
log "operator credentials: KUBECONFIG=$op_kubeconfig, token of $user; /healthz, /readyz ok; leads Lease $RNS/seedsweep-operator"

# ---- a real sweep -----------------------------------------------------------------------------------------------------
kubectl create namespace "$NS" > /dev/null
cat > "$work/sweep.yaml" <<EOS
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata:
  name: $SWEEP
spec:
  task: {name: mrpc, dataDir: "$repo/examples/local/data/MRPC", trainSubset: 64, devSubset: 48}
  model: {path: "$(readlink -f "$repo/.minilm")"}
  seeds:
    weightInit: {values: [1, 2]}
    dataOrder: {values: [1, 2]}
  training: {epochs: 1, batchSize: 4, learningRate: 1.0e-4, maxSeqLength: 32, evalsPerEpoch: 4}
  earlyDiscard:
    rungs: [{atFraction: 0.25, keepCount: 1}]
  parallelism: 2
EOS
"$bin/seedsweep" plan "$work/sweep.yaml" --output json > "$work/plan.json"
log "sweep $NS/$SWEEP: 2 x 2 MiniLM trials on 64 MRPC examples, one rung at 25 % keeping 1, 2 at a time"
t0=$(date +%s)
kubectl -n "$NS" apply -f "$work/sweep.yaml" > /dev/null
phase=
for _ in $(seq 600); do
    phase=$(kubectl -n "$NS" get ssw "$SWEEP" -o jsonpath='{.status.phase}')
    [[ $phase == Succeeded || $phase == Failed || $phase == Invalid ]] && break
    sleep 1
done
log "sweep phase $phase after $(( $(date +%s) - t0 )) s"
kubectl -n "$NS" get ssw "$SWEEP" -o json > "$work/sweep.json"
[[ $phase == Succeeded ]] || { kubectl -n "$NS" describe ssw "$SWEEP" | tail -40; fail "sweep phase '$phase'"; }
python3 - "$work/sweep.json" "$work/plan.json" <<'PY' || fail "the sweep's outcome"
import json, sys
status = json.load(open(sys.argv[1]))["status"]
launch = {t["name"]: t["index"] for t in json.load(open(sys.argv[2]))["trials"]}
trials = status["trials"]
problems = []
phases = sorted(t["phase"] for t in trials)
if phases != ["Discarded", "Discarded", "Discarded", "Succeeded"]:
    problems.append(f"trial phases {phases}, want 1 Succeeded + 3 Discarded")
if sorted(t["name"] for t in trials) != sorted(launch):
    problems.append(f"trials {[t['name'] for t in trials]} differ from the plan's {sorted(launch)}")
scores = {}
for t in trials:
    rung0 = [r for r in t.get("rungs", []) if r["rung"] == 0]
    if not rung0:
        problems.append(f"{t['name']}: no score recorded at rung 0")
        continue
    scores[t["name"]] = rung0[0]["score"]
    print(f"  {t['name']:<20} {t['phase']:<10} rung 0 at {rung0[0]['progress']:.2f}: {rung0[0]['score']:.4f} "
          f"{rung0[0]['decision']:<9} final {t.get('finalScore', '-')}")
    want = "Discard" if t["phase"] == "Discarded" else "Continue"
    if rung0[0]["decision"] != want:
        problems.append(f"{t['name']}: rung 0 decision {rung0[0]['decision']}, want {want}")
if len(scores) == len(trials):
    # The objective (MRPC acc_and_f1) is maximized; ties go to the trial earlier in the launch order.
    top = min(scores, key=lambda n: (-scores[n], launch[n]))
    kept = [t["name"] for t in trials if t["phase"] == "Succeeded"]
    print(f"  offline top-1 at rung 0: {top} ({scores[top]:.4f}); kept: {', '.join(kept)}")
    if kept != [top]:
        problems.append(f"kept {kept}, but the offline top-1 at rung 0 is {top}")
for p in problems:
    print("  problem:", p)
sys.exit(1 if problems else 0)
PY

# What `kubectl describe` shows: the summary (best trial, conditions, counts) right after the spec, before the
# engine's memory and the per-trial records, and the sweep's story in its events.
kubectl -n "$NS" describe ssw "$SWEEP" > "$work/describe.txt"
python3 - "$work/describe.txt" <<'PY' || fail "kubectl describe ssw $SWEEP"
import sys
lines = open(sys.argv[1]).read().splitlines()
def at(prefix):
    return next((i for i, l in enumerate(lines) if l.startswith(prefix)), None)
where = {k: at(k) for k in ("Status:", "  Best Trial:", "  Conditions:", "  Counts:", "  Engine:", "Events:")}
print("  kubectl describe:", len(lines), "lines;", ", ".join(f"{k.strip()} at {v}" for k, v in where.items()))
problems = [f"no {k.strip()}" for k, v in where.items() if v is None]
if not problems and not where["Status:"] < where["  Best Trial:"] < where["  Conditions:"] < where["  Counts:"] < where["  Engine:"]:
    problems.append("the summary does not come before the engine's memory")
events = "\n".join(lines[where["Events:"] or 0:])
for reason in ("TrialStarted", "TrialDiscarded", "TrialCompleted", "SweepComplete"):
    if reason not in events:
        problems.append(f"no {reason} event")
for p in problems:
    print("  problem:", p)
sys.exit(1 if problems else 0)
PY

# ---- helm uninstall -------------------------------------------------------------------------------------------------
release_objects() {
    kubectl get serviceaccounts,roles,rolebindings,deployments,replicasets,pods,services,configmaps,networkpolicies \
        -A -l "app.kubernetes.io/instance=$RELEASE" -o name
    kubectl get clusterroles,clusterrolebindings -l "app.kubernetes.io/instance=$RELEASE" -o name
}
before=$(release_objects | wc -l)
helm uninstall "$RELEASE" -n "$RNS" --wait --timeout 60s > /dev/null
left=
for _ in $(seq 60); do
    left=$(release_objects)
    [[ -z $left ]] && break
    sleep 1
done
[[ -z $left ]] || fail "left behind after helm uninstall: $(echo "$left" | tr '\n' ' ')"
for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
kill -0 "$pid" 2>/dev/null && fail "the operator process $pid still runs after helm uninstall"
log "helm uninstall: $before objects of the release before, none after; operator process gone"
log "passed in $(( $(date +%s) - start )) s"
