//! Node registration and heartbeat: the Node object, its Ready status, its Lease, and removal of the
//! not-ready/unreachable taints, so the scheduler keeps placing pods on the simulated node.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

/// The extended resource the real NVIDIA device plugin advertises; the scheduler accounts for it like any other.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Taints the node lifecycle controller (or a kubelet at registration) puts on nodes that are not Ready.
pub const NOT_READY_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];
const LEASE_NAMESPACE: &str = "kube-node-lease";
const LEASE_SECONDS: i32 = 40;
pub const FIELD_MANAGER: &str = "seedsweep-node-sim";

/// Everything that describes one simulated node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub gpus: u32,
    /// Kubernetes quantities, e.g. "16" and "64Gi".
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    /// Pods get addresses after this one (127.a.b.c; the last two octets are allocated).
    pub ip_base: Ipv4Addr,
    /// Per-pod directories, logs and termination messages live under `<work_dir>/pods`.
    pub work_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// Cordoned at registration: the scheduler places nothing here, pods must name the node in `spec.nodeName`.
    pub unschedulable: bool,
    pub heartbeat_interval: Duration,
    /// Images that cannot be pulled: globs (`*` any run of characters, `?` one) matched against the image as
    /// written and its normalized form (`docker.io/library/x:1`). Such a container waits in `ErrImagePull` /
    /// `ImagePullBackOff` ("not found"). Registry hosts under `.invalid` never resolve, whatever this says.
    pub unpullable_images: Vec<String>,
    /// First delay of the image pull back-off; doubles per failed pull up to `max_backoff` (kubelet: 10 s).
    pub image_pull_backoff_base: Duration,
    /// First delay of the crash-loop back-off; doubles per restart up to `max_backoff` (kubelet: 10 s). The
    /// first restart after a failure is immediate, as in the kubelet.
    pub crash_backoff_base: Duration,
    /// Cap of both back-offs (kubelet: `MaxContainerBackOff`, 300 s).
    pub max_backoff: Duration,
    /// How often a container waiting on `CreateContainerConfigError` (missing ConfigMap/Secret or key), a
    /// configMap/secret volume that cannot be set up, or `ErrImageNeverPull` is retried (kubelet: the pod
    /// worker's 10 s back-off on sync errors).
    pub config_retry_interval: Duration,
    /// Image entrypoints: `(pattern, program)`. A container without `command` whose image matches `pattern` (a
    /// glob as in `unpullable_images`, against the image as written and normalized) runs `program` with its `args`,
    /// as a runtime runs the image's ENTRYPOINT. Without a match such a container cannot run here.
    pub image_entrypoints: Vec<(String, String)>,
    /// `host:port` at which pods reach the apiserver (`KUBERNETES_SERVICE_HOST`/`PORT`, the server of
    /// service-account kubeconfigs). `None`: what the apiserver advertises in `/api` (`serverAddressByClientCIDRs`),
    /// looked up at start.
    pub api_server: Option<String>,
    /// Where `persistentVolumeClaim` volumes live on this machine: claim `c` of namespace `ns` is the directory
    /// `<pvc_dir>/<ns>/<c>`, shared by every pod (and node) given the same `pvc_dir`, like a ReadWriteMany volume.
    /// `None`: claims are not materialised and their mount paths stay as they are.
    pub pvc_dir: Option<PathBuf>,
}

impl NodeConfig {
    pub fn new(name: impl Into<String>, work_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            name: name.into(),
            gpus: 0,
            cpu: "16".into(),
            memory: "64Gi".into(),
            pods: 110,
            ip_base: Ipv4Addr::new(127, 1, 0, 0),
            work_dir: work_dir.into(),
            labels: BTreeMap::new(),
            unschedulable: false,
            heartbeat_interval: Duration::from_secs(10),
            unpullable_images: Vec::new(),
            image_pull_backoff_base: Duration::from_secs(10),
            crash_backoff_base: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
            config_retry_interval: Duration::from_secs(10),
            image_entrypoints: Vec::new(),
            api_server: None,
            pvc_dir: None,
        }
    }

    /// Materialises persistentVolumeClaim volumes under `dir` (see [`NodeConfig::pvc_dir`]).
    pub fn with_pvc_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pvc_dir = Some(dir.into());
        self
    }

    /// Containers without `command` whose image matches `pattern` run `program` (see
    /// [`NodeConfig::image_entrypoints`]).
    pub fn with_image_entrypoint(
        mut self,
        pattern: impl Into<String>,
        program: impl Into<String>,
    ) -> Self {
        self.image_entrypoints
            .push((pattern.into(), program.into()));
        self
    }

    /// Adds an image pattern that cannot be pulled (see [`NodeConfig::unpullable_images`]).
    pub fn with_unpullable_image(mut self, pattern: impl Into<String>) -> Self {
        self.unpullable_images.push(pattern.into());
        self
    }

    /// Scales the kubelet's timings for tests: both back-offs start at `base` (capped at `max`) and config
    /// errors are retried every `base`.
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.image_pull_backoff_base = base;
        self.crash_backoff_base = base;
        self.config_retry_interval = base;
        self.max_backoff = max;
        self
    }

    pub fn with_gpus(mut self, gpus: u32) -> Self {
        self.gpus = gpus;
        self
    }

    pub fn with_ip_base(mut self, base: Ipv4Addr) -> Self {
        self.ip_base = base;
        self
    }

    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

pub fn node_object(cfg: &NodeConfig) -> Node {
    let mut labels = cfg.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), cfg.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert(
        "kubernetes.io/arch".into(),
        std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64"),
    );
    labels.insert("seedsweep.dev/node-simulator".into(), "true".into());
    Node {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            unschedulable: cfg.unschedulable.then_some(true),
            ..Default::default()
        }),
        status: None,
    }
}

fn resources(cfg: &NodeConfig) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cfg.cpu.clone())),
        ("memory".to_string(), Quantity(cfg.memory.clone())),
        ("pods".to_string(), Quantity(cfg.pods.to_string())),
        ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
        (GPU_RESOURCE.to_string(), Quantity(cfg.gpus.to_string())),
    ])
}

/// The full node status; `since` is when the node became Ready (stable transition time across heartbeats).
pub fn node_status(cfg: &NodeConfig, since: Timestamp, now: Timestamp) -> NodeStatus {
    let cond = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(since)),
    };
    NodeStatus {
        capacity: Some(resources(cfg)),
        allocatable: Some(resources(cfg)),
        conditions: Some(vec![
            cond(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "simulated",
            ),
            cond(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "simulated",
            ),
            cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "simulated",
            ),
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "seedsweep node simulator is posting ready status",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: "127.0.0.1".into(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.name.clone(),
            },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.into(),
            operating_system: "linux".into(),
            os_image: "SeedSweep node simulator".into(),
            kubelet_version: "v1.20.2-seedsweep-sim".into(),
            kube_proxy_version: "v0.0.0".into(),
            container_runtime_version: "seedsweep-sim://0.1".into(),
            ..Default::default()
        }),
        phase: Some("Running".into()),
        ..Default::default()
    }
}

/// Taints left after dropping the not-ready ones, or None when nothing needs to change.
pub fn taints_without_not_ready(taints: Option<&Vec<Taint>>) -> Option<Vec<Taint>> {
    let taints = taints?;
    let kept: Vec<Taint> = taints
        .iter()
        .filter(|t| !NOT_READY_TAINTS.contains(&t.key.as_str()))
        .cloned()
        .collect();
    (kept.len() != taints.len()).then_some(kept)
}

/// Creates (or adopts) the Node and posts its first Ready status.
pub async fn register(client: &Client, cfg: &NodeConfig, since: Timestamp) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = node_object(cfg);
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Restarted simulator or pre-created Node: keep the object (and its pods), refresh our labels;
            // cordon only when asked, never uncordon what someone else cordoned.
            let mut patch = json!({"metadata": {"labels": node.metadata.labels}});
            if cfg.unschedulable {
                patch["spec"] = json!({"unschedulable": true});
            }
            nodes
                .patch(&cfg.name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .with_context(|| format!("updating existing node {}", cfg.name))?;
        }
        Err(e) => return Err(e).with_context(|| format!("creating node {}", cfg.name)),
    }
    heartbeat(client, cfg, since).await
}

/// One heartbeat: Ready status with a fresh heartbeat time, the node Lease, and taint cleanup.
pub async fn heartbeat(client: &Client, cfg: &NodeConfig, since: Timestamp) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now();
    let status = node_status(cfg, since, now);
    let node = nodes
        .patch_status(
            &cfg.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .with_context(|| format!("posting status of node {}", cfg.name))?;
    if let Some(kept) = taints_without_not_ready(node.spec.as_ref().and_then(|s| s.taints.as_ref()))
    {
        nodes
            .patch(
                &cfg.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taints": kept}})),
            )
            .await
            .with_context(|| format!("removing not-ready taints from node {}", cfg.name))?;
    }
    renew_lease(client, cfg, &node, now).await
}

async fn renew_lease(client: &Client, cfg: &NodeConfig, node: &Node, now: Timestamp) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let spec = LeaseSpec {
        holder_identity: Some(cfg.name.clone()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        renew_time: Some(MicroTime(now)),
        ..Default::default()
    };
    match leases
        .patch(
            &cfg.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let owner = OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: cfg.name.clone(),
                uid: node.meta().uid.clone().unwrap_or_default(),
                ..Default::default()
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: node.meta().uid.is_some().then(|| vec![owner]),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(|_| ())
                .context("creating node lease")
        }
        Err(e) => Err(e).context("renewing node lease"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_gpus_and_ready() {
        let cfg = NodeConfig::new("n1", "/tmp/w").with_gpus(2);
        let since = Timestamp::from_second(1_700_000_000).unwrap();
        let now = Timestamp::from_second(1_700_000_100).unwrap();
        let status = node_status(&cfg, since, now);
        assert_eq!(
            status.allocatable.as_ref().unwrap()[GPU_RESOURCE],
            Quantity("2".into())
        );
        assert_eq!(
            status.capacity.as_ref().unwrap()["pods"],
            Quantity("110".into())
        );
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(ready.last_heartbeat_time, Some(Time(now)));
        assert_eq!(ready.last_transition_time, Some(Time(since)));
        let labels = node_object(&cfg).metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
    }

    #[test]
    fn drops_only_not_ready_taints() {
        let t = |key: &str| Taint {
            key: key.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        assert_eq!(taints_without_not_ready(None), None);
        assert_eq!(taints_without_not_ready(Some(&vec![t("gpu")])), None);
        let kept =
            taints_without_not_ready(Some(&vec![t("node.kubernetes.io/not-ready"), t("gpu")]))
                .unwrap();
        assert_eq!(kept, vec![t("gpu")]);
    }
}
