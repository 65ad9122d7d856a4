#!/usr/bin/env python3
"""Evaluates every query of the chart's Grafana dashboards against a real Prometheus (scripts/check-dashboards.sh):
    python3 dashboard_queries.py PROM_URL START END VAR=VALUE...
Template variables are substituted ($var and ${var}; $__rate_interval and friends get fixed values), each panel
query is run through /api/v1/query_range over [START, END] (the time picker Grafana would show for the sweep), and
each variable's label_values() query through /api/v1/label/<name>/values. Fails on any error from Prometheus and on
any query that returns no series; a variable must offer the value it was given."""
import glob
import json
import os
import re
import sys
import urllib.parse
import urllib.request

prom, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
values = dict(a.split("=", 1) for a in sys.argv[4:])
BUILTINS = {"__rate_interval": "15s", "__interval": "2s", "__range": f"{int(end - start)}s"}
chart = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
problems, checked = [], 0


def get(path, params):
    url = f"{prom}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def substitute(expr):
    def repl(m):
        name = m.group(1) or m.group(2)
        if name in BUILTINS:
            return BUILTINS[name]
        if name not in values:
            problems.append(f"no value given for ${name} in {expr}")
            return m.group(0)
        return values[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, expr)


for path in sorted(glob.glob(os.path.join(chart, "dashboards/*.json"))):
    d = json.load(open(path))
    name = os.path.basename(path)
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
        if not m:
            problems.append(f"{name}: variable {v['name']}: not a label_values(selector, label) query: {q}")
            continue
        selector, label = substitute(m.group(1)), m.group(2)
        r = get(f"/api/v1/label/{label}/values", {"match[]": selector, "start": start, "end": end})
        checked += 1
        if r.get("status") != "success":
            problems.append(f"{name}: variable {v['name']}: {r.get('error')}")
        elif values.get(v["name"]) not in r["data"]:
            problems.append(f"{name}: variable {v['name']} offers {r['data']}, not {values.get(v['name'])!r}")
        else:
            print(f"{name}: variable {v['name']}: {r['data']}")
    stack = list(d["panels"])
    while stack:
        p = stack.pop(0)
        stack.extend(p.get("panels") or [])
        for t in p.get("targets") or []:
            expr = substitute(t["expr"])
            r = get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": "2"})
            checked += 1
            where = f"{name}: panel {p['id']} {p['title']!r} {t['refId']}"
            if r.get("status") != "success":
                problems.append(f"{where}: {r.get('errorType')}: {r.get('error')}\n    {expr}")
            elif not r["data"]["result"]:
                problems.append(f"{where}: no data\n    {expr}")
            else:
                series = r["data"]["result"]
                points = sum(len(s["values"]) for s in series)
                print(f"{where}: {len(series)} series, {points} points")

for p in problems:
    print("PROBLEM", p)
print(f"dashboard queries: {checked} evaluated, {len(problems)} problems")
sys.exit(1 if problems or not checked else 0)
