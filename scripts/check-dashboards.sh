#!/usr/bin/env bash
# Evaluates every Grafana dashboard query of the chart against real data: a v1.20 control plane (../shared/k8s), the
# node simulator running trial pods as local trainer processes, the chart installed watching one namespace, the
# operator binary run out of cluster as the chart's ServiceAccount with the chart's own flags, a small real MiniLM
# sweep, and a real Prometheus on loopback scraping the operator (honor_labels) and the trial pods (kubernetes_sd_configs
# role pod through the kubeconfig, honouring the prometheus.io annotations and relabelling the namespace, as
# charts/seedsweep/files/alerts.yaml and the dashboards expect; Debian's prometheus lacks Kubernetes discovery, so
# there charts/seedsweep/tests/pod_discovery.py feeds the same pods and __meta_kubernetes_* labels through file_sd). Then every panel query, template
# variables substituted, goes through Prometheus's HTTP API: a parse error or an empty result fails.
#
#   scripts/check-dashboards.sh [BIN_DIR]    BIN_DIR holds seedsweep, seedsweep-trainer, seedsweep-node-sim
#                                            (default target/debug); needs scripts/setup-libtorch.sh's .minilm
# Tools: scripts/install-tools.sh (helm, prometheus). Takes about 2-4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
bin=$(cd "${1:-target/debug}" && pwd)
chart=charts/seedsweep
k8s_dir=${SEEDSWEEP_K8S_DIR:-$repo/../shared/k8s}
export PATH="$repo/.tools/bin:$PATH"
PY=$repo/.tools/venv/bin/python
start=$(date +%s)
log() { echo "check-dashboards [$(( $(date +%s) - start )) s]: $*" >&2; }
for b in seedsweep seedsweep-trainer seedsweep-node-sim; do
    [[ -x $bin/$b ]] || { log "missing $bin/$b (build it, or pass BIN_DIR)"; exit 1; }
done
[[ -d $repo/.minilm ]] || { log "missing .minilm: run scripts/setup-libtorch.sh"; exit 1; }
if ! command -v prometheus >/dev/null || ! command -v helm >/dev/null; then scripts/install-tools.sh >/dev/null; fi

work=$(mktemp -d)
pids=()
cleanup() {
    local rc=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ -f $work/k8s/env ]] && "$k8s_dir/stop.sh" "$work/k8s" >/dev/null 2>&1
    if [[ $rc != 0 ]]; then
        for f in operator.log node-sim.log prometheus.log; do
            [[ -f $work/$f ]] && { echo "--- $f (tail)"; tail -25 "$work/$f"; }
        done
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

export K8S_APISERVER_PORT=${K8S_APISERVER_PORT:-28443} K8S_ETCD_PORT=${K8S_ETCD_PORT:-28379}
export K8S_KCM_PORT=${K8S_KCM_PORT:-28257} K8S_SCHED_PORT=${K8S_SCHED_PORT:-28259}
OPERATOR_PORT=${OPERATOR_PORT:-18080}
PROM_PORT=${PROM_PORT:-19090}
NS=sweeps
RELEASE_NS=seedsweep-system
SWEEP=dash

log "control plane"
"$k8s_dir/start.sh" "$work/k8s" > "$work/k8s.log" 2>&1 || { cat "$work/k8s.log"; exit 1; }
# shellcheck disable=SC1091
source "$work/k8s/env"
kubectl create namespace "$NS" >/dev/null

log "node simulator"
"$bin/seedsweep-node-sim" --kubeconfig "$KUBECONFIG" --node-name sim-0 --cpu 16 --memory 64Gi \
    --ip-base 127.42.0.0 --work-dir "$work/node" > "$work/node-sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 60); do
    [[ $(kubectl get node sim-0 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]] && break
    sleep 1
done

log "helm install (watching $NS; the Deployment's pod is kept off the simulated node)"
helm install ssw "$chart" -n "$RELEASE_NS" --create-namespace --set watchNamespace="$NS" \
    --set-string "nodeSelector.seedsweep\.dev/no-such-node=true" --set trainer.command="$bin/seedsweep-trainer" \
    --set scrape.interval=1 --set statusInterval=1 --set metrics.port="$OPERATOR_PORT" --set logging.format=text \
    > /dev/null
kubectl wait --for condition=established --timeout=30s crd/seedsweeps.seedsweep.dev > /dev/null

# The operator as the chart's ServiceAccount (its token secret), with the Deployment's own arguments.
sa=ssw-seedsweep
for _ in $(seq 30); do
    secret=$(kubectl -n "$RELEASE_NS" get sa "$sa" -o jsonpath='{.secrets[0].name}' 2>/dev/null || true)
    [[ -n $secret ]] && break
    sleep 1
done
[[ -n $secret ]] || { log "no token for ServiceAccount $sa"; exit 1; }
token=$(kubectl -n "$RELEASE_NS" get secret "$secret" -o jsonpath='{.data.token}' | base64 -d)
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
cat > "$work/operator.kubeconfig" <<EOK
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$server", certificate-authority-data: $ca}}]
users: [{name: operator, user: {token: "$token"}}]
contexts: [{name: operator, context: {cluster: local, user: operator}}]
current-context: operator
EOK
mapfile -t args < <(kubectl -n "$RELEASE_NS" get deployment ssw-seedsweep \
    -o go-template='{{range (index .spec.template.spec.containers 0).args}}{{.}}{{"\n"}}{{end}}')
args=("${args[@]/#--metrics-addr=*/--metrics-addr=127.0.0.1:$OPERATOR_PORT}")
log "operator: seedsweep ${args[*]}"
POD_NAME=ssw-seedsweep-local POD_NAMESPACE=$RELEASE_NS RUST_LOG=info,kube=warn \
    "$bin/seedsweep" "${args[@]}" --kubeconfig "$work/operator.kubeconfig" > "$work/operator.log" 2>&1 &
pids+=($!)

log "prometheus on 127.0.0.1:$PROM_PORT"
# Trial pods by their prometheus.io annotations, the namespace relabelled to `namespace` (docs/monitoring.md).
cat > "$work/pod-relabelling.yml" <<'EOR'
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], action: keep, regex: "true"}
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], target_label: __metrics_path__, regex: (.+)}
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: '([^:]+)(?::\d+)?;(\d+)'
        replacement: '$1:$2'
        target_label: __address__
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
EOR
prom_config() {  # $1: the pod job's service discovery
    cat <<EOP
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
rule_files: [$repo/$chart/files/alerts.yaml]
scrape_configs:
  # The operator's series carry the sweep's namespace: honor_labels keeps it (the chart's ServiceMonitor does too).
  - job_name: seedsweep-operator
    honor_labels: true
    static_configs: [{targets: ["127.0.0.1:$OPERATOR_PORT"]}]
  - job_name: kubernetes-pods
$1
$(cat "$work/pod-relabelling.yml")
EOP
}
prom_config "    kubernetes_sd_configs: [{role: pod, kubeconfig_file: $KUBECONFIG, namespaces: {names: [$NS]}}]" \
    > "$work/prometheus.yml"
if ! promtool check config "$work/prometheus.yml" > "$work/promtool.out" 2>&1; then
    grep -q 'field kubernetes_sd_configs not found' "$work/promtool.out" || { cat "$work/promtool.out"; exit 1; }
    # Debian's prometheus is built without Kubernetes discovery: the same pods and __meta_kubernetes_* labels come
    # from the apiserver through a file_sd target file, so the relabelling above is exercised unchanged.
    log "this prometheus has no kubernetes_sd_configs; pod discovery through file_sd (tests/pod_discovery.py)"
    "$PY" "$chart/tests/pod_discovery.py" "$NS" "$work/pods.json" 1 &
    pids+=($!)
    prom_config "    file_sd_configs: [{files: [$work/pods.json], refresh_interval: 1s}]" > "$work/prometheus.yml"
    promtool check config "$work/prometheus.yml" > /dev/null
fi
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" > "$work/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null && break; sleep 1; done
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$OPERATOR_PORT/readyz" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$OPERATOR_PORT/readyz" >/dev/null || { log "operator not ready"; exit 1; }

log "sweep $NS/$SWEEP: 2 x 2 MiniLM trials, one rung at 25 % keeping 1"
t0=$(date +%s)
kubectl -n "$NS" apply -f - > /dev/null <<EOS
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
phase=
for _ in $(seq 600); do
    phase=$(kubectl -n "$NS" get ssw "$SWEEP" -o jsonpath='{.status.phase}')
    [[ $phase == Succeeded || $phase == Failed || $phase == Invalid ]] && break
    sleep 1
done
log "sweep phase: $phase ($(kubectl -n "$NS" get ssw "$SWEEP" -o jsonpath='{.status.counts}'))"
[[ $phase == Succeeded ]] || { kubectl -n "$NS" describe ssw "$SWEEP" | tail -30; exit 1; }
sleep 5  # a few more scrapes of the operator's final numbers
t1=$(date +%s)
kubectl -n "$RELEASE_NS" get lease seedsweep-operator -o jsonpath='{.spec.holderIdentity}' | grep -qx ssw-seedsweep-local \
    || { log "the operator does not hold the lease"; exit 1; }
targets=$(curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query?query=count(count_over_time(up%7Bjob%3D%22kubernetes-pods%22%7D%5B1h%5D))" \
    | "$PY" -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
log "Prometheus scraped $targets trial pods"
[[ $targets -ge 4 ]] || { log "expected all 4 trial pods among Prometheus's targets"; exit 1; }

log "alert rules: every one evaluated without error, none pending or firing after a healthy sweep"
curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/rules" | "$PY" -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
problems = []
for r in rules:
    if r["health"] != "ok":
        problems.append("%s: health %s %s" % (r["name"], r["health"], r.get("lastError", "")))
    if r.get("state", "inactive") != "inactive":
        problems.append("%s: %s" % (r["name"], r["state"]))
print("%d rules evaluated" % len(rules))
print("\n".join(problems))
sys.exit(1 if problems or len(rules) < 6 else 0)'
log "evaluating every dashboard query over the sweep's $(( t1 - t0 )) s"
"$PY" "$chart/tests/dashboard_queries.py" "http://127.0.0.1:$PROM_PORT" "$t0" "$t1" \
    namespace="$NS" sweep="$SWEEP" metric=acc_and_f1
log "passed"
