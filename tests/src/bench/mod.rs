//! The scale benchmark (`bench/scale.sh`, binary `seedsweep-scale-bench`): a real v1.20 control plane and a simulated
//! GPU node from this crate's harness, the `seedsweep operator` binary, and one SeedSweep of stand-in trials
//! (`crate::standin`) replaying recorded SST-2 curves. It measures what the operator costs and how fast it decides,
//! not training: see docs/benchmarks.md for what each figure means.

pub mod apiserver;
pub mod events;
pub mod procstat;

use crate::cluster::{ClusterOptions, Setup, TestCluster};
use crate::helpers;
use crate::standin::curves::CurveFile;
use crate::standin::offline::{Schedule, offline_top, rung_score, served_evals};
use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams};
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
    /// Trials: a square number gives a √n × √n grid; otherwise the first n pairs of the next larger grid.
    #[arg(long, default_value_t = 625)]
    pub trials: u32,
    #[arg(long, default_value_t = 64)]
    pub parallelism: u32,
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
}

pub(crate) const RUNG_AT: f64 = 0.25;
pub(crate) const KEEP_FRACTION: f64 = 0.25;
const NODE: &str = "bench-gpu";
const SWEEP: &str = "scale";
pub(crate) const SCHEDULE: Schedule = Schedule {
    epochs: 3,
    batch_size: 16,
    evals_per_epoch: 10,
    train_subset: Some(1000),
};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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

fn sweep_yaml(o: &Options, curves: &Path, events: &Path) -> String {
    standin_sweep_yaml(&StandinSweep {
        name: SWEEP,
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
        r#"apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata:
  name: {name}
spec:
  task: {{name: sst2, dataDir: /data/glue/SST-2, trainSubset: 1000}}
  model: {{path: /models/minilm}}
  seeds:
    {seeds}
  training: {{epochs: {epochs}, batchSize: {batch}, learningRate: 1.0e-4, maxSeqLength: 64, evalsPerEpoch: {evals}}}
  earlyDiscard:
    mode: exact
    rungs: [{{atFraction: {RUNG_AT}, keepFraction: {KEEP_FRACTION}}}]
  parallelism: {par}
  backoffLimit: {backoff}
  trialTemplate:
    image: seedsweep/standin:bench
    nodeSelector: {{kubernetes.io/hostname: {node}}}
    resources: {{limits: {{nvidia.com/gpu: "1"}}}}
    env:
      - {{name: SEEDSWEEP_STANDIN_CURVES, value: "{curves}"}}
      - {{name: SEEDSWEEP_STANDIN_SECONDS, value: "{secs}"}}
      - {{name: SEEDSWEEP_STANDIN_EVENTS, value: "{events}"}}
{env}"#,
        name = s.name,
        seeds = seeds_yaml(s.trials),
        epochs = SCHEDULE.epochs,
        batch = SCHEDULE.batch_size,
        evals = SCHEDULE.evals_per_epoch,
        par = s.parallelism,
        backoff = s.backoff_limit,
        node = s.node,
        curves = s.curves.display(),
        secs = s.trial_seconds,
        events = s.events.display(),
    )
}

/// What the watches have seen, shared with the sampling loop.
#[derive(Default)]
struct Seen {
    /// Pod name → (phase, being deleted).
    pods: BTreeMap<String, (String, bool)>,
    /// Job name → unix seconds of its deletion event.
    jobs_deleted: BTreeMap<String, f64>,
    status: Option<SeedSweepStatus>,
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
                let phase = p
                    .status
                    .as_ref()
                    .and_then(|st| st.phase.clone())
                    .unwrap_or_default();
                let deleting = p.metadata.deletion_timestamp.is_some();
                s.pods.insert(p.name_any(), (phase, deleting));
            }
            watcher::Event::Delete(p) => {
                s.pods.remove(&p.name_any());
            }
            watcher::Event::InitDone => {}
        },
    );
    let jobs = watch(
        Api::<Job>::namespaced(client.clone(), ns),
        seen.clone(),
        |s, e| {
            if let watcher::Event::Delete(j) = e {
                s.jobs_deleted.entry(j.name_any()).or_insert_with(now);
            }
        },
    );
    let sweeps = watch(
        Api::<SeedSweep>::namespaced(client.clone(), ns),
        seen.clone(),
        |s, e| {
            if let watcher::Event::Apply(w) | watcher::Event::InitApply(w) = e
                && w.name_any() == SWEEP
            {
                s.status = w.status;
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
        o.trial_seconds.is_finite() && o.trial_seconds > 0.0,
        "--trial-seconds must be a positive number, got {}",
        o.trial_seconds
    );
    let curves = o
        .curves
        .canonicalize()
        .with_context(|| format!("--curves {}", o.curves.display()))?;
    let file = CurveFile::load(&curves)?;
    let standin = match &o.standin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary's directory")?
            .join("seedsweep-standin"),
    };
    ensure!(standin.is_file(), "no stand-in at {}", standin.display());
    ensure!(
        o.operator.is_file(),
        "--operator {}: not a file",
        o.operator.display()
    );
    let out = match &o.out {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("seedsweep-scale-{}", now() as u64)),
    };
    std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    let out = out.canonicalize()?;
    let events_path = out.join("events.jsonl");
    let _ = std::fs::remove_file(&events_path);
    eprintln!("output in {}", out.display());

    eprintln!("starting the control plane ...");
    let cluster = match TestCluster::start(ClusterOptions::default())? {
        Setup::Ready(c) => c,
        Setup::Skip(why) => bail!("no control plane to benchmark on: {why}"),
    };
    let mut node = cluster.node_config(NODE)?.with_gpus(o.parallelism);
    // Finished trial pods stay (their Jobs are kept); the node must take all of them.
    node.pods = (o.trials * 3).max(110);
    cluster.add_node(node).await?;
    let client = cluster.client().await?;
    helpers::apply_crd_yaml(
        &client,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/seedsweep.yaml"),
    )
    .await?;
    let ns = helpers::create_namespace(&client, "scale").await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watches = start_watches(&client, &ns, &seen);

    let operator = OperatorProcess::start(OperatorLaunch {
        operator: &o.operator,
        kubeconfig: cluster.kubeconfig(),
        namespace: &ns,
        standin: &standin,
        scrape_interval: o.scrape_interval,
        leader: None,
        log: &out.join("operator.log"),
    })?;
    let before = apiserver::request_counts(&get_text(&client, "/metrics").await?)
        .map_err(anyhow::Error::msg)?;
    let cpu_before = procstat::read(operator.pid()).map_err(anyhow::Error::msg)?;

    let sweep: SeedSweep = serde_yaml::from_str(&sweep_yaml(&o, &curves, &events_path))?;
    let started = now();
    Api::<SeedSweep>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sweep)
        .await
        .context("creating the SeedSweep")?;
    eprintln!(
        "{} trials, parallelism {}, {} s per trial",
        o.trials, o.parallelism, o.trial_seconds
    );

    // Every second: the running pods while trials remain to be started, and the operator's memory.
    let mut running_fraction = Vec::new();
    let mut peak_rss = 0u64;
    let deadline = Instant::now() + Duration::from_secs(o.timeout_minutes * 60);
    let mut last_print = Instant::now();
    let final_status = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(p) = procstat::read(operator.pid()) {
            peak_rss = peak_rss.max(p.peak_rss_bytes);
        } else {
            bail!(
                "the operator exited; see {}",
                out.join("operator.log").display()
            );
        }
        let (status, running) = {
            let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let running = s
                .pods
                .values()
                .filter(|(phase, deleting)| phase == "Running" && !deleting)
                .count();
            (s.status.clone(), running)
        };
        let Some(status) = status else { continue };
        if status.counts.pending > 0 {
            running_fraction.push(running as f64 / f64::from(o.parallelism));
        }
        if last_print.elapsed() >= Duration::from_secs(15) {
            let c = &status.counts;
            eprintln!(
                "{:>5.0} s: {:?} pending {} running {} paused {} succeeded {} discarded {} failed {}; pods running {running}",
                now() - started,
                status.phase,
                c.pending,
                c.running,
                c.paused,
                c.succeeded,
                c.discarded,
                c.failed
            );
            last_print = Instant::now();
        }
        if matches!(
            status.phase,
            SweepPhase::Succeeded | SweepPhase::Failed | SweepPhase::Invalid
        ) {
            break status;
        }
        ensure!(
            Instant::now() < deadline,
            "the sweep did not finish in {} minutes",
            o.timeout_minutes
        );
    };
    let finished = now();
    let wall = finished - started;
    let after = apiserver::request_counts(&get_text(&client, "/metrics").await?)
        .map_err(anyhow::Error::msg)?;
    let cpu_after = procstat::read(operator.pid()).map_err(anyhow::Error::msg)?;
    let raw: serde_json::Value = serde_json::from_str(
        &get_text(
            &client,
            &format!("/apis/seedsweep.dev/v1alpha1/namespaces/{ns}/seedsweeps/{SWEEP}"),
        )
        .await?,
    )?;
    let status_bytes = raw["status"].to_string().len();
    let object_bytes = raw.to_string().len();
    // Give the last stand-ins a moment to log their ends.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let jobs_deleted = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .jobs_deleted
        .clone();
    for w in watches {
        w.abort();
    }
    drop(operator);

    let events = events::parse(
        &std::fs::read_to_string(&events_path)
            .with_context(|| format!("the stand-ins' events {}", events_path.display()))?,
    )
    .map_err(anyhow::Error::msg)?;
    let attempts = events::attempt_seconds(&events);
    let standin_total: f64 = attempts.iter().sum();
    let latencies = events::decision_latencies(&events, RUNG_AT, &jobs_deleted);
    let requests = apiserver::difference(&before, &after);
    let total_requests: f64 = requests.values().sum();
    let status_writes: f64 = requests
        .iter()
        .filter(|((verb, res), _)| {
            res == "seedsweeps/status" && matches!(verb.as_str(), "PATCH" | "PUT" | "APPLY")
        })
        .map(|(_, n)| n)
        .sum();

    // The engine's decisions against the offline cut of the curves the stand-ins served: every trial's record, from
    // the engine's memory (the status keeps at most 1,000).
    let (records, engine_chunks) = all_records(&client, &ns, SWEEP, &final_status).await?;
    let scored: Vec<(String, f64)> = records
        .iter()
        .map(|t| {
            let (evals, _) = served_evals(&file, &SCHEDULE, t.weight_init, t.data_order, 0.0);
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

    let q =
        |v: &[f64]| events::quantiles(v).map(|(m, p, x)| json!({"median": m, "p95": p, "max": x}));
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let by_request: Vec<serde_json::Value> = requests
        .iter()
        .map(|((verb, res), n)| json!({"verb": verb, "resource": res, "count": n, "perTrial": n / f64::from(o.trials)}))
        .collect();
    let c = &final_status.counts;
    let report = json!({
        "machine": {"cpus": std::thread::available_parallelism().map_or(0, |n| n.get()), "cpuModel": cpu_model()},
        "trials": o.trials,
        "parallelism": o.parallelism,
        "trialSeconds": o.trial_seconds,
        "scrapeInterval": o.scrape_interval,
        "phase": format!("{:?}", final_status.phase),
        "counts": {"succeeded": c.succeeded, "discarded": c.discarded, "failed": c.failed, "diverged": c.diverged},
        "keptIsOfflineCut": kept == offline,
        "keep": keep,
        "wallSeconds": wall,
        "attempts": attempts.len(),
        "standinSecondsTotal": standin_total,
        "standinSecondsPerParallelism": standin_total / f64::from(o.parallelism),
        "decisionLatencySeconds": q(&latencies),
        "decisions": latencies.len(),
        "operator": {
            "peakRssBytes": peak_rss.max(cpu_after.peak_rss_bytes),
            "cpuSecondsDuringSweep": cpu_after.cpu_seconds - cpu_before.cpu_seconds,
            "cpuSecondsTotal": cpu_after.cpu_seconds,
        },
        "apiserverRequests": {"total": total_requests, "perTrial": total_requests / f64::from(o.trials), "byVerbAndResource": by_request},
        "statusWritesPerMinute": status_writes / (wall / 60.0),
        "statusWrites": status_writes,
        "finalStatusBytes": status_bytes,
        "finalObjectBytes": object_bytes,
        "statusTrialRecords": final_status.trials.len(),
        "engineConfigMaps": {"count": engine_chunks.len(), "largestBytes": engine_chunks.iter().max(), "totalBytes": engine_chunks.iter().sum::<usize>()},
        "runningPodsFractionWhileTrialsRemain": {"samples": running_fraction.len(), "mean": mean(&running_fraction), "quantiles": q(&running_fraction), "min": running_fraction.iter().copied().reduce(f64::min)},
    });
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let _ = helpers::delete_namespace(&client, &ns).await;
    drop(cluster);
    if kept != offline {
        bail!(
            "the kept trials are not the offline cut of the served curves: kept {} of which {} in the cut; report in {}",
            kept.len(),
            kept.intersection(&offline).count(),
            out.display()
        );
    }
    Ok(report)
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
    let (mut chunks, mut sizes) = (Vec::new(), Vec::new());
    for k in 0..count {
        let cm = api.get(&chunk_name(name, k)).await?;
        let text = (cm.data.as_ref())
            .and_then(|d| d.get(CHUNK_DATA_KEY))
            .context("a chunk without data")?;
        sizes.push(text.len());
        chunks.push(Some(serde_json::from_str(text)?));
    }
    let snapshot = Snapshot::from_chunks(head, chunks).map_err(anyhow::Error::msg)?;
    let state = snapshot.restore().map_err(anyhow::Error::msg)?;
    let rules = state.rules(&snapshot.spec, snapshot.spec.parallelism as usize);
    let full = seedsweep_engine::report::status(&state, &state.decide(&rules));
    Ok((full.trials, sizes))
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
