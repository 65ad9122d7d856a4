#!/usr/bin/env python3
"""Prometheus pod discovery for a Prometheus built without kubernetes_sd_configs (Debian's package leaves it out):
    python3 pod_discovery.py NAMESPACE OUT.json [INTERVAL]
Lists the namespace's Running pods with kubectl every INTERVAL seconds (default 1) and writes a file_sd target file
with one target per container port and the same __meta_kubernetes_* labels that kubernetes_sd_configs role pod
gives (namespace, pod name and IP, annotations, labels, port name), so the usual prometheus.io relabelling applies
unchanged. scripts/check-dashboards.sh uses it; runs until killed."""
import json
import os
import re
import subprocess
import sys
import time


def name(s):
    return re.sub(r"[^a-zA-Z0-9_]", "_", s)


def targets(namespace):
    pods = json.loads(subprocess.check_output(["kubectl", "get", "pods", "-n", namespace, "-o", "json"]))["items"]
    groups = []
    for p in pods:
        ip = (p.get("status") or {}).get("podIP")
        if not ip or p["status"].get("phase") != "Running":
            continue
        labels = {"__meta_kubernetes_namespace": p["metadata"]["namespace"],
                  "__meta_kubernetes_pod_name": p["metadata"]["name"], "__meta_kubernetes_pod_ip": ip}
        for k, v in (p["metadata"].get("annotations") or {}).items():
            if k != "kubectl.kubernetes.io/last-applied-configuration":
                labels["__meta_kubernetes_pod_annotation_" + name(k)] = v
        for k, v in (p["metadata"].get("labels") or {}).items():
            labels["__meta_kubernetes_pod_label_" + name(k)] = v
        for c in p["spec"]["containers"]:
            for port in c.get("ports") or []:
                groups.append({"targets": [f"{ip}:{port['containerPort']}"],
                               "labels": dict(labels, __meta_kubernetes_pod_container_name=c["name"],
                                              __meta_kubernetes_pod_container_port_name=port.get("name", ""))})
    return groups


def main():
    namespace, out = sys.argv[1], sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    while True:
        try:
            groups = targets(namespace)
        except subprocess.CalledProcessError:
            time.sleep(interval)
            continue
        with open(out + ".tmp", "w") as f:
            json.dump(groups, f)
        os.replace(out + ".tmp", out)
        time.sleep(interval)


if __name__ == "__main__":
    main()
