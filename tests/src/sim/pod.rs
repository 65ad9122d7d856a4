//! One worker per bound Pod: runs its containers as local processes, reports status, restarts per
//! restartPolicy, and carries out graceful deletion (SIGTERM, SIGKILL after the grace period, then the final
//! grace-period-0 delete a kubelet issues).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::env::{PodFacts, Refs};
use super::ip::IpPool;
use super::plan::{ProcessPlan, plan_container};
use super::process::{self, Process};
use super::status::{
    ContainerView, MAX_TERMINATION_MESSAGE, PodView, ProcessState, Termination, build_status,
    is_terminal, termination_message,
};

pub enum PodEvent {
    Update(Box<Pod>),
    /// The object is gone from the API (deleted by someone else, or missed while the watch was down).
    Gone,
}

#[derive(Clone)]
pub struct WorkerCtx {
    pub client: Client,
    pub node_name: String,
    pub host_ip: String,
    pub work_dir: PathBuf,
    pub ips: Arc<Mutex<IpPool>>,
    pub shutdown: watch::Receiver<bool>,
}

/// Delay before restarting a container under OnFailure/Always; short because tests wait on it.
const RESTART_DELAY: Duration = Duration::from_secs(1);
const DEFAULT_GRACE_SECONDS: i64 = 30;

struct Slot {
    /// An init container: runs alone, in order, before the main containers.
    init: bool,
    plan: Option<ProcessPlan>,
    view: ContainerView,
    process: Option<Process>,
    /// Bumped on every start, so a late exit notice of a previous run is ignored.
    generation: u64,
    restart_at: Option<Instant>,
}

struct Exit {
    index: usize,
    generation: u64,
    status: std::process::ExitStatus,
}

struct Worker {
    ctx: WorkerCtx,
    api: Api<Pod>,
    pod: Pod,
    name: String,
    uid: String,
    pod_ip: Option<std::net::Ipv4Addr>,
    refs: Refs,
    /// The address reported in status; kept after the IP went back to the pool.
    reported_ip: String,
    pod_dir: PathBuf,
    start_time: Timestamp,
    slots: Vec<Slot>,
    exits_tx: mpsc::UnboundedSender<Exit>,
    kill_at: Option<Instant>,
    terminating: bool,
}

pub async fn run(ctx: WorkerCtx, pod: Pod, mut events: mpsc::UnboundedReceiver<PodEvent>) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let short_uid: String = uid.chars().take(8).collect();
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let mut w = Worker {
        api: Api::namespaced(ctx.client.clone(), &ns),
        pod_dir: ctx
            .work_dir
            .join("pods")
            .join(format!("{ns}_{name}_{short_uid}")),
        ctx,
        pod,
        name: format!("{ns}/{name}"),
        uid,
        pod_ip: None,
        refs: Refs::default(),
        reported_ip: String::new(),
        start_time: Timestamp::now(),
        slots: Vec::new(),
        exits_tx,
        kill_at: None,
        terminating: false,
    };
    let mut shutdown = w.ctx.shutdown.clone();

    if is_terminal(&w.pod) {
        // Already finished (e.g. the simulator restarted): nothing to run, only deletion to honour.
        debug!(pod = %w.name, "terminal pod, not starting");
    } else if w.pod.metadata.deletion_timestamp.is_some() {
        w.finish_deletion().await;
        return;
    } else {
        w.start().await;
    }

    loop {
        if w.terminating && w.running() == 0 {
            w.finish_deletion().await;
            return;
        }
        let next_restart = w.slots.iter().filter_map(|s| s.restart_at).min();
        let wake = [next_restart, w.kill_at].into_iter().flatten().min();
        tokio::select! {
            ev = events.recv() => match ev {
                Some(PodEvent::Update(pod)) => w.on_update(*pod).await,
                Some(PodEvent::Gone) | None => {
                    w.kill_all(libc::SIGKILL);
                    w.release_ip();
                    return;
                }
            },
            Some(exit) = exits.recv() => w.on_exit(exit).await,
            _ = sleep_until(wake) => w.on_timer().await,
            _ = shutdown.changed() => {
                w.kill_all(libc::SIGKILL);
                return;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Worker {
    fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.process.is_some()).count()
    }

    fn facts(&self) -> PodFacts<'_> {
        PodFacts {
            pod: &self.pod,
            pod_ip: self.pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            host_ip: self.ctx.host_ip.clone(),
            node_name: self.ctx.node_name.clone(),
            refs: &self.refs,
        }
    }

    /// ConfigMaps and Secrets the pod references; missing ones are simply absent (the plan decides whether
    /// that is an error). Fetched once: unlike the kubelet, a config error is not retried later.
    async fn fetch_refs(&self) -> Result<Refs> {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let (cms, secrets) = Refs::referenced(&self.pod);
        let mut refs = Refs::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &ns);
        for name in cms {
            if let Some(cm) = cm_api
                .get_opt(&name)
                .await
                .with_context(|| format!("reading configmap {name}"))?
            {
                let mut data: BTreeMap<String, Vec<u8>> = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                data.extend(
                    cm.binary_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0)),
                );
                refs.config_maps.insert(name, data);
            }
        }
        let secret_api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &ns);
        for name in secrets {
            if let Some(secret) = secret_api
                .get_opt(&name)
                .await
                .with_context(|| format!("reading secret {name}"))?
            {
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                refs.secrets.insert(name, data);
            }
        }
        Ok(refs)
    }

    async fn start(&mut self) {
        let ip = self
            .ctx
            .ips
            .lock()
            .map(|mut pool| pool.allocate())
            .unwrap_or(None);
        let Some(ip) = ip else {
            warn!(pod = %self.name, "no pod IP left");
            return;
        };
        self.pod_ip = Some(ip);
        self.reported_ip = ip.to_string();
        let mut refs_error = None;
        match self.fetch_refs().await {
            Ok(refs) => self.refs = refs,
            Err(e) => refs_error = Some(format!("{e:#}")),
        }
        let spec = self.pod.spec.clone().unwrap_or_default();
        if let Err(e) = std::fs::create_dir_all(&self.pod_dir) {
            warn!(pod = %self.name, error = %e, "cannot create pod dir");
        }
        let has_init = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
        let init_containers = spec.init_containers.iter().flatten().map(|c| (true, c));
        for (init, container) in init_containers.chain(spec.containers.iter().map(|c| (false, c))) {
            let plan = if let Some(e) = &refs_error {
                Err(anyhow::anyhow!("{e}"))
            } else {
                plan_container(container, &self.facts(), &self.pod_dir)
            };
            let (plan, state) = match plan {
                Ok(plan) => {
                    let reason = if has_init && !init {
                        "PodInitializing"
                    } else {
                        "ContainerCreating"
                    };
                    (
                        Some(plan),
                        ProcessState::Waiting {
                            reason: reason.into(),
                            message: None,
                        },
                    )
                }
                // The kubelet keeps such containers waiting (the pod stays Pending) with this reason.
                Err(e) => (
                    None,
                    ProcessState::Waiting {
                        reason: "CreateContainerConfigError".into(),
                        message: Some(format!("{e:#}")),
                    },
                ),
            };
            self.slots.push(Slot {
                init,
                plan,
                view: ContainerView {
                    name: container.name.clone(),
                    image: container.image.clone().unwrap_or_default(),
                    state,
                    restart_count: 0,
                    last_termination: None,
                    container_id: None,
                },
                process: None,
                generation: 0,
                restart_at: None,
            });
        }
        self.advance();
        info!(pod = %self.name, ip = %ip, "started");
        self.report().await;
    }

    /// Starts what may run now: the first init container that has not succeeded (one at a time), or, once
    /// every init container succeeded, each main container that never started. Restarts go through timers.
    fn advance(&mut self) {
        if self.terminating {
            return;
        }
        let pending_init = self.slots.iter().position(|s| {
            s.init && !matches!(&s.view.state, ProcessState::Terminated(t) if t.exit_code == 0)
        });
        if let Some(i) = pending_init {
            if self.slots[i].generation == 0 {
                self.start_container(i);
            }
            return;
        }
        for i in 0..self.slots.len() {
            if !self.slots[i].init && self.slots[i].generation == 0 {
                self.start_container(i);
            }
        }
    }

    fn view(&self) -> PodView {
        let views = |init: bool| {
            self.slots
                .iter()
                .filter(|s| s.init == init)
                .map(|s| s.view.clone())
                .collect()
        };
        PodView {
            pod_ip: self.reported_ip.clone(),
            host_ip: self.ctx.host_ip.clone(),
            start_time: self.start_time,
            init_containers: views(true),
            containers: views(false),
        }
    }

    fn start_container(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.restart_at = None;
        let Some(plan) = &slot.plan else { return };
        slot.generation += 1;
        let started_at = Timestamp::now();
        match process::spawn(plan) {
            Ok((proc_, mut child)) => {
                slot.view.state = ProcessState::Running { started_at };
                slot.view.container_id = Some(format!("sim://{}", proc_.pid));
                slot.process = Some(proc_);
                let tx = self.exits_tx.clone();
                let generation = slot.generation;
                tokio::spawn(async move {
                    match child.wait().await {
                        Ok(status) => {
                            let _ = tx.send(Exit {
                                index,
                                generation,
                                status,
                            });
                        }
                        Err(e) => warn!(error = %e, "waiting for container process failed"),
                    }
                });
            }
            Err(e) => {
                // What containerd reports when the entrypoint cannot be started.
                let mut t = Termination::new(128, None, Some(format!("{e:#}")), started_at);
                t.reason = "StartError".into();
                slot.view.state = ProcessState::Terminated(t);
                self.after_termination(index);
            }
        }
    }

    /// Restart policy decision after a container ended.
    fn after_termination(&mut self, index: usize) {
        let policy = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        let slot = &mut self.slots[index];
        let ProcessState::Terminated(t) = &slot.view.state else {
            return;
        };
        // Init containers are retried on failure under both OnFailure and Always, never after success.
        let restart = !self.terminating
            && slot.plan.is_some()
            && match policy.as_str() {
                "Always" => !slot.init || t.exit_code != 0,
                "OnFailure" => t.exit_code != 0,
                _ => false,
            };
        if restart {
            slot.view.last_termination = Some(t.clone());
            slot.view.restart_count += 1;
            slot.view.state = ProcessState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: None,
            };
            slot.restart_at = Some(Instant::now() + RESTART_DELAY);
        } else if matches!(self.view().phase(), "Succeeded" | "Failed") {
            // Terminal pod: its sandbox (our IP) is torn down, like the kubelet does.
            self.release_ip();
        }
    }

    async fn on_exit(&mut self, exit: Exit) {
        let slot = &mut self.slots[exit.index];
        if slot.generation != exit.generation {
            return;
        }
        let Some(proc_) = slot.process.take() else {
            return;
        };
        proc_.reap();
        let (code, signal) = process::exit_code(exit.status);
        let started_at = match slot.view.state {
            ProcessState::Running { started_at } => started_at,
            _ => Timestamp::now(),
        };
        let message = slot.plan.as_ref().and_then(|plan| {
            let file = process::read_tail(&plan.termination_log, MAX_TERMINATION_MESSAGE);
            let log = if plan.fallback_to_logs {
                process::read_tail(&plan.log_file, 64 * 1024)
            } else {
                Vec::new()
            };
            termination_message(&file, &log, code, plan.fallback_to_logs)
        });
        info!(pod = %self.name, container = %slot.view.name, code, "container exited");
        slot.view.state = ProcessState::Terminated(Termination::new(code, signal, message, started_at));
        self.after_termination(exit.index);
        self.advance();
        self.report().await;
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.kill_at.is_some_and(|at| at <= now) {
            self.kill_at = None;
            info!(pod = %self.name, "grace period over, SIGKILL");
            self.kill_all(libc::SIGKILL);
        }
        let due: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].restart_at.is_some_and(|at| at <= now))
            .collect();
        if !due.is_empty() {
            for i in due {
                self.start_container(i);
            }
            self.report().await;
        }
    }

    async fn on_update(&mut self, pod: Pod) {
        let deleting = pod.metadata.deletion_timestamp.is_some();
        self.pod = pod;
        if deleting && !self.terminating {
            self.terminating = true;
            for slot in &mut self.slots {
                slot.restart_at = None;
            }
            let grace = self
                .pod
                .metadata
                .deletion_grace_period_seconds
                .or_else(|| {
                    self.pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
                .unwrap_or(DEFAULT_GRACE_SECONDS)
                .max(0);
            info!(pod = %self.name, grace, "deletion requested, SIGTERM");
            self.kill_at = Some(Instant::now() + Duration::from_secs(grace as u64));
            self.kill_all(libc::SIGTERM);
        }
    }

    fn kill_all(&self, signal: i32) {
        for slot in &self.slots {
            if let Some(p) = &slot.process {
                p.signal_group(signal);
            }
        }
    }

    fn release_ip(&mut self) {
        if let Some(ip) = self.pod_ip.take()
            && let Ok(mut pool) = self.ctx.ips.lock()
        {
            pool.release(ip);
        }
    }

    /// Posts the status built from our view; a few retries because a lost final status would hang a test.
    async fn report(&mut self) {
        if self.slots.is_empty() {
            return;
        }
        let view = self.view();
        let status = build_status(self.pod.status.as_ref(), &view, Timestamp::now());
        let patch = Patch::Merge(json!({"status": status}));
        for attempt in 0..5 {
            let name = self.pod.metadata.name.clone().unwrap_or_default();
            match self
                .api
                .patch_status(&name, &PatchParams::default(), &patch)
                .await
            {
                Ok(pod) => {
                    if pod.metadata.uid.as_deref() == Some(self.uid.as_str()) {
                        self.pod.status = pod.status;
                    }
                    return;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                Err(e) => {
                    warn!(pod = %self.name, attempt, error = %e, "status update failed");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
    }

    /// Every process is gone: post the final status and remove the object, as the kubelet does.
    async fn finish_deletion(&mut self) {
        self.report().await;
        self.release_ip();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self
            .api
            .delete(&name, &params)
            .await
            .context("final delete")
        {
            Ok(_) => info!(pod = %self.name, "deleted"),
            Err(e) if is_gone(&e) => {}
            Err(e) => warn!(pod = %self.name, error = format!("{e:#}"), "final delete failed"),
        }
    }
}

fn is_gone(e: &anyhow::Error) -> bool {
    // 404: already gone; 409: the uid precondition failed, i.e. a new pod with the same name exists.
    matches!(e.downcast_ref::<kube::Error>(), Some(kube::Error::Api(s)) if s.code == 404 || s.code == 409)
}
