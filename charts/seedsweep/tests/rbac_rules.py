#!/usr/bin/env python3
"""The chart grants exactly deploy/rbac.yaml's rules:
    python3 rbac_rules.py deploy/rbac.yaml RENDERED.yaml [--no-leader-election]
Compares the set of (apiGroup, resource, verb) of every Role/ClusterRole in RENDERED against the reference's (less
the lease grants with --no-leader-election)."""
import sys

import yaml


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


want, got = grants(sys.argv[1]), grants(sys.argv[2])
if "--no-leader-election" in sys.argv[3:]:
    want = {g for g in want if g[:2] != ("coordination.k8s.io", "leases")}
if not want:
    sys.exit(f"{sys.argv[1]}: no rules")
extra, missing = sorted(got - want), sorted(want - got)
for g in extra:
    print(f"{sys.argv[2]}: grants more than {sys.argv[1]}: {g}")
for g in missing:
    print(f"{sys.argv[2]}: lacks {g} of {sys.argv[1]}")
if extra or missing:
    sys.exit(1)
print(f"{sys.argv[2]}: the {len(want)} (group, resource, verb) grants of {sys.argv[1]}, no more")
