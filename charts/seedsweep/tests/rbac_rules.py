#!/usr/bin/env python3
"""The chart grants exactly what the operator needs, nothing more:
    python3 rbac_rules.py RENDERED.yaml [--no-leader-election]
Compares the set of (apiGroup, resource, verb) of every Role/ClusterRole in RENDERED with NEEDED below (less the
lease grants with --no-leader-election). That the operator needs no less is tested by running it on these rules:
operator/tests/operator_e2e.rs (rbac_allows_what_the_operator_does, and every sweep there) and
scripts/check-in-cluster.sh."""
import sys

import yaml

# Keep in step with the README's "Permissions".
NEEDED = {
    # Watch sweeps, write their status.
    *(("seedsweep.dev", "seedsweeps", v) for v in ("get", "list", "watch", "patch")),
    *(("seedsweep.dev", "seedsweeps/status", v) for v in ("get", "patch", "update")),
    # One Job per trial attempt; discarded trials' Jobs are deleted, finished ones labelled recorded (patch).
    *(("batch", "jobs", v) for v in ("get", "list", "watch", "create", "delete", "patch")),
    # Trial pods: IPs to scrape, termination messages to read.
    *(("", "pods", v) for v in ("get", "list", "watch")),
    *(("events.k8s.io", "events", v) for v in ("create", "patch")),
    # The engine's memory of each sweep, in chunks the sweep owns (server-side apply: create, then patch).
    *(("", "configmaps", v) for v in ("get", "create", "patch")),
    # Leader election.
    *(("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")),
}


def grants(path):
    out = set()
    with open(path) as f:
        for obj in yaml.safe_load_all(f):
            if obj and obj.get("kind") in ("Role", "ClusterRole"):
                for rule in obj.get("rules") or []:
                    if rule.get("resourceNames") or rule.get("nonResourceURLs"):
                        out.add(("unexpected", str(rule), ""))
                    for g in rule.get("apiGroups", []):
                        for r in rule.get("resources", []):
                            for v in rule.get("verbs", []):
                                out.add((g, r, v))
    return out


path = sys.argv[1]
want, got = set(NEEDED), grants(path)
if "--no-leader-election" in sys.argv[2:]:
    want = {g for g in want if g[:2] != ("coordination.k8s.io", "leases")}
extra, missing = sorted(got - want), sorted(want - got)
for g in extra:
    print(f"{path}: grants more than the operator needs: {g}")
for g in missing:
    print(f"{path}: lacks {g}")
if extra or missing:
    sys.exit(1)
print(f"{path}: the operator's {len(want)} (group, resource, verb) grants, no more")
