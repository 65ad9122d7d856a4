#!/usr/bin/env python3
"""Checks every pod template in rendered manifests against the `restricted` Pod Security Standard (Kubernetes
v1.33 rules, baseline included): python3 pod_security.py RENDERED.yaml... ; exit 1 and one line per violation."""
import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"}
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                   "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def pod_spec(obj):
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] == "Job":
        return obj["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def check(spec):
    bad = []
    psc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            bad.append(f"spec.{field} must be false or unset")
    for v in spec.get("volumes") or []:
        kinds = [k for k in v if k != "name"]
        for k in kinds:
            if k not in ALLOWED_VOLUMES:
                bad.append(f"volume {v['name']}: type {k} is not allowed (hostPath and other non-ephemeral types)")
    for s in psc.get("sysctls") or []:
        if s.get("name") not in SAFE_SYSCTLS:
            bad.append(f"spec.securityContext.sysctls: {s.get('name')} is not a safe sysctl")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    pod_nonroot = psc.get("runAsNonRoot")
    if pod_seccomp is not None and pod_seccomp not in ("RuntimeDefault", "Localhost"):
        bad.append(f"spec.securityContext.seccompProfile.type must be RuntimeDefault or Localhost, got {pod_seccomp}")
    if psc.get("runAsUser") == 0:
        bad.append("spec.securityContext.runAsUser must not be 0")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        bad.append("spec.securityContext.windowsOptions.hostProcess must not be true")
    bad += selinux("spec.securityContext", psc)
    containers = [("containers", c) for c in spec.get("containers") or []]
    containers += [("initContainers", c) for c in spec.get("initContainers") or []]
    containers += [("ephemeralContainers", c) for c in spec.get("ephemeralContainers") or []]
    if not containers:
        bad.append("no containers")
    for kind, c in containers:
        where = f"spec.{kind}[{c.get('name')}]"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            bad.append(f"{where}.securityContext.privileged must be false or unset")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{where}.securityContext.allowPrivilegeEscalation must be false")
        nonroot = sc.get("runAsNonRoot", pod_nonroot)
        if nonroot is not True:
            bad.append(f"{where}: runAsNonRoot must be true (container or pod level)")
        if sc.get("runAsNonRoot") is False:
            bad.append(f"{where}.securityContext.runAsNonRoot must not be false")
        if sc.get("runAsUser") == 0:
            bad.append(f"{where}.securityContext.runAsUser must not be 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{where}: seccompProfile.type must be RuntimeDefault or Localhost (container or pod), got {seccomp}")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{where}.securityContext.capabilities.drop must include ALL")
        for cap in caps.get("add") or []:
            if cap != "NET_BIND_SERVICE":
                bad.append(f"{where}.securityContext.capabilities.add: {cap} is not allowed (only NET_BIND_SERVICE)")
        if sc.get("procMount") not in (None, "Default"):
            bad.append(f"{where}.securityContext.procMount must be Default")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            bad.append(f"{where}.securityContext.windowsOptions.hostProcess must not be true")
        bad += selinux(f"{where}.securityContext", sc)
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                bad.append(f"{where}.ports[{p.get('name')}].hostPort must be 0 or unset")
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            bad.append(f"{where}.securityContext.appArmorProfile.type must be RuntimeDefault or Localhost")
    return bad


def selinux(where, sc):
    opts = sc.get("seLinuxOptions") or {}
    bad = []
    if opts.get("type") not in SELINUX_TYPES:
        bad.append(f"{where}.seLinuxOptions.type {opts.get('type')} is not allowed")
    for f in ("user", "role"):
        if opts.get(f):
            bad.append(f"{where}.seLinuxOptions.{f} must be unset")
    return bad


def main(paths):
    failed = checked = 0
    for path in paths:
        with open(path) as f:
            for obj in yaml.safe_load_all(f):
                if not obj or obj.get("kind") not in WORKLOADS:
                    continue
                checked += 1
                name = f"{path}: {obj['kind']}/{obj['metadata']['name']}"
                for problem in check(pod_spec(obj)):
                    print(f"{name}: {problem}")
                    failed += 1
    if checked == 0:
        print("no pod templates found")
        return 1
    print(f"restricted Pod Security Standard: {checked} pod templates, {failed} violations")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
