//! The scale benchmark (`bench/scale.sh`, binary `seedsweep-scale-bench`): a real v1.20 control plane and a simulated
//! GPU node from this crate's harness, the `seedsweep operator` binary, and one or more SeedSweeps of stand-in
//! trials (`crate::standin`) replaying recorded SST-2 curves. It measures what the operator costs, how fast it
//! decides and how full it keeps the slots, not training: see docs/benchmarks.md for what each figure means.
//! [`local`] runs the same sweep through `seedsweep run`.

pub mod apiserver;
pub mod events;
pub mod job_queue;
pub mod local;
pub mod procstat;
pub mod reconciles;
pub mod slots;

use crate::cluster::{ClusterOptions, Setup, TestCluster};
use crate::helpers;
use crate::standin::curves::CurveFile;
use crate::standin::offline::{Schedule, offline_top, rung_score, served_evals};
use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use seedsweep_crds::MetricName;
use seedsweep_crds::sweep::{SeedSweep, SeedSweepStatus, SweepPhase, TrialPhase, TrialRecord};
use seedsweep_engine::snapshot::{CHUNK_DATA_KEY, Snapshot, chunk_name};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Runs a SeedSweep of stand-in trials against a real apiserver and reports what the operator cost.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "seedsweep-scale-bench")]
pub struct Options {
    /// Trials of each sweep: a square number gives a √n × √n grid; otherwise the first n pairs of the next larger grid.
    #[arg(long, default_value_t = 625)]
    pub trials: u32,
    /// Each sweep's.
    #[arg(long, default_value_t = 64)]
    pub parallelism: u32,
    /// SeedSweeps of that size created at once, named scale-1 … scale-N (a single one: scale); the node has
    /// N × parallelism GPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub sweeps: u32,
    /// Wall-clock seconds of one whole stand-in trial.
    #[arg(long, default_value_t = 20.0)]
    pub trial_seconds: f64,
    /// The `seedsweep` binary to run as the operator (a release build).
    #[arg(long)]
    pub operator: PathBuf,
    /// The `seedsweep-standin` binary (default: beside this one).
    #[arg(long)]
    pub standin: Option<PathBuf>,
    #[arg(long, default_value = "bench/curves/sst2-6x6.json")]
    pub curves: PathBuf,
    /// Passed to the operator when given; else its default (10 s).
    #[arg(long)]
    pub scrape_interval: Option<f64>,
    /// Where the report, the stand-ins' events and the operator's log go (default: a new directory under $TMPDIR).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 60)]
    pub timeout_minutes: u64,
    /// Gives the controller manager `--kube-api-qps=Q --kube-api-burst=2Q` when it is restarted before the sweeps
    /// start (it always is, to serve its metrics). Its Job controller creates every trial's pod through a client
    /// limited to 20 requests a second by default (start.sh keeps the default), the rate that bounds how fast freed
    /// slots fill again.
    #[arg(long)]
    pub controller_manager_qps: Option<u32>,
}

pub(crate) const RUNG_AT: f64 = 0.25;
pub(crate) const KEEP_FRACTION: f64 = 0.25;
const NODE: &str = "bench-gpu";
pub(crate) const SCHEDULE: Schedule = Schedule {
    epochs: 3,
    batch_size: 16,
    evals_per_epoch: 10,
    train_subset: Some(1000),
};

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The `seedsweep-standin` binary: the one given, else the one beside this binary; an error when it is not there.
pub(crate) fn standin_binary(given: Option<&PathBuf>) -> Result<PathBuf> {
    let standin = match given {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary's directory")?
            .join("seedsweep-standin"),
    };
    ensure!(standin.is_file(), "no stand-in at {}", standin.display());
    Ok(standin)
}

/// The `--curves` file the stand-ins replay: its absolute path (the stand-ins run elsewhere) and its curves.
pub(crate) fn load_curves(path: &Path) -> Result<(PathBuf, CurveFile)> {
    let curves = path
        .canonicalize()
        .with_context(|| format!("--curves {}", path.display()))?;
    let file = CurveFile::load(&curves)?;
    Ok((curves, file))
}

/// A benchmark binary's ending: the JSON report on stdout, or the error on stderr and exit status 1.
pub fn print_report(report: Result<serde_json::Value>) {
    match report {
        Ok(report) => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        ),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Where a benchmark writes: the directory given, else a new `<prefix>-<unique>` under $TMPDIR; created.
pub(crate) fn output_dir(given: Option<&PathBuf>, prefix: &str, unique: u64) -> Result<PathBuf> {
    let out = match given {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("{prefix}-{unique}")),
    };
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    Ok(out)
}

/// The seeds: a grid when `trials` is square, else the first `trials` pairs of the next grid, listed.
fn seeds_yaml(trials: u32) -> String {
    let side = (f64::from(trials).sqrt().ceil() as u32).max(1);
    if side * side == trials {
        return format!(
            "weightInit: {{start: 1, count: {side}}}\n    dataOrder: {{start: 1, count: {side}}}"
        );
    }
    let pairs: Vec<String> = (0..trials)
        .map(|i| {
            format!(
                "{{weightInit: {}, dataOrder: {}}}",
                i / side + 1,
                i % side + 1
            )
        })
        .collect();
    format!("pairs: [{}]", pairs.join(", "))
}

/// The sweeps' names: `scale` alone, else `scale-1` … `scale-N`.
fn sweep_names(sweeps: u32) -> Vec<String> {
    match sweeps {
        1 => vec!["scale".to_string()],
        n => (1..=n).map(|i| format!("scale-{i}")).collect(),
    }
}

fn sweep_yaml(o: &Options, name: &str, curves: &Path, events: &Path) -> String {
    standin_sweep_yaml(&StandinSweep {
        name,
        trials: o.trials,
        parallelism: o.parallelism,
        trial_seconds: o.trial_seconds,
        node: NODE,
        curves,
        events,
        backoff_limit: 0,
        extra_env: Vec::new(),
    })
}

/// A SeedSweep of stand-in trials with the benchmark's training settings and rung: what both the scale benchmark and
/// the fault scenarios (`crate::faults`) run.
pub(crate) struct StandinSweep<'a> {
    pub name: &'a str,
    pub trials: u32,
    pub parallelism: u32,
    pub trial_seconds: f64,
    /// The simulated node whose GPUs the trials use.
    pub node: &'a str,
    pub curves: &'a Path,
    pub events: &'a Path,
    pub backoff_limit: u32,
    /// More stand-in settings, as environment variables of the trial container.
    pub extra_env: Vec<(&'static str, String)>,
}

pub(crate) fn standin_sweep_yaml(s: &StandinSweep) -> String {
    let mut env = String::new();
    for (name, value) in &s.extra_env {
        env.push_str(&format!("      - {{name: {name}, value: \"{value}\"}}\n"));
    }
    format!(
        r#"{head}
  trialTemplate:
    image: seedsweep/standin:bench
    nodeSelector: {{kubernetes.io/hostname: {node}}}
    resources: {{limits: {{nvidia.com/gpu: "1"}}}}
    env:
      - {{name: SEEDSWEEP_STANDIN_CURVES, value: "{curves}"}}
      - {{name: SEEDSWEEP_STANDIN_SECONDS, value: "{secs}"}}
      - {{name: SEEDSWEEP_STANDIN_EVENTS, value: "{events}"}}
{env}"#,
        head = sweep_head_yaml(
            s.name,
            s.trials,
            s.parallelism,
            s.backoff_limit,
            "/data/glue/SST-2",
            "/models/minilm"
        ),
        node = s.node,
        curves = s.curves.display(),
        secs = s.trial_seconds,
        events = s.events.display(),
    )
}

/// The benchmark sweep without its trial template: seeds, training settings, the rung, parallelism. The cluster's
/// sweep adds the stand-in's pod settings; the local one ([`local`]) runs it as it is.
pub(crate) fn sweep_head_yaml(
    name: &str,
    trials: u32,
    parallelism: u32,
    backoff_limit: u32,
    data_dir: &str,
    model_dir: &str,
) -> String {
    format!(
        r#"apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata:
  name: {name}
spec:
  task: {{name: sst2, dataDir: "{data_dir}", trainSubset: 1000}}
  model: {{path: "{model_dir}"}}
  seeds:
    {seeds}
  training: {{epochs: {epochs}, batchSize: {batch}, learningRate: 1.0e-4, maxSeqLength: 64, evalsPerEpoch: {evals}}}
  earlyDiscard:
    mode: exact
    rungs: [{{atFraction: {RUNG_AT}, keepFraction: {KEEP_FRACTION}}}]
  parallelism: {parallelism}
  backoffLimit: {backoff_limit}"#,
        seeds = seeds_yaml(trials),
        epochs = SCHEDULE.epochs,
        batch = SCHEDULE.batch_size,
        evals = SCHEDULE.evals_per_epoch,
    )
}

/// The label the operator puts on its Jobs and their pods.
const LABEL_SWEEP: &str = "seedsweep.dev/sweep";

/// What the watches have seen, shared with the sampling loop.
#[derive(Default)]
struct Seen {
    /// Pod name → (its sweep, phase, being deleted).
    pods: BTreeMap<String, (String, String, bool)>,
    /// Job name → unix seconds of its deletion event.
    jobs_deleted: BTreeMap<String, f64>,
    /// Job name → (its sweep, unix seconds the watch first saw it: its creation).
    jobs_created: BTreeMap<String, (String, f64)>,
    /// Job name → (unix seconds its slot was first seen free: its pod ended, was being deleted or gone, or the Job
    /// was deleted; whether its sweep had trials left to start as last seen then).
    slots_freed: BTreeMap<String, (f64, bool)>,
    /// Sweep name → its status as last seen.
    statuses: BTreeMap<String, SeedSweepStatus>,
    /// Sweep name → how many times the watch saw its status change (each is at least one status write).
    status_changes: BTreeMap<String, u64>,
    /// Sweep name → unix seconds the watch first saw it in a final phase.
    finished: BTreeMap<String, f64>,
    /// Job name → how its first pod came to run, as the pod watch saw it.
    pod_starts: BTreeMap<String, PodStart>,
}

/// The stages between a trial Job's creation and its pod running, in unix seconds first seen by the pod watch:
/// the pod created (by the Job controller), bound to the node (by the scheduler), Running (set by the node
/// simulator once the stand-in's process is started). Only the Job's first pod counts.
#[derive(Debug, Clone, Default)]
struct PodStart {
    pod: String,
    created: f64,
    bound: Option<f64>,
    running: Option<f64>,
}

impl Seen {
    fn free_slot(&mut self, job: &str, sweep: &str) {
        if self.slots_freed.contains_key(job) {
            return;
        }
        let remaining = self
            .statuses
            .get(sweep)
            .is_some_and(|s| s.counts.pending > 0);
        self.slots_freed.insert(job.to_string(), (now(), remaining));
    }
}

fn sweep_label<K: kube::Resource>(o: &K) -> Option<String> {
    o.meta().labels.as_ref()?.get(LABEL_SWEEP).cloned()
}

fn watch<K, F>(api: Api<K>, seen: Arc<Mutex<Seen>>, mut on: F) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: FnMut(&mut Seen, watcher::Event<K>) + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(e) => {
                    if let Ok(mut s) = seen.lock() {
                        on(&mut s, e);
                    }
                }
                Err(e) => eprintln!("watch error (retried): {e}"),
            }
        }
    })
}

fn start_watches(
    client: &Client,
    ns: &str,
    seen: &Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let pods = watch(
        Api::<Pod>::namespaced(client.clone(), ns),
        seen.clone(),
        |s, e| match e {
            watcher::Event::Init => s.pods.clear(),
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                let Some(sweep) = sweep_label(&p) else { return };
                let phase = p
                    .status
                    .as_ref()
                    .and_then(|st| st.phase.clone())
                    .unwrap_or_default();
                let deleting = p.metadata.deletion_timestamp.is_some();
                let t = now();
                let start = s
                    .pod_starts
                    .entry(events::job_of_pod(&p.name_any()).to_string())
                    .or_insert_with(|| PodStart {
                        pod: p.name_any(),
                        created: t,
                        ..Default::default()
                    });
                if start.pod == p.name_any() {
                    if p.spec.as_ref().is_some_and(|sp| sp.node_name.is_some()) {
                        start.bound.get_or_insert(t);
                    }
                    if phase == "Running" {
                        start.running.get_or_insert(t);
                    }
                }
                if deleting || matches!(phase.as_str(), "Succeeded" | "Failed") {
                    s.free_slot(events::job_of_pod(&p.name_any()), &sweep);
                }
                s.pods.insert(p.name_any(), (sweep, phase, deleting));
            }
            watcher::Event::Delete(p) => {
                if let Some(sweep) = sweep_label(&p) {
                    s.free_slot(events::job_of_pod(&p.name_any()), &sweep);
                }
                s.pods.remove(&p.name_any());
            }
            watcher::Event::InitDone => {}
        },
    );
    let jobs = watch(
        Api::<Job>::namespaced(client.clone(), ns),
        seen.clone(),
        |s, e| match e {
            watcher::Event::Apply(j) | watcher::Event::InitApply(j) => {
                if let Some(sweep) = sweep_label(&j) {
                    s.jobs_created
                        .entry(j.name_any())
                        .or_insert_with(|| (sweep, now()));
                }
            }
            watcher::Event::Delete(j) => {
                s.jobs_deleted.entry(j.name_any()).or_insert_with(now);
                if let Some(sweep) = sweep_label(&j) {
                    s.free_slot(&j.name_any(), &sweep);
                }
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        },
    );
    let sweeps = watch(
        Api::<SeedSweep>::namespaced(client.clone(), ns),
        seen.clone(),
        |s, e| {
            if let watcher::Event::Apply(w) | watcher::Event::InitApply(w) = e
                && let Some(status) = w.status
            {
                let name = w.metadata.name.unwrap_or_default();
                if s.statuses.get(&name) != Some(&status) {
                    *s.status_changes.entry(name.clone()).or_default() += 1;
                }
                if matches!(
                    status.phase,
                    SweepPhase::Succeeded | SweepPhase::Failed | SweepPhase::Invalid
                ) {
                    s.finished.entry(name.clone()).or_insert_with(now);
                }
                s.statuses.insert(name, status);
            }
        },
    );
    vec![pods, jobs, sweeps]
}

pub(crate) async fn get_text(client: &Client, path: &str) -> Result<String> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .context("building a request")?;
    client
        .request_text(request)
        .await
        .with_context(|| format!("GET {path}"))
}

/// What a `seedsweep operator` process of a benchmark or fault scenario is started with.
pub(crate) struct OperatorLaunch<'a> {
    pub operator: &'a Path,
    pub kubeconfig: &'a Path,
    pub namespace: &'a str,
    pub standin: &'a Path,
    /// Passed when given; else the operator's default.
    pub scrape_interval: Option<f64>,
    /// `(lease seconds, identity)` for a replica under leader election; `None`: no leader election.
    pub leader: Option<(u64, &'a str)>,
    pub log: &'a Path,
}

/// One `seedsweep operator` process, by pid. Dropped: SIGTERM, as a rollout would, then SIGKILL after 10 s.
pub(crate) struct OperatorProcess {
    child: Child,
}

impl OperatorProcess {
    pub(crate) fn start(l: OperatorLaunch) -> Result<Self> {
        let mut cmd = Command::new(l.operator);
        cmd.arg("operator")
            .arg("--kubeconfig")
            .arg(l.kubeconfig)
            .args(["--namespace", l.namespace, "--metrics-addr", "127.0.0.1:0"])
            .arg("--trainer-command")
            .arg(l.standin);
        if let Some(s) = l.scrape_interval {
            cmd.args(["--scrape-interval", &s.to_string()]);
        }
        match l.leader {
            None => cmd.arg("--no-leader-election"),
            Some((lease, identity)) => cmd.args(["--lease-duration", &lease.to_string()]).args([
                "--lease-namespace",
                l.namespace,
                "--identity",
                identity,
            ]),
        };
        let child = cmd
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(l.log).with_context(|| l.log.display().to_string())?)
            .spawn()
            .with_context(|| format!("starting the operator {}", l.operator.display()))?;
        Ok(OperatorProcess { child })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap it.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the child we spawned and still hold (not reaped, so the pid is still ours).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the benchmark; the report as JSON (also written to `<out>/report.json`) and printed as text.
pub async fn run(o: Options) -> Result<serde_json::Value> {
    ensure!(
        o.trials >= 1 && o.parallelism >= 1,
        "--trials and --parallelism must be at least 1"
    );
    ensure!(
        (1..=50).contains(&o.sweeps),
        "--sweeps must be 1 to 50, got {}",
        o.sweeps
    );
    ensure!(
        o.trial_seconds.is_finite() && o.trial_seconds > 0.0,
        "--trial-seconds must be a positive number, got {}",
        o.trial_seconds
    );
    let (curves, file) = load_curves(&o.curves)?;
    let standin = standin_binary(o.standin.as_ref())?;
    ensure!(
        o.operator.is_file(),
        "--operator {}: not a file",
        o.operator.display()
    );
    let out = output_dir(o.out.as_ref(), "seedsweep-scale", now() as u64)?.canonicalize()?;
    let events_path = out.join("events.jsonl");
    let _ = std::fs::remove_file(&events_path);
    eprintln!("output in {}", out.display());
    let names = sweep_names(o.sweeps);
    let slots = o.parallelism * o.sweeps;

    eprintln!("starting the control plane ...");
    let cluster = match TestCluster::start(ClusterOptions::default())? {
        Setup::Ready(c) => c,
        Setup::Skip(why) => bail!("no control plane to benchmark on: {why}"),
    };
    let mut node = cluster.node_config(NODE)?.with_gpus(slots);
    // Finished trial pods stay (their Jobs are kept); the node must take all of them.
    node.pods = (o.trials * o.sweeps * 3).max(110);
    cluster.add_node(node).await?;
    // Restarted so that it serves its /metrics (the Job controller's work queue, read below), with a faster client
    // when asked.
    let mut kcm_args = vec!["--authorization-always-allow-paths=/healthz,/metrics".to_string()];
    if let Some(qps) = o.controller_manager_qps {
        ensure!(qps >= 1, "--controller-manager-qps must be at least 1");
        kcm_args.extend([
            format!("--kube-api-qps={qps}"),
            format!("--kube-api-burst={}", 2 * qps),
        ]);
    }
    eprintln!(
        "restarting the controller manager with {} ...",
        kcm_args.join(" ")
    );
    cluster.restart_controller_manager(&kcm_args).await?;
    let client = cluster.client().await?;
    helpers::apply_crd_yaml(
        &client,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/seedsweep.yaml"),
    )
    .await?;
    let ns = helpers::create_namespace(&client, "scale").await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watches = start_watches(&client, &ns, &seen);

    let log = out.join("operator.log");
    let operator = OperatorProcess::start(OperatorLaunch {
        operator: &o.operator,
        kubeconfig: cluster.kubeconfig(),
        namespace: &ns,
        standin: &standin,
        scrape_interval: o.scrape_interval,
        leader: None,
        log: &log,
    })?;
    let before = apiserver::request_counts(&get_text(&client, "/metrics").await?)
        .map_err(anyhow::Error::msg)?;
    let cpu_before = procstat::read(operator.pid()).map_err(anyhow::Error::msg)?;
    let job_queue_before = job_queue::read(&cluster.controller_manager_metrics().await?)
        .map_err(anyhow::Error::msg)?;
    let reconciles_before = read_reconciles(&log).await;

    let api = Api::<SeedSweep>::namespaced(client.clone(), &ns);
    let mut created = BTreeMap::new();
    for name in &names {
        let sweep: SeedSweep = serde_yaml::from_str(&sweep_yaml(&o, name, &curves, &events_path))?;
        api.create(&PostParams::default(), &sweep)
            .await
            .with_context(|| format!("creating the SeedSweep {name}"))?;
        created.insert(name.clone(), now());
    }
    let started = created.values().copied().fold(f64::INFINITY, f64::min);
    eprintln!(
        "{} sweep(s) of {} trials, parallelism {} each, {} s per trial",
        o.sweeps, o.trials, o.parallelism, o.trial_seconds
    );

    // Every second: the running pods while trials remain to be started, and the operator's memory.
    let mut fill = Fill::default();
    let mut peak_rss = 0u64;
    let mut peak_etcd_db = 0u64;
    let deadline = Instant::now() + Duration::from_secs(o.timeout_minutes * 60);
    let mut last_print = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(p) = procstat::read(operator.pid()) {
            peak_rss = peak_rss.max(p.peak_rss_bytes);
        } else {
            bail!("the operator exited; see {}", log.display());
        }
        peak_etcd_db = peak_etcd_db.max(cluster.etcd_db_bytes().unwrap_or(0));
        let done = {
            let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            fill.sample(&s, &names, o.parallelism);
            if last_print.elapsed() >= Duration::from_secs(15) {
                print_progress(&s, &names, now() - started);
                eprintln!("      etcd database: largest {} MiB", peak_etcd_db >> 20);
                last_print = Instant::now();
            }
            names.iter().all(|n| s.finished.contains_key(n))
        };
        if done {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the sweeps did not finish in {} minutes",
            o.timeout_minutes
        );
    }
    let after = apiserver::request_counts(&get_text(&client, "/metrics").await?)
        .map_err(anyhow::Error::msg)?;
    let cpu_after = procstat::read(operator.pid()).map_err(anyhow::Error::msg)?;
    let job_queue_after = job_queue::read(&cluster.controller_manager_metrics().await?)
        .map_err(anyhow::Error::msg)?;
    let queue_wall = now() - started;
    let etcd_db_at_end = cluster.etcd_db_bytes();
    let reconciles_after = read_reconciles(&log).await;
    let mut objects = BTreeMap::new();
    for name in &names {
        let raw: serde_json::Value = serde_json::from_str(
            &get_text(
                &client,
                &format!("/apis/seedsweep.dev/v1alpha1/namespaces/{ns}/seedsweeps/{name}"),
            )
            .await?,
        )?;
        objects.insert(name.clone(), raw);
    }
    // Give the last stand-ins a moment to log their ends.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for w in watches {
        w.abort();
    }
    drop(operator);
    let seen = std::mem::take(&mut *seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);

    let events = events::parse(
        &std::fs::read_to_string(&events_path)
            .with_context(|| format!("the stand-ins' events {}", events_path.display()))?,
    )
    .map_err(anyhow::Error::msg)?;
    let requests = apiserver::difference(&before, &after);
    let total_requests: f64 = requests.values().sum();
    let status_writes: f64 = requests
        .iter()
        .filter(|((verb, res), _)| {
            res == "seedsweeps/status" && matches!(verb.as_str(), "PATCH" | "PUT" | "APPLY")
        })
        .map(|(_, n)| n)
        .sum();
    let scrape_interval = o.scrape_interval.unwrap_or(10.0);

    let mut sweeps = Vec::new();
    let mut all = SweepFigures::default();
    let mut chunk_sizes = Vec::new();
    for name in &names {
        let status = seen
            .statuses
            .get(name)
            .with_context(|| format!("no status seen for {name}"))?;
        // Every trial's record, from the engine's memory (the status keeps at most 1,000).
        let (records, engine_chunks) = all_records(&client, &ns, name, status).await?;
        let f = sweep_figures(
            &o,
            &file,
            name,
            status,
            &records,
            &events,
            &seen,
            created[name],
            fill.by_sweep.get(name).map_or(&[][..], Vec::as_slice),
        );
        let raw = &objects[name];
        let mut report = f.report(scrape_interval);
        report["statusChangesSeen"] = json!(seen.status_changes.get(name));
        report["statusChangesPerMinute"] =
            json!(seen.status_changes.get(name).copied().unwrap_or(0) as f64 / (f.wall / 60.0));
        report["finalStatusBytes"] = json!(raw["status"].to_string().len());
        report["finalObjectBytes"] = json!(raw.to_string().len());
        report["statusTrialRecords"] = json!(status.trials.len());
        report["engineConfigMaps"] = json!({"count": engine_chunks.len(), "largestBytes": engine_chunks.iter().max(), "totalBytes": engine_chunks.iter().sum::<usize>()});
        chunk_sizes.extend(engine_chunks);
        sweeps.push(report);
        all.absorb(f);
    }
    all.wall = seen.finished.values().copied().fold(0.0, f64::max) - started;
    let wall = all.wall;
    let all_trials = f64::from(o.trials * o.sweeps);

    let by_request: Vec<serde_json::Value> = requests
        .iter()
        .map(|((verb, res), n)| json!({"verb": verb, "resource": res, "count": n, "perTrial": n / all_trials}))
        .collect();
    let phase = sweeps
        .iter()
        .map(|s| s["phase"].clone())
        .find(|p| p != "Succeeded")
        .unwrap_or(json!("Succeeded"));
    let final_status_bytes: u64 = sweeps
        .iter()
        .filter_map(|s| s["finalStatusBytes"].as_u64())
        .sum();
    let mut report = json!({
        "machine": {"cpus": std::thread::available_parallelism().map_or(0, |n| n.get()), "cpuModel": cpu_model()},
        "sweeps": o.sweeps,
        "trials": o.trials,
        "parallelism": o.parallelism,
        "trialSeconds": o.trial_seconds,
        "scrapeInterval": o.scrape_interval,
        "controllerManagerQps": o.controller_manager_qps.unwrap_or(20),
        "phase": phase,
        "operator": {
            "peakRssBytes": peak_rss.max(cpu_after.peak_rss_bytes),
            "cpuSecondsDuringSweep": cpu_after.cpu_seconds - cpu_before.cpu_seconds,
            "cpuSecondsTotal": cpu_after.cpu_seconds,
        },
        "etcdDatabaseBytes": {"peak": peak_etcd_db, "atEnd": etcd_db_at_end},
        "reconciles": reconciles_report(reconciles_before.as_ref(), reconciles_after.as_ref()),
        "jobControllerQueue": job_queue::report(&job_queue_before, &job_queue_after, queue_wall),
        "apiserverRequests": {"total": total_requests, "perTrial": total_requests / all_trials, "byVerbAndResource": by_request},
        "statusWritesPerMinute": status_writes / (wall / 60.0),
        "statusWritesPerMinutePerSweep": status_writes / f64::from(o.sweeps) / (wall / 60.0),
        "statusWrites": status_writes,
        "finalStatusBytes": final_status_bytes,
        "finalObjectBytes": sweeps.iter().filter_map(|s| s["finalObjectBytes"].as_u64()).sum::<u64>(),
        "statusTrialRecords": sweeps.iter().filter_map(|s| s["statusTrialRecords"].as_u64()).sum::<u64>(),
        "engineConfigMaps": {"count": chunk_sizes.len(), "largestBytes": chunk_sizes.iter().max(), "totalBytes": chunk_sizes.iter().sum::<usize>()},
        "perSweep": sweeps,
    });
    let aggregate = all.report(scrape_interval);
    if let (Some(r), serde_json::Value::Object(a)) = (report.as_object_mut(), aggregate) {
        for (k, v) in a {
            r.entry(k).or_insert(v);
        }
    }
    report["runningPodsFractionWhileTrialsRemain"] = fraction_report(&fill.all);
    report["warningEvents"] = json!(warning_events(&client, &ns).await?);
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let _ = helpers::delete_namespace(&client, &ns).await;
    drop(cluster);
    if let Some(s) = report["perSweep"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["keptIsOfflineCut"] != true)
    {
        bail!(
            "{}: the kept trials are not the offline cut of the served curves: kept {} of which {} in the cut; report in {}",
            s["name"],
            s["counts"]["succeeded"],
            s["keptInCut"],
            out.display()
        );
    }
    Ok(report)
}

/// The namespace's Warning events by reason, counting each event's repeats: what a user watching the sweep would
/// have been warned of (a `TrialStuck` for a pod that waited a moment for a GPU is a false alarm).
async fn warning_events(client: &Client, ns: &str) -> Result<BTreeMap<String, i64>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut by_reason = BTreeMap::new();
    let params = ListParams::default().fields("type=Warning");
    for event in api.list(&params).await.context("listing Warning events")? {
        *by_reason
            .entry(event.reason.unwrap_or_default())
            .or_default() += i64::from(event.count.unwrap_or(1).max(1));
    }
    Ok(by_reason)
}

/// Every trial's record as the engine reports it, read from the sweep's `status.engine` and its ConfigMaps, with
/// the size of each ConfigMap's data.
async fn all_records(
    client: &Client,
    ns: &str,
    name: &str,
    status: &SeedSweepStatus,
) -> Result<(Vec<TrialRecord>, Vec<usize>)> {
    let head: Snapshot = serde_json::from_value(
        status
            .engine
            .clone()
            .context("the final status has no engine")?,
    )?;
    let count = head.trial_chunks.map_or(0, |c| c.count());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    // The operator writes the status before the chunks: right after the status turns final, a chunk can be one
    // write behind. Read again until every trial has ended, for at most 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (snapshot, state, sizes) = loop {
        let (mut chunks, mut sizes) = (Vec::new(), Vec::new());
        for k in 0..count {
            let cm = api.get(&chunk_name(name, k)).await?;
            let text = (cm.data.as_ref())
                .and_then(|d| d.get(CHUNK_DATA_KEY))
                .context("a chunk without data")?;
            sizes.push(text.len());
            chunks.push(Some(serde_json::from_str(text)?));
        }
        let snapshot = Snapshot::from_chunks(head.clone(), chunks).map_err(anyhow::Error::msg)?;
        let state = snapshot.restore().map_err(anyhow::Error::msg)?;
        let unfinished = seedsweep_engine::transfer::unfinished_trials(&snapshot.spec, &state);
        if unfinished == 0 || Instant::now() > deadline {
            break (snapshot, state, sizes);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rules = state.rules(&snapshot.spec, snapshot.spec.parallelism as usize);
    let full = seedsweep_engine::report::status(&state, &state.decide(&rules));
    Ok((full.trials, sizes))
}

/// One-second samples of running pods ÷ parallelism while trials remain to be started: over all sweeps (Σ running
/// ÷ Σ parallelism while any sweep has trials left) and per sweep (while that one has).
#[derive(Default)]
struct Fill {
    all: Vec<f64>,
    by_sweep: BTreeMap<String, Vec<f64>>,
}

impl Fill {
    fn sample(&mut self, s: &Seen, names: &[String], parallelism: u32) {
        let mut running: BTreeMap<&str, usize> = BTreeMap::new();
        for (sweep, phase, deleting) in s.pods.values() {
            if phase == "Running" && !deleting {
                *running.entry(sweep.as_str()).or_default() += 1;
            }
        }
        let mut any_remaining = false;
        for name in names {
            let Some(status) = s.statuses.get(name) else {
                continue;
            };
            if status.counts.pending > 0 {
                any_remaining = true;
                let r = running.get(name.as_str()).copied().unwrap_or(0);
                self.by_sweep
                    .entry(name.clone())
                    .or_default()
                    .push(r as f64 / f64::from(parallelism));
            }
        }
        if any_remaining {
            let total: usize = names.iter().filter_map(|n| running.get(n.as_str())).sum();
            self.all
                .push(total as f64 / f64::from(parallelism * names.len() as u32));
        }
    }
}

fn print_progress(s: &Seen, names: &[String], elapsed: f64) {
    for name in names {
        let Some(status) = s.statuses.get(name) else {
            continue;
        };
        let c = &status.counts;
        let pods = s
            .pods
            .values()
            .filter(|(sweep, phase, deleting)| sweep == name && phase == "Running" && !deleting)
            .count();
        eprintln!(
            "{elapsed:>5.0} s {name}: {:?} pending {} running {} paused {} succeeded {} discarded {} failed {}; pods running {pods}",
            status.phase, c.pending, c.running, c.paused, c.succeeded, c.discarded, c.failed
        );
    }
}

/// What one sweep's run gave, before it is reported; [`SweepFigures::absorb`] pools sweeps.
#[derive(Default)]
struct SweepFigures {
    name: String,
    phase: String,
    succeeded: u32,
    discarded: u32,
    failed: u32,
    diverged: u32,
    kept_is_offline_cut: bool,
    kept_in_cut: usize,
    keep: usize,
    wall: f64,
    attempts: usize,
    standin_total: f64,
    parallelism: u32,
    latencies: Vec<f64>,
    refills: Vec<f64>,
    fill: Vec<f64>,
    /// Per Job whose first pod ran: Job created → pod created, pod created → bound, bound → Running (seconds).
    pod_stages: Vec<[f64; 3]>,
}

#[allow(clippy::too_many_arguments)]
fn sweep_figures(
    o: &Options,
    file: &CurveFile,
    name: &str,
    status: &SeedSweepStatus,
    records: &[TrialRecord],
    all_events: &[events::Event],
    seen: &Seen,
    created: f64,
    fill: &[f64],
) -> SweepFigures {
    let trials: BTreeSet<&str> = records.iter().map(|t| t.name.as_str()).collect();
    let events: Vec<events::Event> = all_events
        .iter()
        .filter(|e| trials.contains(e.trial.as_str()))
        .cloned()
        .collect();
    let attempts = events::attempt_seconds(&events);
    let latencies = events::decision_latencies(&events, RUNG_AT, &seen.jobs_deleted);

    // The engine's decisions against the offline cut of the curves the stand-ins served.
    let scored: Vec<(String, f64)> = records
        .iter()
        .map(|t| {
            let (evals, _) = served_evals(file, &SCHEDULE, t.weight_init, t.data_order, 0.0);
            let score = rung_score(&evals, RUNG_AT, MetricName::Accuracy).unwrap_or(f64::NAN);
            (t.name.clone(), score)
        })
        .collect();
    let keep = (KEEP_FRACTION * f64::from(o.trials)).ceil() as usize;
    let offline = offline_top(&scored, keep);
    let kept: BTreeSet<String> = records
        .iter()
        .filter(|t| t.phase == TrialPhase::Succeeded)
        .map(|t| t.name.clone())
        .collect();

    // Slots: each Job from its creation to its slot being freed.
    let slot_attempts: Vec<slots::Attempt> = seen
        .jobs_created
        .iter()
        .filter(|(_, (sweep, _))| sweep == name)
        .map(|(job, (_, start))| {
            let freed = seen.slots_freed.get(job);
            slots::Attempt {
                start: *start,
                end: freed.map(|f| f.0),
                ended_while_remaining: freed.is_some_and(|f| f.1),
            }
        })
        .collect();
    let refills = slots::refill_delays(o.parallelism.min(o.trials) as usize, &slot_attempts);
    let pod_stages = seen
        .jobs_created
        .iter()
        .filter(|(_, (sweep, _))| sweep == name)
        .filter_map(|(job, (_, created))| {
            let p = seen.pod_starts.get(job)?;
            let (bound, running) = (p.bound?, p.running?);
            Some([p.created - created, bound - p.created, running - bound])
        })
        .collect();

    let c = &status.counts;
    SweepFigures {
        name: name.to_string(),
        phase: format!("{:?}", status.phase),
        succeeded: c.succeeded,
        discarded: c.discarded,
        failed: c.failed,
        diverged: c.diverged,
        kept_is_offline_cut: kept == offline,
        kept_in_cut: kept.intersection(&offline).count(),
        keep,
        wall: seen.finished.get(name).copied().unwrap_or(f64::NAN) - created,
        attempts: attempts.len(),
        standin_total: attempts.iter().sum(),
        parallelism: o.parallelism,
        latencies,
        refills,
        fill: fill.to_vec(),
        pod_stages,
    }
}

impl SweepFigures {
    fn absorb(&mut self, f: SweepFigures) {
        let first = self.name.is_empty();
        self.phase = if first || self.phase == f.phase {
            f.phase
        } else {
            "mixed".into()
        };
        self.name = "all".into();
        self.succeeded += f.succeeded;
        self.discarded += f.discarded;
        self.failed += f.failed;
        self.diverged += f.diverged;
        self.kept_is_offline_cut = (first || self.kept_is_offline_cut) && f.kept_is_offline_cut;
        self.kept_in_cut += f.kept_in_cut;
        self.keep += f.keep;
        self.attempts += f.attempts;
        self.standin_total += f.standin_total;
        self.parallelism += f.parallelism;
        self.latencies.extend(f.latencies);
        self.refills.extend(f.refills);
        self.pod_stages.extend(f.pod_stages);
    }

    fn report(&self, scrape_interval: f64) -> serde_json::Value {
        let within = self
            .latencies
            .iter()
            .filter(|l| **l <= 2.0 * scrape_interval)
            .count();
        json!({
            "name": self.name,
            "phase": self.phase,
            "counts": {"succeeded": self.succeeded, "discarded": self.discarded, "failed": self.failed, "diverged": self.diverged},
            "keptIsOfflineCut": self.kept_is_offline_cut,
            "keptInCut": self.kept_in_cut,
            "keep": self.keep,
            "wallSeconds": self.wall,
            "attempts": self.attempts,
            "standinSecondsTotal": self.standin_total,
            "standinSecondsPerParallelism": self.standin_total / f64::from(self.parallelism.max(1)),
            "decisionLatencySeconds": quantiles_json(&self.latencies),
            "decisions": self.latencies.len(),
            "decisionsWithinTwoScrapeIntervals": within,
            "slotRefillSeconds": {
                "refills": self.refills.len(),
                "quantiles": quantiles_json(&self.refills),
                "mean": mean(&self.refills),
                "negative": self.refills.iter().filter(|d| **d < 0.0).count(),
            },
            "runningPodsFractionWhileTrialsRemain": fraction_report(&self.fill),
            "podStartSeconds": pod_start_report(&self.pod_stages),
        })
    }
}

/// Where the time between a Job's creation and its pod running went, stage by stage (see [`PodStart`]).
fn pod_start_report(stages: &[[f64; 3]]) -> serde_json::Value {
    let stage = |f: &dyn Fn(&[f64; 3]) -> f64| {
        let v: Vec<f64> = stages.iter().map(f).collect();
        json!({"quantiles": quantiles_json(&v), "mean": mean(&v)})
    };
    json!({
        "pods": stages.len(),
        "jobCreatedToPodCreated": stage(&|s| s[0]),
        "podCreatedToBound": stage(&|s| s[1]),
        "boundToRunning": stage(&|s| s[2]),
        "jobCreatedToRunning": stage(&|s| s.iter().sum()),
    })
}

fn quantiles_json(v: &[f64]) -> serde_json::Value {
    events::quantiles(v).map_or(
        json!(null),
        |(m, p, x)| json!({"median": m, "p95": p, "max": x}),
    )
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn fraction_report(v: &[f64]) -> serde_json::Value {
    json!({
        "samples": v.len(),
        "mean": mean(v),
        "quantiles": quantiles_json(v),
        "min": v.iter().copied().reduce(f64::min),
        "atLeast95Percent": v.iter().filter(|f| **f >= 0.95).count(),
    })
}

/// The operator's reconciliation counts and durations from its own `/metrics` (its address from its log); `None`
/// when they cannot be read, which the report says rather than failing the run.
async fn read_reconciles(log: &Path) -> Option<reconciles::Reconciles> {
    for _ in 0..50 {
        if let Some(addr) = std::fs::read_to_string(log)
            .ok()
            .and_then(|l| reconciles::metrics_address(&l))
        {
            let text = tokio::task::spawn_blocking(move || reconciles::fetch(&addr))
                .await
                .ok()?;
            return match text.and_then(|t| reconciles::Reconciles::parse(&t)) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("the operator's reconcile metrics: {e}");
                    None
                }
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("no metrics address in {}", log.display());
    None
}

fn reconciles_report(
    before: Option<&reconciles::Reconciles>,
    after: Option<&reconciles::Reconciles>,
) -> serde_json::Value {
    let (Some(b), Some(a)) = (before, after) else {
        return json!(null);
    };
    let diff = reconciles::Reconciles {
        ok: a.ok - b.ok,
        error: a.error - b.error,
        seconds_sum: a.seconds_sum - b.seconds_sum,
        seconds_count: a.seconds_count - b.seconds_count,
        buckets: a
            .buckets
            .iter()
            .map(|(le, n)| {
                let earlier = b.buckets.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
                (*le, n - earlier)
            })
            .collect(),
        steps: a
            .steps
            .iter()
            .map(|(step, (sum, n))| {
                let (s0, n0) = b.steps.get(step).copied().unwrap_or_default();
                (step.clone(), (sum - s0, n - n0))
            })
            .collect(),
    };
    // Mean seconds of each step where it ran: what a reconciliation spent where.
    let steps: serde_json::Map<String, serde_json::Value> = (diff.steps.iter())
        .map(|(step, (sum, n))| {
            let mean = (*n > 0.0).then(|| sum / n);
            (step.clone(), json!({"count": n, "meanSeconds": mean}))
        })
        .collect();
    json!({
        "ok": diff.ok,
        "errors": diff.error,
        "meanSeconds": diff.mean_seconds(),
        "medianAtMostSeconds": diff.quantile_bound(0.5),
        "p95AtMostSeconds": diff.quantile_bound(0.95),
        "steps": steps,
        "buckets": diff.buckets.iter().map(|(le, n)| json!([if le.is_finite() { json!(le) } else { json!("+Inf") }, n])).collect::<Vec<_>>(),
    })
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_counts_are_grids_and_others_list_pairs() {
        assert_eq!(
            seeds_yaml(25),
            "weightInit: {start: 1, count: 5}\n    dataOrder: {start: 1, count: 5}"
        );
        let pairs = seeds_yaml(5);
        assert_eq!(pairs.matches("weightInit").count(), 5);
        assert!(
            pairs.starts_with("pairs: [{weightInit: 1, dataOrder: 1}"),
            "{pairs}"
        );
    }
}
