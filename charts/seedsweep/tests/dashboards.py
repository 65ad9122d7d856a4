#!/usr/bin/env python3
"""Checks the Grafana dashboards' JSON models: python3 dashboards.py REPO_ROOT.

Per dashboard: schemaVersion, unique uid and title, a Prometheus datasource variable that every panel and query uses,
unique panel ids, gridPos inside the 24-column grid without overlaps, every $variable defined, and every metric name
one that the operator (operator/src/controller/telemetry.rs) or the trainer (crds/src/trainer.rs) exports. Also
checks files/alerts.yaml's expressions against the same metric names."""
import glob
import json
import os
import re
import sys

import yaml

root = sys.argv[1]
chart = os.path.join(root, "charts/seedsweep")
BUILTIN_VARS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s", "__name__"}
problems = []


def known_metrics():
    names = set()
    telemetry = open(os.path.join(root, "operator/src/controller/telemetry.rs")).read()
    for name in re.findall(r'"(seedsweep_operator_[a-z_]+)"', telemetry):
        names.add(name)
    # Histograms are exposed as their _bucket, _sum and _count series.
    for name in re.findall(r'HistogramOpts::new\(\s*"(seedsweep_operator_[a-z_]+)"', telemetry):
        names |= {f"{name}_{s}" for s in ("bucket", "sum", "count")}
    trainer = open(os.path.join(root, "crds/src/trainer.rs")).read()
    names |= set(re.findall(r'"(seedsweep_trial_[a-z_]+)"', trainer))
    if len(names) < 15:
        problems.append(f"found only {len(names)} metric names in the sources: {sorted(names)}")
    return names


METRICS = known_metrics()
PROMQL_WORDS = {"sum", "by", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile", "or", "on",
                "vector", "unless", "and", "absent", "changes", "le", "without", "ignoring", "topk", "bottomk",
                "label_values", "delta", "deriv", "time", "offset", "bool", "group_left", "group_right"}


def metric_names(expr):
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    return {w for w in re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr) if w.startswith("seedsweep_")}


def check_expr(where, expr):
    for name in metric_names(expr):
        if name not in METRICS:
            problems.append(f"{where}: unknown metric {name}")
    if expr.count("(") != expr.count(")"):
        problems.append(f"{where}: unbalanced parentheses in {expr}")


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels") or [])


uids, titles = set(), set()
files = sorted(glob.glob(os.path.join(chart, "dashboards/*.json")))
if len(files) < 2:
    problems.append(f"expected the sweep overview and operator health dashboards, found {files}")
for path in files:
    name = os.path.relpath(path, root)
    d = json.load(open(path))
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        problems.append(f"{name}: schemaVersion {d.get('schemaVersion')} (want >= 36, Grafana 9+)")
    for key, seen in (("uid", uids), ("title", titles)):
        if not d.get(key) or d[key] in seen:
            problems.append(f"{name}: {key} {d.get(key)!r} missing or not unique")
        seen.add(d.get(key))
    if d.get("id") is not None:
        problems.append(f"{name}: id must be null so that Grafana assigns one")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    ds_vars = [v for v in variables.values() if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    if len(ds_vars) != 1:
        problems.append(f"{name}: want exactly one Prometheus datasource variable, found {len(ds_vars)}")
    ds_ref = "${%s}" % ds_vars[0]["name"] if ds_vars else None
    for v in variables.values():
        if v.get("type") == "query":
            if (v.get("datasource") or {}).get("uid") != ds_ref:
                problems.append(f"{name}: variable {v['name']} does not query {ds_ref}")
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            check_expr(f"{name}: variable {v['name']}", q or "")
            for ref in re.findall(r"\$(\w+)", q or ""):
                if ref not in variables:
                    problems.append(f"{name}: variable {v['name']} uses undefined ${ref}")
    ids, cells = set(), {}
    panels = list(all_panels(d.get("panels", [])))
    if not panels:
        problems.append(f"{name}: no panels")
    for p in panels:
        where = f"{name}: panel {p.get('id')} {p.get('title')!r}"
        if not isinstance(p.get("id"), int) or p["id"] in ids:
            problems.append(f"{where}: id missing or not unique")
        ids.add(p.get("id"))
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")):
            problems.append(f"{where}: gridPos needs integer h, w, x, y: {g}")
            continue
        if g["w"] < 1 or g["h"] < 1 or g["x"] < 0 or g["y"] < 0 or g["x"] + g["w"] > 24:
            problems.append(f"{where}: gridPos outside the 24-column grid: {g}")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(f"{where}: overlaps panel {cells[(x, y)]} at ({x}, {y})")
                    break
                cells[(x, y)] = p["id"]
            else:
                continue
            break
        if p.get("type") == "row":
            continue
        if not p.get("title"):
            problems.append(f"{where}: no title")
        if (p.get("datasource") or {}).get("uid") != ds_ref:
            problems.append(f"{where}: datasource is not {ds_ref}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no queries")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            problems.append(f"{where}: duplicate refIds {refs}")
        for t in targets:
            if (t.get("datasource") or {}).get("uid") != ds_ref:
                problems.append(f"{where} {t.get('refId')}: datasource is not {ds_ref}")
            expr = t.get("expr") or ""
            if not expr.strip():
                problems.append(f"{where} {t.get('refId')}: empty expr")
            check_expr(f"{where} {t.get('refId')}", expr)
            for ref in re.findall(r"\$\{?(\w+)", expr):
                if ref not in variables and ref not in BUILTIN_VARS:
                    problems.append(f"{where} {t.get('refId')}: undefined variable ${ref}")
    print(f"{name}: {len(panels)} panels, {len(variables)} variables")

rules = yaml.safe_load(open(os.path.join(chart, "files/alerts.yaml")))
for group in rules["groups"]:
    for rule in group["rules"]:
        check_expr(f"files/alerts.yaml: {rule.get('alert') or rule.get('record')}", rule["expr"])

for p in problems:
    print(p)
print(f"dashboards: {len(problems)} problems")
sys.exit(1 if problems else 0)
