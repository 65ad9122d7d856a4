#!/usr/bin/env bash
# The project's test command (README "Tests", and what .ci/run calls): installs what the tests need on a fresh
# Debian machine (libtorch and the MiniLM model into .venv, helm into .tools), then runs every test of the
# workspace. Tests that need the Kubernetes control plane from ../shared/k8s start it themselves, and say why they
# skip when it is absent.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/setup-libtorch.sh
# The operator's RBAC test renders the Helm chart's ServiceAccount and RBAC with helm.
SEEDSWEEP_HELM="${SEEDSWEEP_HELM:-$(scripts/install-helm.sh)}"
export SEEDSWEEP_HELM
# Two cores: more test threads only make concurrent trainings fight over them.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
cargo test --workspace --locked "$@"
