//! One worker per bound Pod: runs its containers as local processes, reports status, restarts per
//! restartPolicy with the kubelet's crash-loop back-off, reports containers that cannot start (image pull
//! errors, config errors, start errors) as the kubelet does, and carries out graceful deletion (SIGTERM,
//! SIGKILL after the grace period, then the final grace-period-0 delete a kubelet issues).
//!
//! Like the kubelet's pod worker, [`Worker::sync`] looks at every container that should run and is not
//! running, and tries to start it (back-off, image, environment, process); what fails sets the container's
//! waiting state and a time to try again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::env::{PodFacts, Refs};
use super::failures::{
    Backoff, crash_loop_message, image_entrypoint, image_pull_backoff_message, never_pull_message,
    pull_error,
};
use super::ip::IpPool;
use super::node::NodeConfig;
use super::plan::{PlanError, ProcessPlan, plan_container, volume_error};
use super::process::{self, Process, StartFailure};
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
    /// Unpullable images and the back-off/retry timings.
    pub config: Arc<NodeConfig>,
}

const DEFAULT_GRACE_SECONDS: i64 = 30;

struct Slot {
    /// An init container: runs alone, in order, before the main containers.
    init: bool,
    spec: Container,
    /// Plan of the current (or last) instance: where its termination message and log are.
    plan: Option<ProcessPlan>,
    view: ContainerView,
    process: Option<Process>,
    /// Instances created so far (started, or failed to start); `restartCount` is one less. Also the generation
    /// that exit notices carry, so a late notice of a previous instance is ignored.
    instances: u64,
    /// How and when the last instance ended: the restart decision and the crash back-off start from it.
    last_exit: Option<(Termination, Instant)>,
    /// The kubelet's crash-loop back-off entry for this container.
    crash: Option<Backoff>,
    /// The kubelet's image pull back-off entry for this container's image.
    pull: Option<Backoff>,
    /// When to look at this container again (back-off over, retry due, `ErrImagePull` shown long enough);
    /// until then `sync` leaves it alone.
    wake_at: Option<Instant>,
    /// The simulator cannot run this spec: a permanent `CreateContainerConfigError`.
    unsupported: bool,
}

impl Slot {
    /// Waiting, with the last instance's end as `lastState` (the kubelet's view of a container it will start
    /// again).
    fn wait(&mut self, reason: &str, message: Option<String>) {
        self.view.state = ProcessState::Waiting {
            reason: reason.into(),
            message,
        };
        if let Some((t, _)) = &self.last_exit {
            self.view.last_termination = Some(t.clone());
        }
    }

    fn succeeded(&self) -> bool {
        matches!(&self.view.state, ProcessState::Terminated(t) if t.exit_code == 0)
    }
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
    /// `ns/name`, for logs.
    name: String,
    pod_name: String,
    namespace: String,
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
    /// The last status written, so an unchanged status is not written again.
    last_sent: Option<serde_json::Value>,
    /// A status that could not be written (the apiserver is down, say) is written again then: as the kubelet's
    /// status manager does, it is retried until it lands, or a pod that ended during an outage runs forever.
    report_retry_at: Option<Instant>,
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
        pod_name: name,
        namespace: ns,
        uid,
        pod_ip: None,
        refs: Refs::default(),
        reported_ip: String::new(),
        start_time: Timestamp::now(),
        slots: Vec::new(),
        exits_tx,
        kill_at: None,
        terminating: false,
        last_sent: None,
        report_retry_at: None,
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
        let next_wake = w.slots.iter().filter_map(|s| s.wake_at).min();
        let wake = [next_wake, w.kill_at, w.report_retry_at]
            .into_iter()
            .flatten()
            .min();
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

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    /// How long a state the kubelet shows only until its next sync stays visible (the terminated state before
    /// an immediate restart, `ErrImagePull`, `RunContainerError`): about its 1 s PLEG relist period, shorter
    /// when the configured back-offs are shorter.
    fn resync_delay(&self, backoff: Duration) -> Duration {
        Duration::from_secs(1).min(backoff / 2)
    }

    fn facts(&self) -> PodFacts<'_> {
        PodFacts {
            pod: &self.pod,
            pod_ip: self.pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            host_ip: self.ctx.host_ip.clone(),
            node_name: self.ctx.node_name.clone(),
            refs: &self.refs,
            api_server: self.ctx.config.api_server.clone(),
            pvc_dir: self.ctx.config.pvc_dir.as_deref(),
        }
    }

    /// ConfigMaps and Secrets the pod references; missing ones are simply absent (the plan decides whether
    /// that is an error). Read again before every start attempt, so a Secret created later is picked up.
    async fn fetch_refs(&self) -> Result<Refs> {
        let (cms, secrets) = Refs::referenced(&self.pod);
        let mut refs = Refs::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
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
        let secret_api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
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
        // Projected service-account tokens, bound to this pod, as the kubelet requests them.
        let spec = self.pod.spec.as_ref();
        let account = spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        let sa_api: Api<ServiceAccount> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        for volume in spec.and_then(|s| s.volumes.as_ref()).into_iter().flatten() {
            let sources = volume
                .projected
                .iter()
                .flat_map(|p| p.sources.iter().flatten());
            for (index, source) in sources.enumerate() {
                let Some(token) = &source.service_account_token else {
                    continue;
                };
                let request = TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: token.audience.clone().into_iter().collect(),
                        expiration_seconds: Some(token.expiration_seconds.unwrap_or(3600)),
                        bound_object_ref: Some(BoundObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Pod".into()),
                            name: Some(self.pod_name.clone()),
                            uid: Some(self.uid.clone()),
                        }),
                    },
                    ..Default::default()
                };
                // A token that cannot be had leaves the volume unmountable (retried), like the kubelet.
                match sa_api
                    .create_token_request(&account, &PostParams::default(), &request)
                    .await
                {
                    Ok(issued) => {
                        if let Some(status) = issued.status {
                            refs.tokens.insert(
                                Refs::token_key(&volume.name, index),
                                status.token.into_bytes(),
                            );
                        }
                    }
                    Err(e) => {
                        debug!(pod = %self.name, account, error = %e, "token request failed")
                    }
                }
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
        let spec = self.pod.spec.clone().unwrap_or_default();
        if let Err(e) = std::fs::create_dir_all(&self.pod_dir) {
            warn!(pod = %self.name, error = %e, "cannot create pod dir");
        }
        // The kubelet's default waiting state of a container it has not started.
        let has_init = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
        let reason = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let init_containers = spec.init_containers.iter().flatten().map(|c| (true, c));
        for (init, container) in init_containers.chain(spec.containers.iter().map(|c| (false, c))) {
            self.slots.push(Slot {
                init,
                spec: container.clone(),
                plan: None,
                view: ContainerView {
                    name: container.name.clone(),
                    image: container.image.clone().unwrap_or_default(),
                    state: ProcessState::Waiting {
                        reason: reason.into(),
                        message: None,
                    },
                    restart_count: 0,
                    last_termination: None,
                    container_id: None,
                },
                process: None,
                instances: 0,
                last_exit: None,
                crash: None,
                pull: None,
                wake_at: None,
                unsupported: false,
            });
        }
        info!(pod = %self.name, ip = %ip, "started");
        self.sync().await;
        self.report().await;
    }

    /// Whether the container should get a (new) instance: never started, or ended and the restart policy
    /// restarts it (init containers only after a failure).
    fn wants_start(&self, index: usize) -> bool {
        let slot = &self.slots[index];
        if slot.process.is_some() || slot.unsupported {
            return false;
        }
        let Some((t, _)) = &slot.last_exit else {
            return true;
        };
        match self.restart_policy().as_str() {
            "Always" => !slot.init || t.exit_code != 0,
            "OnFailure" => t.exit_code != 0,
            _ => false,
        }
    }

    /// One pass of the kubelet's sync for this pod: every container that may run now (the first init container
    /// that has not succeeded, or, once all did, the main containers), wants an instance and is not waiting for
    /// a timer gets a start attempt.
    async fn sync(&mut self) {
        if self.terminating || self.slots.is_empty() || self.is_finished() {
            return;
        }
        let now = Instant::now();
        let pending_init = self.slots.iter().position(|s| s.init && !s.succeeded());
        let eligible: Vec<usize> = match pending_init {
            Some(i) => vec![i],
            None => (0..self.slots.len())
                .filter(|&i| !self.slots[i].init)
                .collect(),
        };
        let candidates: Vec<usize> = eligible
            .into_iter()
            .filter(|&i| self.wants_start(i) && self.slots[i].wake_at.is_none_or(|t| t <= now))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let retry = now + self.ctx.config.config_retry_interval;
        match self.fetch_refs().await {
            Ok(refs) => self.refs = refs,
            Err(e) => {
                warn!(pod = %self.name, error = format!("{e:#}"), "cannot read configmaps/secrets");
                for i in candidates {
                    self.slots[i].wake_at = Some(retry);
                }
                return;
            }
        }
        // The volume manager mounts every volume before any container starts; until then they stay in their
        // default waiting state (the reason is only in a FailedMount event).
        if let Some(message) = volume_error(&self.facts(), &self.pod_dir) {
            info!(pod = %self.name, message, "volume not ready");
            for i in candidates {
                self.slots[i].wake_at = Some(retry);
            }
            return;
        }
        for i in candidates {
            self.try_start(i, now);
        }
    }

    fn try_start(&mut self, index: usize, now: Instant) {
        let cfg = self.ctx.config.clone();
        let retry = now + cfg.config_retry_interval;
        let pull_delay = self.resync_delay(cfg.image_pull_backoff_base);
        let crash_delay = self.resync_delay(cfg.crash_backoff_base);
        let restart_wanted_after_failure = {
            // Decided up front: whether a start failure will be retried (restartPolicy).
            let policy = self.restart_policy();
            policy == "Always" || policy == "OnFailure"
        };
        let slot = &mut self.slots[index];
        slot.wake_at = None;

        // 1. A container that ran before waits out its crash-loop back-off (kubelet: doBackOff).
        if let Some((_, finished)) = &slot.last_exit {
            let finished = *finished;
            match slot.crash {
                Some(b) if b.in_backoff_since(finished, now, cfg.max_backoff) => {
                    let message = crash_loop_message(
                        b.backoff,
                        &slot.view.name,
                        &self.pod_name,
                        &self.namespace,
                        &self.uid,
                    );
                    slot.wait("CrashLoopBackOff", Some(message));
                    slot.wake_at = Some(finished + b.backoff);
                    return;
                }
                prev => {
                    slot.crash = Some(Backoff::next(
                        prev,
                        finished,
                        now,
                        cfg.crash_backoff_base,
                        cfg.max_backoff,
                    ));
                }
            }
        }

        // 2. The image (kubelet: EnsureImageExists).
        let image = slot.view.image.clone();
        if let Some(error) = pull_error(&image, &cfg.unpullable_images) {
            if slot.spec.image_pull_policy.as_deref() == Some("Never") {
                slot.wait("ErrImageNeverPull", Some(never_pull_message(&image)));
                slot.wake_at = Some(retry);
                return;
            }
            match slot.pull {
                Some(b) if b.in_backoff_since_update(now) => {
                    let err_until = b.last_update + pull_delay.min(b.backoff / 2);
                    let showing_err = matches!(&slot.view.state,
                        ProcessState::Waiting { reason, .. } if reason == "ErrImagePull");
                    if showing_err && now < err_until {
                        slot.wake_at = Some(err_until);
                    } else {
                        slot.wait("ImagePullBackOff", Some(image_pull_backoff_message(&image)));
                        slot.wake_at = Some(b.last_update + b.backoff);
                    }
                }
                prev => {
                    let b =
                        Backoff::next(prev, now, now, cfg.image_pull_backoff_base, cfg.max_backoff);
                    slot.pull = Some(b);
                    slot.wait("ErrImagePull", Some(error));
                    slot.wake_at = Some(now + pull_delay.min(b.backoff / 2));
                    info!(pod = %self.name, container = %slot.view.name, image, "image pull failed");
                }
            }
            return;
        }

        // 3. Environment, files and paths (kubelet: generateContainerConfig). Without `command`, the image's
        // entrypoint, where the node maps the image to a local program.
        let mut spec = slot.spec.clone();
        if spec.command.as_ref().is_none_or(|c| c.is_empty())
            && let Some(program) = image_entrypoint(&image, &cfg.image_entrypoints)
        {
            spec.command = Some(vec![program.to_string()]);
        }
        let plan = plan_container(&spec, &self.facts(), &self.pod_dir);
        let slot = &mut self.slots[index];
        let plan = match plan {
            Ok(plan) => plan,
            Err(PlanError::Config(message)) => {
                slot.wait("CreateContainerConfigError", Some(message));
                slot.wake_at = Some(retry);
                return;
            }
            Err(PlanError::Mount(message)) => {
                debug!(pod = %self.name, message, "volume not ready");
                slot.wake_at = Some(retry);
                return;
            }
            Err(PlanError::Unsupported(message)) => {
                warn!(pod = %self.name, container = %slot.view.name, message, "cannot run container");
                slot.wait("CreateContainerConfigError", Some(message));
                slot.unsupported = true;
                return;
            }
        };

        // 4. A new instance.
        slot.instances += 1;
        slot.view.restart_count = i32::try_from(slot.instances - 1).unwrap_or(i32::MAX);
        if let Some((t, _)) = &slot.last_exit {
            slot.view.last_termination = Some(t.clone());
        }
        let generation = slot.instances;
        match process::spawn(&plan) {
            Ok((proc_, mut child)) => {
                slot.view.state = ProcessState::Running {
                    started_at: Timestamp::now(),
                };
                slot.view.container_id = Some(format!("sim://{}", proc_.pid));
                slot.process = Some(proc_);
                let tx = self.exits_tx.clone();
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
            Err(StartFailure(message)) => {
                // containerd: the container was created but its task never ran.
                let mut t =
                    Termination::new(128, None, Some(message.clone()), Timestamp::UNIX_EPOCH);
                t.reason = "StartError".into();
                t.container_id = Some(format!("sim://start-error-{generation}"));
                info!(pod = %self.name, container = %slot.view.name, message, "container start failed");
                slot.view.container_id = t.container_id.clone();
                slot.last_exit = Some((t.clone(), now));
                if restart_wanted_after_failure {
                    // Until the next sync restarts it (or backs off), the kubelet reports its start error.
                    slot.wait("RunContainerError", Some(message));
                    slot.wake_at = Some(now + crash_delay);
                } else {
                    slot.view.state = ProcessState::Terminated(t);
                }
            }
        }
        slot.plan = Some(plan);
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
            restart_policy: self.restart_policy(),
            init_containers: views(true),
            containers: views(false),
        }
    }

    fn is_finished(&self) -> bool {
        matches!(self.view().phase(), "Succeeded" | "Failed")
    }

    async fn on_exit(&mut self, exit: Exit) {
        let crash_delay = self.resync_delay(self.ctx.config.crash_backoff_base);
        let slot = &mut self.slots[exit.index];
        if slot.instances != exit.generation {
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
        let mut t = Termination::new(code, signal, message, started_at);
        t.container_id = slot.view.container_id.clone();
        slot.last_exit = Some((t.clone(), Instant::now()));
        slot.view.state = ProcessState::Terminated(t);
        if self.wants_start(exit.index) && !self.terminating {
            // Reported as terminated until the next sync restarts it or starts its back-off.
            self.slots[exit.index].wake_at = Some(Instant::now() + crash_delay);
        }
        self.sync().await;
        if self.is_finished() {
            // Terminal pod: its sandbox (our IP) is torn down, like the kubelet does.
            self.release_ip();
        }
        self.report().await;
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.report_retry_at.is_some_and(|at| at <= now) {
            self.report_retry_at = None;
            self.report().await;
        }
        if self.kill_at.is_some_and(|at| at <= now) {
            self.kill_at = None;
            info!(pod = %self.name, "grace period over, SIGKILL");
            self.kill_all(libc::SIGKILL);
        }
        if self
            .slots
            .iter()
            .any(|s| s.wake_at.is_some_and(|at| at <= now))
        {
            self.sync().await;
            // A container that is not eligible now (e.g. a later init container) must not spin on its timer.
            for slot in &mut self.slots {
                if slot.wake_at.is_some_and(|at| at <= now) {
                    slot.wake_at = None;
                }
            }
            if self.is_finished() {
                self.release_ip();
            }
            self.report().await;
        }
    }

    async fn on_update(&mut self, pod: Pod) {
        let deleting = pod.metadata.deletion_timestamp.is_some();
        self.pod = pod;
        if !deleting {
            // A changed image of a container that is not running is used at its next start (e.g. a fixed tag
            // ends an ImagePullBackOff), as the kubelet does.
            let containers: Vec<Container> = self
                .pod
                .spec
                .iter()
                .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
                .cloned()
                .collect();
            for slot in &mut self.slots {
                let Some(new) = containers.iter().find(|c| c.name == slot.spec.name) else {
                    continue;
                };
                if slot.process.is_none() && new.image != slot.spec.image {
                    slot.spec.image = new.image.clone();
                    slot.view.image = new.image.clone().unwrap_or_default();
                    slot.pull = None;
                    slot.wake_at = Some(Instant::now());
                }
            }
        }
        if deleting && !self.terminating {
            self.terminating = true;
            for slot in &mut self.slots {
                slot.wake_at = None;
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

    /// Posts the status built from our view when it changed; a few retries because a lost final status would
    /// hang a test.
    async fn report(&mut self) {
        if self.slots.is_empty() {
            return;
        }
        let view = self.view();
        let status = build_status(self.pod.status.as_ref(), &view, Timestamp::now());
        let value = json!(status);
        if self.last_sent.as_ref() == Some(&value) {
            return;
        }
        let patch = Patch::Merge(json!({ "status": value }));
        self.report_retry_at = None;
        for attempt in 0..5 {
            match self
                .api
                .patch_status(&self.pod_name, &PatchParams::default(), &patch)
                .await
            {
                Ok(pod) => {
                    if pod.metadata.uid.as_deref() == Some(self.uid.as_str()) {
                        self.pod.status = pod.status;
                    }
                    self.last_sent = Some(value);
                    return;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                Err(e) => {
                    warn!(pod = %self.name, attempt, error = %e, "status update failed");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
        self.report_retry_at = Some(Instant::now() + Duration::from_secs(1));
    }

    /// Every process is gone: post the final status and remove the object, as the kubelet does.
    async fn finish_deletion(&mut self) {
        self.report().await;
        self.release_ip();
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
            .delete(&self.pod_name, &params)
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
