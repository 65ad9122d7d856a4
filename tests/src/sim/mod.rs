//! The node simulator: acts as the kubelet for one Node object, running the pods bound to it as local processes.
//!
//! Modules, one concern each: `node` (registration, heartbeat), `pod` (per-pod worker: processes, deletion),
//! `process` (spawning and signalling), `plan` (container spec → local process), `env` (`$(VAR)` expansion and
//! downward API), `status` (pod status building), `failures` (how a kubelet words containers that cannot run:
//! image pulls, back-offs, start errors), `ip` (pod IPs).

pub mod env;
pub mod failures;
pub mod ip;
pub mod node;
pub mod plan;
pub mod pod;
pub mod process;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, warn};

pub use node::{GPU_RESOURCE, NodeConfig};

/// A running simulated node. Stop it with [`NodeSimulator::shutdown`]; dropping it also stops it (processes are
/// killed by the background tasks as long as the runtime that started them is alive).
pub struct NodeSimulator {
    name: String,
    shutdown: watch::Sender<bool>,
    tasks: Option<tokio::task::JoinHandle<()>>,
}

impl NodeSimulator {
    /// Registers the node, posts Ready, then runs pods bound to it until shutdown. Returns once the node is Ready.
    /// Must be called within a Tokio runtime, which then hosts the simulator's tasks.
    pub async fn start(client: Client, mut config: NodeConfig) -> Result<Self> {
        if config.api_server.is_none() {
            config.api_server = advertised_address(&client).await;
        }
        let ips = ip::IpPool::new(config.ip_base)?;
        // Fail early when the loopback range cannot be used, instead of every pod failing to bind later.
        let mut probe = ip::IpPool::new(config.ip_base)?;
        if let Some(first) = probe.allocate() {
            std::net::TcpListener::bind((first, 0)).with_context(|| {
                format!("cannot bind pod address {first}: is 127.0.0.0/8 routed to lo?")
            })?;
        }
        std::fs::create_dir_all(config.work_dir.join("pods"))
            .with_context(|| format!("creating work dir {}", config.work_dir.display()))?;
        let since = Timestamp::now();
        node::register(&client, &config, since).await?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let ctx = pod::WorkerCtx {
            client: client.clone(),
            node_name: config.name.clone(),
            host_ip: "127.0.0.1".into(),
            work_dir: config.work_dir.clone(),
            ips: Arc::new(Mutex::new(ips)),
            shutdown: shutdown_rx.clone(),
            config: Arc::new(config.clone()),
        };
        let heartbeat = tokio::spawn(heartbeat_loop(
            client.clone(),
            config.clone(),
            since,
            shutdown_rx.clone(),
        ));
        let dispatch = tokio::spawn(dispatch_pods(ctx, shutdown_rx));
        let tasks = tokio::spawn(async move {
            let _ = dispatch.await;
            heartbeat.abort();
        });
        Ok(NodeSimulator {
            name: config.name,
            shutdown,
            tasks: Some(tasks),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kills every pod process of this node and waits until the workers are done. The Node object stays.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.tasks.take() {
            let _ = t.await;
        }
    }
}

impl Drop for NodeSimulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The apiserver's address for clients anywhere (`/api`'s `serverAddressByClientCIDRs` entry for `0.0.0.0/0`, else
/// the first): the kubelet gives pods the `kubernetes` Service, whose endpoints are this address; its ClusterIP is
/// not routed here, and a loopback advertise address gets no Endpoints object.
async fn advertised_address(client: &Client) -> Option<String> {
    match client.list_core_api_versions().await {
        Ok(versions) => {
            let cidrs = versions.server_address_by_client_cidrs;
            cidrs
                .iter()
                .find(|c| c.client_cidr == "0.0.0.0/0")
                .or(cidrs.first())
                .map(|c| c.server_address.clone())
        }
        Err(e) => {
            warn!(error = %e, "cannot read the apiserver's advertised address: pods get no KUBERNETES_SERVICE_* \
                   and no service-account kubeconfig");
            None
        }
    }
}

async fn heartbeat_loop(
    client: Client,
    config: NodeConfig,
    since: Timestamp,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.heartbeat_interval) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = node::heartbeat(&client, &config, since).await {
            warn!(node = %config.name, error = format!("{e:#}"), "heartbeat failed");
        }
    }
}

/// Routes watch events for pods bound to this node to one worker per pod uid.
async fn dispatch_pods(ctx: pod::WorkerCtx, mut shutdown: watch::Receiver<bool>) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    // Classic list+watch (the default): the 1.20 test apiserver has no streaming lists.
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut stream = watcher(pods, cfg).default_backoff().boxed();
    // uid → worker; kept after the worker finished so a late event for that uid cannot start the pod again.
    let mut workers: HashMap<String, Option<mpsc::UnboundedSender<pod::PodEvent>>> = HashMap::new();
    let mut relisted: Option<HashSet<String>> = None;
    let mut running = JoinSet::new();
    loop {
        let event = tokio::select! {
            ev = stream.next() => ev,
            _ = shutdown.changed() => break,
            Some(_) = running.join_next(), if !running.is_empty() => continue,
        };
        let Some(event) = event else { break };
        let event = match event {
            Ok(ev) => ev,
            Err(e) => {
                warn!(node = %ctx.node_name, error = %e, "pod watch error (retrying)");
                continue;
            }
        };
        match event {
            watcher::Event::Init => relisted = Some(HashSet::new()),
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                let Some(uid) = p.metadata.uid.clone() else {
                    continue;
                };
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(uid.clone());
                }
                match workers.get(&uid) {
                    Some(Some(tx)) => {
                        if tx.send(pod::PodEvent::Update(Box::new(p))).is_err() {
                            workers.insert(uid, None);
                        }
                    }
                    Some(None) => debug!(uid, "event for a finished pod ignored"),
                    None => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        running.spawn(pod::run(ctx.clone(), p, rx));
                        workers.insert(uid, Some(tx));
                    }
                }
            }
            watcher::Event::InitDone => {
                // Pods deleted while the watch was down never produce a Delete event.
                if let Some(seen) = relisted.take() {
                    workers.retain(|uid, tx| {
                        let keep = seen.contains(uid);
                        if !keep && let Some(tx) = tx {
                            let _ = tx.send(pod::PodEvent::Gone);
                        }
                        keep
                    });
                }
            }
            watcher::Event::Delete(p) => {
                if let Some(uid) = p.metadata.uid
                    && let Some(Some(tx)) = workers.insert(uid, None)
                {
                    let _ = tx.send(pod::PodEvent::Gone);
                }
            }
        }
    }
    // Workers watch the same shutdown signal and kill their processes; wait for them so nothing outlives us.
    drop(workers);
    while running.join_next().await.is_some() {}
}
