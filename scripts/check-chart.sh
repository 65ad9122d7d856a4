#!/usr/bin/env bash
# Checks everything deployment-related, each with its real tool, and installs the chart into a real control plane:
#   static   yamllint; the chart's CRD byte-identical to crds/seedsweep.yaml; helm lint --strict and helm template
#            for several values sets through kubernetes-validate --strict; values.schema.json rejecting bad values
#            with the field named; the restricted Pod Security Standard on the rendered pod spec; the rendered RBAC
#            exactly the operator's grants (tests/rbac_rules.py); the PrometheusRule equal to files/alerts.yaml;
#            dashboard JSON models; promtool check + test rules; hadolint on both Dockerfiles; actionlint; shellcheck.
#   install  a v1.20 control plane from ../shared/k8s (SEEDSWEEP_K8S_DIR), helm install cluster-wide and namespaced,
#            kubectl auth can-i as the operator's ServiceAccount for every verb it needs and a list it must not have,
#            server-side dry run of examples/kind, helm uninstall leaving no operator object behind.
# Tools: scripts/install-tools.sh (run first as root; this script runs it when a tool is missing).
# CHECK_CHART_INSTALL=0 skips the install part (where ../shared/k8s does not exist it fails unless set so).
# Exit status 1 when any check fails; a summary at the end either way.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
chart=charts/seedsweep
start=$(date +%s)
export PATH="$repo/.tools/bin:$PATH"
PY=$repo/.tools/venv/bin/python
for tool in helm promtool kubernetes-validate hadolint actionlint yamllint shellcheck node kubectl; do
    if ! command -v "$tool" >/dev/null || [[ ! -x $PY ]] || [[ ! -d .tools/node/node_modules ]]; then
        [[ $tool == kubectl ]] && { echo "check-chart: kubectl is missing" >&2; exit 1; }
        scripts/install-tools.sh >/dev/null
        break
    fi
done

work=$(mktemp -d)
state=""
cleanup() {
    if [[ -n $state && -f $state/env ]]; then
        "$k8s_dir/stop.sh" "$state" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=()
# check NAME CMD...: runs CMD with its output in $work/log, prints it only on failure.
check() {
    local name=$1; shift
    local t0; t0=$(date +%s)
    if "$@" >"$work/log" 2>&1; then
        passed=$((passed + 1))
        printf '  ok    %-68s %3d s\n' "$name" "$(( $(date +%s) - t0 ))"
    else
        failed+=("$name")
        printf '  FAIL  %s\n' "$name"
        sed 's/^/        /' "$work/log" | tail -40
    fi
}
# expect_fail NAME PATTERN CMD...: CMD must fail and print PATTERN (extended regex).
expect_fail() {
    local name=$1 pattern=$2; shift 2
    if "$@" >"$work/log" 2>&1; then
        echo "expected a failure: $*"; return 1
    fi
    grep -Eq -- "$pattern" "$work/log" || { echo "the error does not match /$pattern/:"; cat "$work/log"; return 1; }
}

echo "check-chart: static checks"
yaml_files=("$chart/Chart.yaml" "$chart/values.yaml" "$chart/files/alerts.yaml" "$chart"/tests/*.yaml
    "$chart"/tests/values/*.yaml examples/kind/*.yaml .github/workflows/*.yml)
check "yamllint (chart values, alerts, tests, examples/kind, workflows)" \
    yamllint -s -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}, braces: {max-spaces-inside: 1}, brackets: {max-spaces-inside: 1}}}' \
    "${yaml_files[@]}"
check "CRD in the chart byte-identical to crds/seedsweep.yaml" cmp crds/seedsweep.yaml "$chart/crds/seedsweep.yaml"

values_sets=(default namespaced all-optional replicas-2 single-no-leader)
values_file() { if [[ $1 == default ]]; then echo /dev/null; else echo "$chart/tests/values/$1.yaml"; fi; }
for v in "${values_sets[@]}"; do
    check "helm lint --strict ($v)" helm lint --strict "$chart" -f "$(values_file "$v")"
    check "helm template ($v)" sh -c "helm template ssw '$chart' -n seedsweep-system --include-crds -f '$(values_file "$v")' > '$work/$v.yaml'"
done

# kubernetes-validate knows the Kubernetes kinds; the Prometheus Operator's ServiceMonitor, PodMonitor and
# PrometheusRule are CRDs it has no schema for: it warns about them, and only about them (checked). They are checked
# next against the Prometheus Operator's own schemas (types, enums, required fields; not unknown fields), and the
# PrometheusRule's rules with promtool.
validate() {
    kubernetes-validate --strict -k 1.33.0 "$1" > "$work/validate.out" 2>&1 || { cat "$work/validate.out"; return 1; }
    cat "$work/validate.out"
    if grep -E '^(WARN|ERROR)' "$work/validate.out" | grep -Ev "Couldn't find schema for kind (ServiceMonitor|PodMonitor|PrometheusRule) with api version monitoring.coreos.com/v1"; then
        return 1
    fi
    local n; n=$(grep -c '^INFO .* passed for resource' "$work/validate.out")
    [[ $n -ge 6 ]] || { echo "only $n resources validated"; return 1; }
}
for v in "${values_sets[@]}"; do
    check "kubernetes-validate --strict, Kubernetes 1.33 schemas ($v)" validate "$work/$v.yaml"
done
monitoring_objects() {
    "$PY" -c 'import sys, yaml, json; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1]))
        if d and d["apiVersion"].startswith("monitoring.coreos.com/")]))' "$work/all-optional.yaml" > "$work/monitoring.json"
    node "$chart/tests/monitoring_objects.mjs" "$repo/.tools/node" < "$work/monitoring.json" || return 1
    # The validator rejects what it should (a wrong type, a missing field), so its pass above means something.
    echo '[{"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "bad"},
        "spec": {"selector": {}, "podMetricsEndpoints": [{"port": 8080}]}}]' > "$work/bad-monitoring.json"
    if node "$chart/tests/monitoring_objects.mjs" "$repo/.tools/node" < "$work/bad-monitoring.json"; then
        echo "the validator accepted a PodMonitor with a numeric port name"; return 1
    fi
}
check "ServiceMonitor, PodMonitor, PrometheusRule against the Prometheus Operator's schemas" monitoring_objects
count_kind() { "$PY" -c 'import sys, yaml; print(sum(1 for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == sys.argv[2]))' "$@"; }
rendered_kinds() {
    local v=$1; shift
    local kind want got
    for spec in "$@"; do
        kind=${spec%=*}; want=${spec#*=}
        got=$(count_kind "$work/$v.yaml" "$kind")
        [[ $got == "$want" ]] || { echo "$v: $got $kind, want $want"; return 1; }
    done
}
check "default: ClusterRole, no Role for sweeps, no optional objects" rendered_kinds default \
    ClusterRole=1 ClusterRoleBinding=1 Role=1 RoleBinding=1 ServiceMonitor=0 PodMonitor=0 PrometheusRule=0 \
    NetworkPolicy=0 ConfigMap=2 Deployment=1 Service=1 ServiceAccount=1 CustomResourceDefinition=1
check "namespaced: Roles only, --namespace passed" sh -c "
    grep -q -- '--namespace=ml-sweeps' '$work/namespaced.yaml' &&
    [ \"\$(grep -c '^kind: ClusterRole' '$work/namespaced.yaml')\" = 0 ]"
check "namespaced: RBAC objects in ml-sweeps and the release namespace" rendered_kinds namespaced \
    Role=2 RoleBinding=2 NetworkPolicy=1
check "all-optional: every optional object rendered" rendered_kinds all-optional \
    ServiceMonitor=1 PodMonitor=1 PrometheusRule=1 NetworkPolicy=2 ConfigMap=2
check "replicas-2: 2 replicas, every flag from values" sh -c "
    f='$work/replicas-2.yaml'
    grep -q 'replicas: 2' \"\$f\" && for a in --lease-name=ssw-leader --lease-namespace=ml-control --lease-duration=20 \
      --log-format=text --trainer-image=registry.example/seedsweep-trainer:cpu \
      --trainer-command=/usr/local/bin/seedsweep-trainer --scrape-interval=5 --scrape-timeout=2.5 \
      --scrape-concurrency=16 --status-interval=10 --metrics-addr=0.0.0.0:9090; do
      grep -q -- \"- \$a\$\" \"\$f\" || { echo \"missing \$a\"; exit 1; }; done
    grep -q 'value: \"debug\"' \"\$f\" && grep -q 'namespace: ml-control' \"\$f\""
check "single-no-leader: --no-leader-election, no lease Role" sh -c "
    grep -q -- '- --no-leader-election' '$work/single-no-leader.yaml' &&
    ! grep -q -- '--lease-' '$work/single-no-leader.yaml' && ! grep -q leases '$work/single-no-leader.yaml'"

check "values.schema.json rejects bad values, naming the field" sh -c "
    set -e
    bad() { pattern=\$1; shift; if helm template x '$chart' \"\$@\" > /dev/null 2> '$work/schema.err'; then
        echo \"accepted: \$*\"; exit 1; fi
      grep -Eq -- \"\$pattern\" '$work/schema.err' || { echo \"\$* -> unexpected error:\"; cat '$work/schema.err'; exit 1; }; }
    bad 'replicaCount: Must be greater than or equal to 1' --set replicaCount=0
    bad 'leaderElection.enabled' --set replicaCount=2 --set leaderElection.enabled=false
    bad 'logging.format must be one of' --set logging.format=xml
    bad 'scrape.interval: Must be greater than 0' --set scrape.interval=0
    bad 'scrape.timeout: Must be less than or equal to 3600' --set scrape.timeout=7200
    bad 'watchNamespace: Does not match pattern' --set watchNamespace=Not_A_Namespace
    bad 'metrics.port: Must be less than or equal to 65535' --set metrics.port=70000
    bad 'leaderElection.leaseDuration: Must be greater than or equal to 2' --set leaderElection.leaseDuration=1
    bad 'trainer.command' --set trainer.command=
    bad 'image.pullPolicy must be one of' --set image.pullPolicy=Sometimes
    bad 'Additional property replicas is not allowed' --set replicas=2
    bad 'scrape.concurrency: Invalid type' --set-string scrape.concurrency=many
    bad 'networkPolicy.namespaces: list the namespaces' --set networkPolicy.enabled=true
"

pss() {
    for v in "${values_sets[@]}"; do "$PY" "$chart/tests/pod_security.py" "$work/$v.yaml" || return 1; done
    # The checker itself rejects a non-compliant rendering (so a pass above means something).
    helm template ssw "$chart" --set securityContext.allowPrivilegeEscalation=true \
        --set podSecurityContext.runAsNonRoot=false --set securityContext.runAsNonRoot=null \
        --set securityContext.capabilities.drop=null > "$work/insecure.yaml"
    if "$PY" "$chart/tests/pod_security.py" "$work/insecure.yaml" > "$work/insecure.out"; then
        echo "pod_security.py accepted an insecure pod spec"; return 1
    fi
    grep -q 'allowPrivilegeEscalation must be false' "$work/insecure.out" \
        && grep -q 'runAsNonRoot must be true' "$work/insecure.out" \
        && grep -q 'capabilities.drop must include ALL' "$work/insecure.out"
}
check "operator pod spec meets the restricted Pod Security Standard (every values set)" pss
rbac() {
    for v in default namespaced all-optional replicas-2; do
        "$PY" "$chart/tests/rbac_rules.py" "$work/$v.yaml" || return 1
    done
    "$PY" "$chart/tests/rbac_rules.py" "$work/single-no-leader.yaml" --no-leader-election
}
check "rendered RBAC grants exactly the operator's rules (every values set)" rbac
prometheusrule() {
    "$PY" - "$work/all-optional.yaml" "$chart/files/alerts.yaml" "$work/from-chart.yaml" <<'PY'
import sys, yaml
rule = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"][0]
source = yaml.safe_load(open(sys.argv[2]))
if rule["spec"]["groups"] != source["groups"]:
    sys.exit("the PrometheusRule's groups differ from files/alerts.yaml")
yaml.safe_dump({"groups": rule["spec"]["groups"]}, open(sys.argv[3], "w"))
print(f"{sum(len(g['rules']) for g in source['groups'])} rules, identical")
PY
    promtool check rules "$work/from-chart.yaml"
}
check "PrometheusRule = files/alerts.yaml, and promtool accepts it" prometheusrule
check "dashboards: JSON models, datasource variable, metric names exist" "$PY" "$chart/tests/dashboards.py" .
check "promtool check rules files/alerts.yaml" promtool check rules "$chart/files/alerts.yaml"
check "promtool test rules (alert unit tests)" promtool test rules "$chart/tests/alerts-test.yaml"
check "hadolint operator/Dockerfile trainer/Dockerfile" hadolint operator/Dockerfile trainer/Dockerfile
check "actionlint .github/workflows" actionlint .github/workflows/*.yml
shell_scripts=(scripts/*.sh tests/e2e/*.sh .ci/run)
# Severity warning and up: two info-level notes (SC2012, ls | head) stand in bench-trainer.sh and setup-libtorch.sh.
check "shellcheck -S warning: ${#shell_scripts[@]} scripts (scripts/, tests/e2e/, .ci/run)" \
    shellcheck -S warning "${shell_scripts[@]}"

install_checks() {
# ---- install into a real control plane ----------------------------------------------------------------------------
SA_GROUPS=(--as-group=system:serviceaccounts --as-group=system:authenticated)
# can NS SA VERB RESOURCE [kubectl args]: the ServiceAccount (with its groups) may do it.
can() {
    local ns=$1 sa=$2; shift 2
    kubectl auth can-i "$@" --as="system:serviceaccount:$ns:$sa" "${SA_GROUPS[@]}" \
        --as-group="system:serviceaccounts:$ns" >/dev/null 2>&1
}
# allowed RELEASE_NS SA LINE...: each LINE "NS VERB RESOURCE [args]" must be allowed; denied: must be refused.
allowed() {
    local rns=$1 sa=$2; shift 2
    local line ns rest
    for line in "$@"; do
        read -r ns rest <<<"$line"
        # shellcheck disable=SC2086 # rest is "VERB RESOURCE [flags]"
        if [[ $ns == '*' ]]; then can "$rns" "$sa" $rest -A; else can "$rns" "$sa" $rest -n "$ns"; fi \
            || { echo "denied, but the operator needs it: $line"; return 1; }
        echo "allowed: $line"
    done
}
denied() {
    local rns=$1 sa=$2; shift 2
    local line ns rest
    for line in "$@"; do
        read -r ns rest <<<"$line"
        # shellcheck disable=SC2086
        if [[ $ns == '*' ]]; then can "$rns" "$sa" $rest -A; else can "$rns" "$sa" $rest -n "$ns"; fi \
            && { echo "allowed, but the operator must not have it: $line"; return 1; }
        echo "denied: $line"
    done
}
needs_in() {  # the operator's verbs on sweeps, Jobs, pods and events in namespace $1
    local ns=$1
    echo "$ns get seedsweeps.seedsweep.dev"; echo "$ns list seedsweeps.seedsweep.dev"
    echo "$ns watch seedsweeps.seedsweep.dev"
    # The checkpoint finalizer on sweeps with a checkpoint volume.
    echo "$ns patch seedsweeps.seedsweep.dev"
    for v in get patch update; do echo "$ns $v seedsweeps.seedsweep.dev --subresource=status"; done
    for v in get list watch create delete patch; do echo "$ns $v jobs.batch"; done
    for v in get list watch; do echo "$ns $v pods"; done
    for v in create patch; do echo "$ns $v events.events.k8s.io"; done
    for v in get create patch; do echo "$ns $v configmaps"; done
}
forbidden_in() {  # what it must not do in namespace $1
    local ns=$1
    printf '%s\n' "$ns get secrets" "$ns list secrets" "$ns create pods --subresource=exec" "$ns create pods" \
        "$ns delete pods" "$ns delete configmaps" "$ns update jobs.batch" \
        "$ns create seedsweeps.seedsweep.dev" "$ns update seedsweeps.seedsweep.dev" \
        "$ns delete seedsweeps.seedsweep.dev" "$ns create deployments.apps" "$ns delete leases.coordination.k8s.io" \
        "$ns create serviceaccounts --subresource=token" "$ns create rolebindings.rbac.authorization.k8s.io"
}
lease_needs() { local ns=$1; printf '%s\n' "$ns get leases.coordination.k8s.io" "$ns create leases.coordination.k8s.io" "$ns update leases.coordination.k8s.io"; }
cluster_forbidden=("* list nodes" "* create customresourcedefinitions.apiextensions.k8s.io"
    "* list secrets" "* create clusterrolebindings.rbac.authorization.k8s.io" "* impersonate users")

operator_objects() {  # every namespaced and cluster-scoped object of release $1
    kubectl get serviceaccounts,roles,rolebindings,deployments,replicasets,pods,services,configmaps,networkpolicies \
        -A -l "app.kubernetes.io/instance=$1" -o name
    kubectl get clusterroles,clusterrolebindings -l "app.kubernetes.io/instance=$1" -o name
}
installed_pods() {  # release $1 namespace $2 want $3: the Deployment's ReplicaSet created that many pods
    local n
    for _ in $(seq 60); do
        n=$(kubectl get pods -n "$2" -l "app.kubernetes.io/instance=$1,app.kubernetes.io/component=operator" -o name | wc -l)
        [[ $n == "$3" ]] && { echo "$n operator pods created (no kubelet here runs them)"; return 0; }
        sleep 1
    done
    echo "expected $3 operator pods of $1 in $2, found $n"; kubectl get events -n "$2"; return 1
}
uninstalled() {  # release $1 namespace $2 object count before $3: nothing of it remains, the CRD stays
    local before=$3 left
    helm uninstall "$1" -n "$2" --wait --timeout 60s
    for _ in $(seq 60); do
        left=$(operator_objects "$1")
        [[ -z $left ]] && break
        sleep 1
    done
    [[ -z $left ]] || { echo "left behind after helm uninstall:"; echo "$left"; return 1; }
    echo "$before objects before, none after helm uninstall"
    kubectl get crd seedsweeps.seedsweep.dev >/dev/null && echo "the CRD stays (Helm never deletes crds/)"
}
count_objects() { operator_objects "$1" | wc -l; }

state=$work/k8s
export K8S_APISERVER_PORT=${K8S_APISERVER_PORT:-26443} K8S_ETCD_PORT=${K8S_ETCD_PORT:-22379}
export K8S_KCM_PORT=${K8S_KCM_PORT:-20257} K8S_SCHED_PORT=${K8S_SCHED_PORT:-20259}
check "control plane v1.20 on 127.0.0.1:$K8S_APISERVER_PORT" "$k8s_dir/start.sh" "$state"
if [[ -f $state/env ]]; then
    # shellcheck disable=SC1091
    source "$state/env"
    kubectl create namespace ml-a >/dev/null
    kubectl create namespace ml-b >/dev/null

    # Cluster-wide: release "ssw" in seedsweep-system.
    rns=seedsweep-system sa=ssw-seedsweep
    check "helm install (cluster-wide) with the CRD; NOTES.txt renders" sh -c "
        helm install ssw '$chart' -n $rns --create-namespace > '$work/notes.txt' &&
        grep -q 'kubectl get ssw -n default -w' '$work/notes.txt' &&
        grep -q 'rollout status deployment/ssw-seedsweep' '$work/notes.txt' &&
        kubectl wait --for condition=established --timeout=30s crd/seedsweeps.seedsweep.dev"
    check "cluster-wide: the Deployment's pod is created (apiserver admits its spec)" installed_pods ssw "$rns" 1
    mapfile -t needs < <(needs_in ml-a; needs_in "$rns"; lease_needs "$rns"; echo "* list seedsweeps.seedsweep.dev";
        echo "* watch jobs.batch"; echo "* list pods")
    check "cluster-wide: can-i allows all ${#needs[@]} verbs the operator needs" allowed "$rns" "$sa" "${needs[@]}"
    mapfile -t nots < <(forbidden_in ml-a; forbidden_in "$rns"; echo "ml-a get leases.coordination.k8s.io")
    check "cluster-wide: can-i denies ${#nots[@]} others (secrets, exec, pods, nodes, CRDs, ...)" \
        denied "$rns" "$sa" "${nots[@]}" "${cluster_forbidden[@]}"
    check "examples/kind: server-side dry run against the installed CRD" \
        kubectl apply --dry-run=server -n ml-a -f examples/kind/data.yaml -f examples/kind/sweep.yaml
    check "helm upgrade --set replicaCount=2: two pods" sh -c "
        helm upgrade ssw '$chart' -n $rns --reuse-values --set replicaCount=2 >/dev/null"
    check "cluster-wide: 2 replicas after the upgrade" installed_pods ssw "$rns" 2
    before=$(count_objects ssw)
    check "cluster-wide: helm uninstall leaves no operator object ($before before)" uninstalled ssw "$rns" "$before"

    # Namespaced: release "team" in ml-ops watching ml-b only.
    rns=ml-ops sa=team-seedsweep
    check "helm install (namespaced: watchNamespace=ml-b)" \
        helm install team "$chart" -n "$rns" --create-namespace --set watchNamespace=ml-b
    check "namespaced: the Deployment's pod is created" installed_pods team "$rns" 1
    mapfile -t needs < <(needs_in ml-b; lease_needs "$rns")
    check "namespaced: can-i allows all ${#needs[@]} verbs the operator needs in ml-b" allowed "$rns" "$sa" "${needs[@]}"
    mapfile -t nots < <(forbidden_in ml-b; needs_in ml-a; lease_needs ml-b; echo "* list seedsweeps.seedsweep.dev";
        echo "* list pods"; echo "$rns list seedsweeps.seedsweep.dev")
    check "namespaced: can-i denies ${#nots[@]} others, all of them outside ml-b" \
        denied "$rns" "$sa" "${nots[@]}" "${cluster_forbidden[@]}"
    before=$(count_objects team)
    check "namespaced: helm uninstall leaves no operator object ($before before)" uninstalled team "$rns" "$before"
fi
}

k8s_dir=${SEEDSWEEP_K8S_DIR:-$repo/../shared/k8s}
if [[ ${CHECK_CHART_INSTALL:-1} == 0 ]]; then
    echo "check-chart: install checks skipped (CHECK_CHART_INSTALL=0)"
elif [[ ! -x $k8s_dir/start.sh ]]; then
    failed+=("install: no control plane at $k8s_dir (set SEEDSWEEP_K8S_DIR, or CHECK_CHART_INSTALL=0 to skip)")
else
    echo "check-chart: install into a real control plane"
    install_checks
fi

echo "check-chart: $passed passed, ${#failed[@]} failed in $(( $(date +%s) - start )) s"
for f in "${failed[@]}"; do echo "  failed: $f"; done
[[ ${#failed[@]} == 0 ]]
