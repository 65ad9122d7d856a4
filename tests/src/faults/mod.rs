//! Fault scenarios (`bench/faults.sh`, binary `seedsweep-faults-bench`, and the reduced CI tests in
//! operator/tests/faults.rs): a SeedSweep of stand-in trials on a real v1.20 control plane with the node simulator,
//! the `seedsweep operator` binary, and one kind of fault injected while it runs — the operator SIGKILLed and
//! restarted, the leader of two replicas SIGKILLed, trials' metrics endpoints unreachable for a while, trial
//! processes SIGKILLed mid-training, the apiserver restarted. A run reports what the sweep decided (per trial,
//! without what depends on timing), every invariant it broke, and the figures of the fault (kill moments, takeover
//! times, outages); [`outcome`] holds the judging.

pub mod bench;
pub mod outcome;

use crate::bench::{
    KEEP_FRACTION, OperatorLaunch, OperatorProcess, RUNG_AT, SCHEDULE, StandinSweep, apiserver,
    cpu_model, get_text, standin_sweep_yaml,
};
use crate::cluster::{ClusterOptions, Setup, TestCluster};
use crate::helpers;
use crate::standin::cli::{OUTAGE_ENV, OUTAGE_TRIALS_ENV};
use crate::standin::curves::CurveFile;
use crate::standin::outage::OutageWindow;
use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use outcome::{Offline, Outcomes, Rng, duplicate_jobs, outcomes, trials_named};
use seedsweep_crds::sweep::{RungDecision, SeedSweep, SeedSweepStatus, SweepPhase, TrialPhase};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The sweep every scenario runs: the same name, so trial names (and so runs) compare.
pub const SWEEP: &str = "faults";
const NODE: &str = "faults-gpu";
const LEASE: &str = "seedsweep-operator";

/// One fault, injected while the sweep runs.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Nothing: the reference run.
    None,
    /// SIGKILL the (single) operator `kills` times, each a seeded random `gap` seconds after it started, and start
    /// it again at once.
    OperatorKills {
        kills: u32,
        seed: u64,
        gap: (f64, f64),
    },
    /// Two replicas with leader election; SIGKILL the leader `kills` times, each a seeded random `gap` seconds after
    /// the previous takeover (or the start), and start a new standby in its place.
    LeaderKills {
        kills: u32,
        lease_seconds: u64,
        seed: u64,
        gap: (f64, f64),
    },
    /// The first `trials` trials' metrics endpoints refuse connections for `window` of every attempt (from their
    /// first answer on, if that comes after the window's start).
    MetricsOutage { trials: u32, window: OutageWindow },
    /// SIGKILL the trial process of `kills` trials once each, when it has served an evaluation at or after
    /// `at_progress` (only relaunched, kept trials train past the rung at 25 %).
    TrialKills { kills: u32, at_progress: f64 },
    /// Restart the apiserver (etcd kept) `restarts` times, the first `first_after` seconds into the sweep and then
    /// every `every` seconds, each time down for `down` seconds.
    ApiserverRestarts {
        restarts: u32,
        first_after: f64,
        every: f64,
        down: f64,
    },
}

impl Fault {
    pub fn label(&self) -> &'static str {
        match self {
            Fault::None => "uninterrupted",
            Fault::OperatorKills { .. } => "operator-kills",
            Fault::LeaderKills { .. } => "leader-kills",
            Fault::MetricsOutage { .. } => "metrics-outage",
            Fault::TrialKills { .. } => "trial-kills",
            Fault::ApiserverRestarts { .. } => "apiserver-restarts",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub trials: u32,
    pub parallelism: u32,
    /// Wall-clock seconds of one whole stand-in attempt.
    pub trial_seconds: f64,
    pub scrape_interval: f64,
    /// The `seedsweep` binary.
    pub operator: PathBuf,
    pub standin: PathBuf,
    pub curves: PathBuf,
    /// Operator logs, the stand-ins' events and the report go here.
    pub out: PathBuf,
    pub timeout: Duration,
    pub fault: Fault,
}

/// What a run found.
#[derive(Debug)]
pub struct Run {
    pub outcomes: Outcomes,
    /// Every invariant the run broke, one line each; empty when it kept them all.
    pub violations: Vec<String>,
    pub report: serde_json::Value,
}

impl Run {
    /// Adds the differences from a reference run of the same seeds and curves to the violations.
    pub fn compare_with(&mut self, reference: &Outcomes) {
        for d in outcome::differences(reference, &self.outcomes) {
            self.violations
                .push(format!("differs from the uninterrupted run: {d}"));
        }
        self.report["identicalToUninterrupted"] =
            json!(outcome::differences(reference, &self.outcomes).is_empty());
        self.report["violations"] = json!(self.violations);
    }
}

/// What the watches have seen.
#[derive(Default)]
struct Seen {
    status: Option<SeedSweepStatus>,
    /// Job name → every uid seen for it: more than one is a second Job for the same trial attempt.
    job_uids: BTreeMap<String, BTreeSet<String>>,
    /// MetricsUnavailable as it changed: (seconds since the sweep's creation, status, message).
    unavailable: Vec<(f64, String, String)>,
}

fn watch<K, F>(api: Api<K>, seen: Arc<Mutex<Seen>>, mut on: F) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: FnMut(&mut Seen, watcher::Event<K>) + Send + 'static,
{
    tokio::spawn(async move {
        // With back-off: while the apiserver is down, the watch retries instead of spinning on errors; it resumes
        // from its last resourceVersion, so no Job created in between goes unseen.
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            if let Ok(e) = event
                && let Ok(mut s) = seen.lock()
            {
                on(&mut s, e);
            }
        }
    })
}

/// One operator replica: its process and its leader-election identity.
struct Operator {
    process: OperatorProcess,
    identity: String,
}

impl Operator {
    fn start(
        s: &Scenario,
        kubeconfig: &Path,
        ns: &str,
        identity: &str,
        lease_seconds: Option<u64>,
    ) -> Result<Self> {
        let process = OperatorProcess::start(OperatorLaunch {
            operator: &s.operator,
            kubeconfig,
            namespace: ns,
            standin: &s.standin,
            scrape_interval: Some(s.scrape_interval),
            leader: lease_seconds.map(|l| (l, identity)),
            log: &s.out.join(format!("operator-{identity}.log")),
        })?;
        Ok(Operator {
            process,
            identity: identity.to_string(),
        })
    }

    /// SIGKILL, and reap it.
    fn kill(self) {
        self.process.kill();
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }
}

/// The trial names of the first `n` seed pairs, in launch order (the pairs `bench::seeds_yaml` lists).
fn first_trials(trials: u32, n: u32) -> Vec<String> {
    let side = (f64::from(trials).sqrt().ceil() as u32).max(1);
    (0..n.min(trials))
        .map(|i| format!("{SWEEP}-w{}-d{}", i / side + 1, i % side + 1))
        .collect()
}

/// Jobs the apiserver has created (POSTs answered 201) since it started.
async fn jobs_created(client: &Client) -> Result<f64> {
    apiserver::created(&get_text(client, "/metrics").await?, "jobs").map_err(anyhow::Error::msg)
}

async fn lease_holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty())
}

/// A stand-in's event line, the fields the scenarios read.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StandinEvent {
    t: f64,
    trial: String,
    pod: Option<String>,
    event: String,
    progress: Option<f64>,
    index: Option<u32>,
    metrics: Option<seedsweep_crds::Metrics>,
    wi_seed: Option<u64>,
    do_seed: Option<u64>,
    reachable: Option<bool>,
}

fn read_events(path: &Path) -> Vec<StandinEvent> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        // A line being appended right now may be incomplete; the next read has it whole.
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs `s`: its own control plane, one sweep, the fault; returns what it found. Errors are for runs that could not
/// be judged (no control plane, the sweep did not finish in time); broken invariants are `violations`.
pub async fn run(s: &Scenario) -> Result<Run> {
    ensure!(
        s.trials >= 1 && s.parallelism >= 1,
        "trials and parallelism must be at least 1"
    );
    let curves = s
        .curves
        .canonicalize()
        .with_context(|| format!("curves {}", s.curves.display()))?;
    let file = CurveFile::load(&curves)?;
    ensure!(
        s.standin.is_file(),
        "no stand-in at {}",
        s.standin.display()
    );
    ensure!(
        s.operator.is_file(),
        "no operator at {}",
        s.operator.display()
    );
    std::fs::create_dir_all(&s.out).with_context(|| s.out.display().to_string())?;
    let out = s.out.canonicalize()?;
    let s = &Scenario {
        out: out.clone(),
        ..s.clone()
    };
    let events_path = out.join("events.jsonl");
    let _ = std::fs::remove_file(&events_path);

    let began = Instant::now();
    let cluster = match TestCluster::start(ClusterOptions::default())? {
        Setup::Ready(c) => c,
        Setup::Skip(why) => bail!("no control plane: {why}"),
    };
    let cluster_seconds = began.elapsed().as_secs_f64();
    let mut node = cluster.node_config(NODE)?.with_gpus(s.parallelism);
    node.pods = (s.trials * 4).max(110);
    cluster.add_node(node).await?;
    let client = cluster.client().await?;
    helpers::apply_crd_yaml(
        &client,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/seedsweep.yaml"),
    )
    .await?;
    let ns = helpers::create_namespace(&client, "faults").await?;
    let result = drive(s, &cluster, &client, &ns, &file, &events_path).await;
    if result.is_err()
        && let Ok(dir) =
            std::fs::create_dir_all(out.join("diagnostics")).map(|_| out.join("diagnostics"))
    {
        let _ = std::fs::write(
            dir.join("namespace.txt"),
            cluster.diagnostics(&client, &ns).await,
        );
    }
    let _ = helpers::delete_namespace(&client, &ns).await;
    let teardown = Instant::now();
    drop(cluster);
    let mut run = result?;
    run.report["harnessSeconds"] = json!({
        "controlPlaneStart": cluster_seconds,
        "teardown": teardown.elapsed().as_secs_f64(),
        "total": began.elapsed().as_secs_f64(),
    });
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&run.report)?,
    )?;
    Ok(run)
}

async fn drive(
    s: &Scenario,
    cluster: &TestCluster,
    client: &Client,
    ns: &str,
    file: &CurveFile,
    events_path: &Path,
) -> Result<Run> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let created = Instant::now();
    let jobs = watch(
        Api::<Job>::namespaced(client.clone(), ns),
        seen.clone(),
        |s, e| {
            if let watcher::Event::Apply(j) | watcher::Event::InitApply(j) = e
                && let Some(uid) = j.metadata.uid.clone()
            {
                s.job_uids.entry(j.name_any()).or_default().insert(uid);
            }
        },
    );
    let sweeps = watch(
        Api::<SeedSweep>::namespaced(client.clone(), ns),
        seen.clone(),
        move |s, e| {
            if let watcher::Event::Apply(w) | watcher::Event::InitApply(w) = e
                && w.name_any() == SWEEP
            {
                let unavailable = w.status.as_ref().and_then(|st| {
                    st.conditions
                        .iter()
                        .find(|c| c.type_ == "MetricsUnavailable")
                        .map(|c| (c.status.clone(), c.message.clone()))
                });
                if let Some((status, message)) = unavailable
                    && s.unavailable
                        .last()
                        .is_none_or(|(_, st, m)| *st != status || *m != message)
                {
                    s.unavailable
                        .push((created.elapsed().as_secs_f64(), status, message));
                }
                s.status = w.status;
            }
        },
    );
    let watches = [jobs, sweeps];
    let result = inject(s, cluster, client, ns, &seen, events_path).await;
    // Let the watches catch up with the last writes before judging.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for w in watches {
        w.abort();
    }
    let figures = result?;
    judge(s, &seen, file, events_path, figures).await
}

/// What the injection loop measured, for the report.
#[derive(Default)]
struct Figures {
    wall_seconds: f64,
    /// Seconds into the sweep of each fault, with what it was.
    faults: Vec<serde_json::Value>,
    takeover_seconds: Vec<f64>,
    /// Jobs the apiserver created, summed over its lifetimes (its counters restart with it).
    jobs_created: f64,
    apiserver_unavailable_seconds: Vec<f64>,
    /// Pods whose trial process was killed: (trial, pod, index of the last evaluation it served).
    killed_pods: Vec<(String, String, u32)>,
    operator_pid_unchanged: Option<bool>,
    /// (injected, planned) faults.
    injected: (u32, u32),
    final_status: Option<SeedSweepStatus>,
}

async fn inject(
    s: &Scenario,
    cluster: &TestCluster,
    client: &Client,
    ns: &str,
    seen: &Arc<Mutex<Seen>>,
    events_path: &Path,
) -> Result<Figures> {
    let mut extra_env = Vec::new();
    if let Fault::MetricsOutage { trials, window } = &s.fault {
        extra_env.push((OUTAGE_ENV, format!("{}:{}", window.from, window.to)));
        extra_env.push((OUTAGE_TRIALS_ENV, first_trials(s.trials, *trials).join(",")));
    }
    let yaml = standin_sweep_yaml(&StandinSweep {
        name: SWEEP,
        trials: s.trials,
        parallelism: s.parallelism,
        trial_seconds: s.trial_seconds,
        node: NODE,
        curves: &s.curves.canonicalize()?,
        events: events_path,
        // A killed trial process is retried by its Job.
        backoff_limit: 2,
        extra_env,
    });
    let kubeconfig = cluster.kubeconfig();
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let (mut rng, lease) = match &s.fault {
        Fault::OperatorKills { seed, .. } => (Rng::new(*seed), None),
        Fault::LeaderKills {
            seed,
            lease_seconds,
            ..
        } => (Rng::new(*seed), Some(*lease_seconds)),
        _ => (Rng::new(0), None),
    };
    let mut replicas = 0u32;
    let start_replica = |rs: &mut u32| {
        *rs += 1;
        Operator::start(s, kubeconfig, ns, &format!("replica-{rs}"), lease)
    };
    let mut operators = vec![start_replica(&mut replicas)?];
    if lease.is_some() {
        operators.push(start_replica(&mut replicas)?);
    }
    let first_pid = operators[0].process.pid();

    let mut figures = Figures::default();
    let mut created_before = jobs_created(client).await?;
    let sweep: SeedSweep = serde_yaml::from_str(&yaml)?;
    let rungs = (sweep.spec.early_discard.as_ref()).map_or(0, |d| d.rungs.len());
    Api::<SeedSweep>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sweep)
        .await
        .context("creating the SeedSweep")?;
    let started = Instant::now();
    let at = || started.elapsed().as_secs_f64();

    let mut done = 0u32;
    let mut next_fault = match &s.fault {
        Fault::OperatorKills { gap, .. } | Fault::LeaderKills { gap, .. } => {
            rng.uniform(gap.0, gap.1)
        }
        Fault::ApiserverRestarts { first_after, .. } => *first_after,
        _ => 0.0,
    };
    // Leader kills: the identity killed and when, until another replica holds the lease.
    let mut awaiting_takeover: Option<(String, Instant)> = None;
    let deadline = Instant::now() + s.timeout;
    let mut killed_trials = BTreeSet::new();
    let final_status = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ensure!(
            Instant::now() < deadline,
            "the sweep did not finish in {} s; {} faults injected",
            s.timeout.as_secs(),
            done
        );
        for op in &mut operators {
            if let Some(status) = op.exited() {
                bail!(
                    "operator {} exited by itself ({status}); see its log in {}",
                    op.identity,
                    s.out.display()
                );
            }
        }
        match &s.fault {
            Fault::OperatorKills { kills, gap, .. } if done < *kills && at() >= next_fault => {
                let op = operators.pop().context("no operator")?;
                op.kill();
                done += 1;
                figures
                    .faults
                    .push(json!({"at": at(), "what": "operator SIGKILLed and restarted"}));
                operators.push(start_replica(&mut replicas)?);
                next_fault = at() + rng.uniform(gap.0, gap.1);
            }
            Fault::LeaderKills { kills, .. }
                if done < *kills && awaiting_takeover.is_none() && at() >= next_fault =>
            {
                if let Some(holder) = lease_holder(&leases).await
                    && let Some(i) = operators.iter().position(|o| o.identity == holder)
                {
                    operators.remove(i).kill();
                    done += 1;
                    figures
                        .faults
                        .push(json!({"at": at(), "what": format!("leader {holder} SIGKILLed")}));
                    awaiting_takeover = Some((holder, Instant::now()));
                }
            }
            Fault::LeaderKills { gap, .. } if awaiting_takeover.is_some() => {
                let holder = lease_holder(&leases).await;
                if let Some((killed, when)) = &awaiting_takeover
                    && holder.as_ref().is_some_and(|h| h != killed)
                {
                    figures.takeover_seconds.push(when.elapsed().as_secs_f64());
                    awaiting_takeover = None;
                    // Two replicas again: the killed one's replacement stands by.
                    operators.push(start_replica(&mut replicas)?);
                    next_fault = at() + rng.uniform(gap.0, gap.1);
                }
            }
            Fault::ApiserverRestarts {
                restarts,
                every,
                down,
                ..
            } if done < *restarts && at() >= next_fault => {
                figures.jobs_created += jobs_created(client).await? - created_before;
                let when = at();
                let restart = cluster
                    .restart_apiserver(Duration::from_secs_f64(*down))
                    .await?;
                created_before = 0.0;
                done += 1;
                figures
                    .apiserver_unavailable_seconds
                    .push(restart.unavailable.as_secs_f64());
                figures.faults.push(json!({
                    "at": when,
                    "what": "apiserver restarted",
                    "unavailableSeconds": restart.unavailable.as_secs_f64(),
                    "stopSeconds": restart.stop.as_secs_f64(),
                    "sigkilledAfter5s": restart.killed,
                    "startupSeconds": restart.startup.as_secs_f64(),
                }));
                next_fault = at() + every;
            }
            Fault::TrialKills { kills, at_progress } if done < *kills => {
                // Trials the written status says continue past every rung for certain: their current attempt
                // trains to completion, whether it continued at once or was relaunched after a pause (how many do
                // which depends on the order trials reach the rung). A relaunch is written before its Job exists.
                let continued: BTreeSet<String> = (seen.lock())
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .status
                    .iter()
                    .flat_map(|st| &st.trials)
                    .filter(|t| {
                        t.rungs.len() == rungs
                            && t.rungs.iter().all(|r| r.decision == RungDecision::Continue)
                    })
                    .map(|t| t.name.clone())
                    .collect();
                for e in read_events(events_path).iter().rev() {
                    let (Some(pod), Some(p), Some(index)) = (&e.pod, e.progress, e.index) else {
                        continue;
                    };
                    // Only attempts that train to completion. Any other is stopped at the rung, and one that
                    // overran it before its pause would be deleted, not retried. (An earlier, paused attempt of a
                    // continued trial has no process left to kill.)
                    if e.event != "eval"
                        || p < *at_progress
                        || !continued.contains(&e.trial)
                        || killed_trials.contains(&e.trial)
                    {
                        continue;
                    }
                    if cluster.kill_pod_processes(ns, pod)? > 0 {
                        killed_trials.insert(e.trial.clone());
                        done += 1;
                        figures
                            .killed_pods
                            .push((e.trial.clone(), pod.clone(), index));
                        figures.faults.push(json!({"at": at(), "what": format!("trial process of {pod} SIGKILLed after evaluation {index}")}));
                        break;
                    }
                }
            }
            _ => {}
        }
        let status = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .status
            .clone();
        if let Some(status) = status
            && matches!(
                status.phase,
                SweepPhase::Succeeded | SweepPhase::Failed | SweepPhase::Invalid
            )
            && awaiting_takeover.is_none()
        {
            break status;
        }
    };
    figures.wall_seconds = at();
    figures.jobs_created += jobs_created(client).await? - created_before;
    if matches!(s.fault, Fault::ApiserverRestarts { .. }) {
        figures.operator_pid_unchanged =
            Some(operators.len() == 1 && operators[0].process.pid() == first_pid);
    }
    let planned = match &s.fault {
        Fault::OperatorKills { kills, .. }
        | Fault::LeaderKills { kills, .. }
        | Fault::TrialKills { kills, .. } => *kills,
        Fault::ApiserverRestarts { restarts, .. } => *restarts,
        _ => 0,
    };
    figures.injected = (done, planned);
    figures.final_status = Some(final_status);
    drop(operators);
    Ok(figures)
}

async fn judge(
    s: &Scenario,
    seen: &Arc<Mutex<Seen>>,
    file: &CurveFile,
    events_path: &Path,
    figures: Figures,
) -> Result<Run> {
    let status = figures.final_status.clone().context("no final status")?;
    let (job_uids, unavailable) = {
        let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        (s.job_uids.clone(), s.unavailable.clone())
    };
    let mut violations = Vec::new();
    if status.phase != SweepPhase::Succeeded {
        violations.push(format!("the sweep ended {:?}", status.phase));
    }
    if status.trials.len() != s.trials as usize {
        violations.push(format!(
            "{} trials in the status, {} planned",
            status.trials.len(),
            s.trials
        ));
    }
    let offline = Offline::of(&status, file, &SCHEDULE, RUNG_AT, KEEP_FRACTION);
    let (rung_observations, problems) = offline.check(&status);
    violations.extend(problems);
    let duplicates = duplicate_jobs(&job_uids);
    violations.extend(duplicates.iter().map(|d| format!("duplicate Job: {d}")));
    let uids: usize = job_uids.values().map(BTreeSet::len).sum();
    let apiserver_restarted = !figures.apiserver_unavailable_seconds.is_empty();
    // The apiserver's own count of Jobs created (201s) catches a Job deleted and created again under its name
    // between two watch events. It can only be lower than the names when a client vanished mid-request (the
    // create was answered to nobody and counted under another code); and across apiserver restarts a creation
    // between the last reading and the stop would be missed, so there the watch alone counts.
    if !apiserver_restarted && figures.jobs_created > job_uids.len() as f64 {
        violations.push(format!(
            "the apiserver created {} Jobs for {} Job names",
            figures.jobs_created,
            job_uids.len()
        ));
    }
    let events = read_events(events_path);
    let (injected, planned) = figures.injected;
    if injected < planned {
        // A scenario too short for its faults tested less than it says: fail rather than pass quietly.
        violations.push(format!(
            "only {injected} of {planned} faults were injected before the sweep ended"
        ));
    }
    let mut extra = serde_json::Map::new();
    match &s.fault {
        Fault::LeaderKills { lease_seconds, .. } => {
            extra.insert("leaseSeconds".into(), json!(lease_seconds));
            extra.insert("takeoverSeconds".into(), json!(figures.takeover_seconds));
        }
        Fault::MetricsOutage { trials, window } => {
            let outaged: BTreeSet<String> = first_trials(s.trials, *trials).into_iter().collect();
            let named: BTreeSet<String> = unavailable
                .iter()
                .filter(|(_, st, _)| st == "True")
                .flat_map(|(_, _, m)| trials_named(m, SWEEP))
                .collect();
            let raised_at = unavailable
                .iter()
                .find(|(_, st, _)| st == "True")
                .map(|u| u.0);
            let cleared_at = unavailable
                .iter()
                .skip_while(|(_, st, _)| st != "True")
                .find(|(_, st, _)| st == "False")
                .map(|u| u.0);
            if raised_at.is_none() {
                violations.push("MetricsUnavailable never became True".into());
            }
            if raised_at.is_some() && cleared_at.is_none() {
                violations.push("MetricsUnavailable never went back to False".into());
            }
            for t in named.difference(&outaged) {
                violations.push(format!("{t} was reported unavailable without an outage"));
            }
            // An outage counts when the trial's first attempt outlived it: the forwarder starts it at the endpoint's
            // first answer (not before), and an attempt the operator pauses at the rung first never sees it. Each
            // outage that counted must have been reported, and the attempt was paused at the rung only after its
            // endpoint answered again: the decision came from a scrape after the outage, not from a guess during it.
            let mut recovered = 0;
            let mut did_not_count = Vec::new();
            for t in &outaged {
                let first_pod = events
                    .iter()
                    .find(|e| &e.trial == t && e.event == "start")
                    .and_then(|e| e.pod.clone());
                let of_pod = |event: &str, reachable: Option<bool>| {
                    events.iter().find(|e| {
                        e.pod == first_pod
                            && e.event == event
                            && (reachable.is_none() || e.reachable == reachable)
                    })
                };
                let (down, back) = (
                    of_pod("metricsOutage", Some(false)),
                    of_pod("metricsOutage", Some(true)),
                );
                match (down, back, of_pod("end", None)) {
                    (Some(_), Some(b), Some(e)) if e.t >= b.t => {
                        recovered += 1;
                        if !named.contains(t) {
                            violations.push(format!(
                                "{t}'s outage was never reported in MetricsUnavailable"
                            ));
                        }
                    }
                    (_, _, Some(_)) => did_not_count.push(t.clone()),
                    _ => violations
                        .push(format!("{t}: its first attempt's end is not in the events")),
                }
            }
            if recovered == 0 {
                violations.push(format!(
                    "no outage counted (window {}-{}): every outage trial's first attempt ended before its endpoint \
                     came back, or was never scraped before the window's end; the scenario tested nothing",
                    window.from, window.to
                ));
            }
            extra.insert("outagesThatDidNotCount".into(), json!(did_not_count));
            let stopped_for_it: Vec<&String> = outaged
                .iter()
                .filter(|t| {
                    status.trials.iter().any(|r| {
                        &&r.name == t
                            && matches!(r.phase, TrialPhase::Failed | TrialPhase::Diverged)
                    })
                })
                .collect();
            for t in stopped_for_it {
                violations.push(format!("{t} failed during its outage"));
            }
            extra.insert("outageTrials".into(), json!(outaged));
            extra.insert("recoveredBeforeDecision".into(), json!(recovered));
            extra.insert(
                "metricsUnavailable".into(),
                json!(
                    unavailable
                        .iter()
                        .map(|(t, st, m)| json!({"at": t, "status": st, "message": m}))
                        .collect::<Vec<_>>()
                ),
            );
        }
        Fault::TrialKills { .. } => {
            let mut reproduced = 0;
            for (trial, pod, last_index) in &figures.killed_pods {
                let job = crate::bench::events::job_of_pod(pod);
                let served = |p: &str| -> BTreeMap<u32, seedsweep_crds::Metrics> {
                    events
                        .iter()
                        .filter(|e| e.pod.as_deref() == Some(p) && e.event == "eval")
                        .filter_map(|e| Some((e.index?, e.metrics?)))
                        .collect()
                };
                let killed = served(pod);
                let retry = events.iter().find(|e| {
                    e.event == "start"
                        && e.pod
                            .as_deref()
                            .is_some_and(|p| p != pod && crate::bench::events::job_of_pod(p) == job)
                });
                let Some(retry) = retry else {
                    violations.push(format!(
                        "{pod} was killed but its Job {job} ran no other pod"
                    ));
                    continue;
                };
                let retry_pod = retry.pod.clone().unwrap_or_default();
                let first = events
                    .iter()
                    .find(|e| e.pod.as_deref() == Some(pod) && e.event == "start");
                let seeds = |e: Option<&StandinEvent>| e.map(|e| (e.wi_seed, e.do_seed));
                if seeds(first) != seeds(Some(retry)) {
                    violations.push(format!(
                        "{retry_pod} ran seeds {:?}, the killed {pod} {:?}",
                        seeds(Some(retry)),
                        seeds(first)
                    ));
                }
                let again = served(&retry_pod);
                let same = killed.iter().all(|(i, m)| again.get(i) == Some(m));
                if !same || !killed.contains_key(last_index) {
                    violations.push(format!("{retry_pod} did not serve the evaluations {pod} served before it was killed"));
                } else if status
                    .trials
                    .iter()
                    .any(|r| &r.name == trial && r.phase == TrialPhase::Succeeded)
                {
                    reproduced += 1;
                }
            }
            extra.insert("reproducedCurves".into(), json!(reproduced));
            extra.insert(
                "killedPods".into(),
                json!(
                    figures
                        .killed_pods
                        .iter()
                        .map(|(t, p, i)| json!({"trial": t, "pod": p, "lastEval": i}))
                        .collect::<Vec<_>>()
                ),
            );
        }
        Fault::ApiserverRestarts { .. } => {
            if figures.operator_pid_unchanged != Some(true) {
                violations.push("the operator did not survive the apiserver restart".into());
            }
            extra.insert(
                "apiserverUnavailableSeconds".into(),
                json!(figures.apiserver_unavailable_seconds),
            );
        }
        _ => {}
    }
    let outcomes = outcomes(&status);
    let report = json!({
        "scenario": s.fault.label(),
        "machine": {"cpus": std::thread::available_parallelism().map_or(0, |n| n.get()), "cpuModel": cpu_model()},
        "trials": s.trials,
        "parallelism": s.parallelism,
        "trialSeconds": s.trial_seconds,
        "scrapeInterval": s.scrape_interval,
        "wallSeconds": figures.wall_seconds,
        "phase": format!("{:?}", status.phase),
        "kept": offline.kept.len(),
        "keptIsOfflineCut": status.trials.iter().filter(|t| t.phase == TrialPhase::Succeeded).map(|t| t.name.clone()).collect::<BTreeSet<_>>() == offline.kept,
        "rungObservations": rung_observations,
        "jobNames": job_uids.len(),
        "jobUids": uids,
        "jobsCreatedByApiserver": figures.jobs_created,
        "duplicateJobs": duplicates,
        "attempts": status.trials.iter().map(|t| t.attempts).sum::<u32>(),
        "faults": figures.faults,
        "faultsInjected": injected,
        "details": extra,
        "standinEvents": events.len(),
        "startedAt": unix_now() - figures.wall_seconds,
        "violations": violations,
    });
    Ok(Run {
        outcomes,
        violations,
        report,
    })
}
