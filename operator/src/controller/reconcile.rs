//! One reconciliation of one sweep, and the error policy.

use super::error::Result;
use super::job::{
    self, LABEL_ATTEMPT, LABEL_TRIAL, MANAGER, build_job, job_identity, job_name, sweep_selector,
};
use super::status::{self, Findings};
use super::{Context, Error, persist};
use crate::engine::policy::{Decisions, RunState};
use crate::engine::state::{SweepState, plan_changes};
use crate::{manifest, report, scrape};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec, SeedSweepStatus, SweepPhase, TrialPhase};
use seedsweep_crds::trainer::TrialSummary;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A trial's metrics endpoint counts as unavailable after this many failed scrapes in a row (the first scrape of
/// a pod that has just started may come before the trainer listens).
const FAILED_SCRAPES_UNAVAILABLE: u32 = 2;

pub async fn reconcile(sweep: Arc<SeedSweep>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_sweep(&sweep, &ctx).await;
    let m = &ctx.metrics;
    m.reconcile_duration
        .with_label_values::<&str>(&[])
        .observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => m.reconciles.with_label_values(&["ok"]).inc(),
        Err(e) => {
            m.reconciles.with_label_values(&["error"]).inc();
            m.reconcile_errors.with_label_values(&[e.kind()]).inc();
        }
    }
    result
}

pub fn error_policy(sweep: Arc<SeedSweep>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(sweep = %sweep.name_any(), namespace = ?sweep.namespace(), "reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_sweep(sweep: &SeedSweep, ctx: &Context) -> Result<Action> {
    let name = sweep.name_any();
    let ns = sweep
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(name.clone()))?;
    let uid = sweep.uid().unwrap_or_default();
    if sweep.metadata.deletion_timestamp.is_some() {
        // The garbage collector deletes the Jobs the sweep owns, and their pods with them.
        ctx.forget(&uid);
        ctx.metrics.forget_sweep(&ns, &name);
        return Ok(Action::await_change());
    }
    let cell = ctx.runtime(&uid);
    let mut guard = cell.lock().await;
    if guard.is_none() {
        match sweep.status.as_ref().and_then(|s| s.engine.as_ref()) {
            Some(recorded) => {
                let (spec, state) =
                    persist::load(&name, recorded).map_err(|message| Error::CorruptState {
                        sweep: name.clone(),
                        message,
                    })?;
                tracing::info!(sweep = %name, namespace = %ns, "resuming from the recorded status");
                *guard = Some(SweepRuntime::resume(spec, state, sweep.status.as_ref()));
            }
            None => {
                let errors = manifest::validate(sweep);
                if !errors.is_empty() {
                    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    write_invalid(sweep, ctx, &errors).await?;
                    return Ok(Action::await_change());
                }
                tracing::info!(sweep = %name, namespace = %ns, "starting");
                *guard = Some(SweepRuntime::start(sweep));
            }
        }
    }
    guard
        .as_mut()
        .expect("set above")
        .reconcile(sweep, ctx, &ns)
        .await
}

/// A sweep as the operator runs it: the plan's spec and the engine state, plus what only matters while this
/// process lives.
pub struct SweepRuntime {
    /// The spec the plan was made from. Only parallelism, backoffLimit and the trial template follow the live spec.
    spec: SeedSweepSpec,
    state: SweepState,
    start_time: Time,
    completion_time: Option<Time>,
    last_write: Option<Instant>,
    last_status: Option<SeedSweepStatus>,
    /// Failed scrapes in a row per running trial, with the last error.
    scrape_failures: BTreeMap<usize, (u32, String)>,
    /// The state holds decisions or outcomes the status does not show yet: write before acting again.
    unwritten: bool,
    /// Events for what happened, published once the Jobs have been changed accordingly.
    pending_events: Vec<Pending>,
}

enum Pending {
    /// Type, reason, note, and the trial's Job (events are aggregated by reason and related object, so each
    /// trial's news needs its own).
    Event(EventType, &'static str, String, Option<String>),
    /// Worded from the status written last (its best trial).
    SweepComplete,
}

/// How a trial attempt's Job stands.
#[derive(Debug, PartialEq)]
pub enum JobOutcome {
    /// Still running (or waiting for a node); scrape it at the URL once it has one.
    Running { metrics_url: Option<String> },
    /// Ended: the trainer's summary from the termination message when it wrote one, and how the pod ended.
    Ended {
        summary: Option<Box<TrialSummary>>,
        exit: String,
    },
}

impl SweepRuntime {
    fn start(sweep: &SeedSweep) -> Self {
        SweepRuntime {
            spec: sweep.spec.clone(),
            state: SweepState::new(&sweep.name_any(), &sweep.spec),
            start_time: Time(Timestamp::now()),
            completion_time: None,
            last_write: None,
            last_status: None,
            scrape_failures: BTreeMap::new(),
            unwritten: false,
            pending_events: Vec::new(),
        }
    }

    fn resume(spec: SeedSweepSpec, state: SweepState, status: Option<&SeedSweepStatus>) -> Self {
        SweepRuntime {
            spec,
            state,
            start_time: status
                .and_then(|s| s.start_time.clone())
                .unwrap_or_else(|| Time(Timestamp::now())),
            completion_time: status.and_then(|s| s.completion_time.clone()),
            last_write: None,
            last_status: status.cloned(),
            scrape_failures: BTreeMap::new(),
            unwritten: false,
            pending_events: Vec::new(),
        }
    }

    async fn reconcile(&mut self, sweep: &SeedSweep, ctx: &Context, ns: &str) -> Result<Action> {
        let name = sweep.name_any();
        let mut findings = Findings::default();

        // The live spec: parallelism and the pod template apply; changes to the plan are refused.
        let live_errors = manifest::validate(sweep);
        let mut job_spec = self.spec.clone();
        if live_errors.is_empty() {
            job_spec.parallelism = sweep.spec.parallelism;
            job_spec.backoff_limit = sweep.spec.backoff_limit;
            job_spec.trial_template = sweep.spec.trial_template.clone();
            findings.refused_changes = plan_changes(&self.spec, &sweep.spec);
        } else {
            findings.refused_changes = live_errors
                .iter()
                .map(|e| format!("the changed spec is invalid: {e}"))
                .collect();
        }
        let rules = self.state.rules(&self.spec, job_spec.parallelism as usize);

        // Read the world.
        let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        let selector = ListParams::default().labels(&sweep_selector(&name));
        let uid = sweep.uid();
        let jobs: BTreeMap<String, Job> = jobs_api
            .list(&selector)
            .await?
            .items
            .into_iter()
            .filter(|j| {
                j.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == uid.as_ref())
            })
            .map(|j| (j.name_any(), j))
            .collect();
        let pods = pods_api.list(&selector).await?.items;
        let index: HashMap<String, usize> = self
            .state
            .plan
            .trials
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();

        // Fold ended attempts into the state; find what to scrape.
        let mut ended = Vec::new();
        let mut targets = Vec::new();
        for i in 0..self.state.trials.len() {
            let t = &self.state.trials[i];
            if t.run != RunState::Running {
                continue;
            }
            let trial = &self.state.plan.trials[i].name;
            let Some(job) = jobs.get(&job_name(trial, t.attempts)) else {
                continue;
            };
            let attempt = t.attempts.to_string();
            let mut mine: Vec<&Pod> = pods
                .iter()
                .filter(|p| {
                    let l = p.labels();
                    l.get(LABEL_TRIAL) == Some(trial) && l.get(LABEL_ATTEMPT) == Some(&attempt)
                })
                .collect();
            mine.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
            match job_outcome(job, &mine, self.spec.trial_template.metrics_port) {
                JobOutcome::Ended { summary, exit } => {
                    self.state.finish(i, summary.as_deref(), &exit);
                    ended.push(i);
                }
                JobOutcome::Running {
                    metrics_url: Some(url),
                } => targets.push((i, url)),
                JobOutcome::Running { metrics_url: None } => {}
            }
        }

        // Scrape the running trainers, a bounded number at a time.
        let timeout = ctx.config.scrape_timeout;
        let results: Vec<_> = futures::stream::iter(targets)
            .map(|(i, url)| {
                let http = &ctx.http;
                async move { (i, scrape::scrape(http, &url, timeout).await) }
            })
            .buffer_unordered(ctx.config.scrape_concurrency.max(1))
            .collect()
            .await;
        for (i, result) in results {
            match result {
                Ok(snap) => {
                    self.state.observe(i, &snap);
                    self.scrape_failures.remove(&i);
                }
                Err(e) => {
                    ctx.metrics
                        .scrape_failures
                        .with_label_values(&[ns, &name])
                        .inc();
                    let entry = self.scrape_failures.entry(i).or_default();
                    entry.0 += 1;
                    entry.1 = e.to_string();
                }
            }
        }
        let state = &self.state;
        self.scrape_failures
            .retain(|&i, _| state.trials[i].run == RunState::Running);
        findings.metrics_unavailable = self
            .scrape_failures
            .iter()
            .filter(|(_, (n, _))| *n >= FAILED_SCRAPES_UNAVAILABLE)
            .map(|(&i, (_, e))| (state.plan.trials[i].name.clone(), e.clone()))
            .collect();

        // Decide, and record the decisions before acting on them.
        let decisions = self.state.decide(&rules);
        self.state.apply(&decisions);
        let acted = !(decisions.to_stop.is_empty()
            && decisions.to_pause.is_empty()
            && decisions.to_start.is_empty());
        let after = if acted {
            self.state.decide(&rules)
        } else {
            decisions.clone()
        };
        let completed_now = after.complete && self.completion_time.is_none();
        if completed_now {
            self.completion_time = Some(Time(Timestamp::now()));
        }
        let conditions_changed = self.last_status.as_ref().is_none_or(|s| {
            condition_on(s, status::METRICS_UNAVAILABLE) == findings.metrics_unavailable.is_empty()
                || condition_on(s, status::SPEC_CHANGE_REFUSED)
                    == findings.refused_changes.is_empty()
        });
        // Trials paused at a rung whose decision has now gone against them: nothing to stop, but news.
        let settled: Vec<usize> = (0..self.state.trials.len())
            .filter(|&i| {
                self.state.trials[i].run == RunState::Paused
                    && after.verdicts[i].phase == TrialPhase::Discarded
                    && self
                        .last_status
                        .as_ref()
                        .and_then(|s| s.trials.get(i))
                        .is_none_or(|t| t.phase != TrialPhase::Discarded)
            })
            .collect();
        for &i in &settled {
            if let Some(reason) = &after.verdicts[i].reason {
                let note = format!("{}: {}", self.state.plan.trials[i].name, reason.message());
                self.pending_events.push(Pending::Event(
                    EventType::Normal,
                    "TrialDiscarded",
                    note,
                    Some(self.job_of(i)),
                ));
            }
        }
        if acted || !ended.is_empty() || completed_now || !settled.is_empty() {
            self.unwritten = true;
            self.queue_events(&decisions, &ended);
            if completed_now {
                self.pending_events.push(Pending::SweepComplete);
            }
        }
        // A decision whose status write failed is written before anything else happens.
        let urgent = self.unwritten || conditions_changed;
        let due = urgent
            || self
                .last_write
                .is_none_or(|t| t.elapsed() >= ctx.config.status_interval);
        if due {
            self.write_status(sweep, ctx, ns, &after, &findings).await?;
        }

        // Act: Jobs that must go, then Jobs that must exist.
        self.delete_jobs(sweep, ctx, ns, &jobs, &index).await?;
        self.create_jobs(sweep, ctx, ns, &job_spec, &jobs).await?;
        for pending in std::mem::take(&mut self.pending_events) {
            let (type_, reason, note, job) = match pending {
                Pending::Event(type_, reason, note, job) => (type_, reason, note, job),
                Pending::SweepComplete => {
                    let best = self
                        .last_status
                        .as_ref()
                        .and_then(|s| s.best_trial.as_ref());
                    let n = self.state.trials.len();
                    let note = match best {
                        Some(b) => format!(
                            "all {n} trials ended; best {} ({} {:.4})",
                            b.name, self.state.objective.metric, b.score
                        ),
                        None => {
                            format!("all {n} trials ended; none trained to completion and was kept")
                        }
                    };
                    (EventType::Normal, "SweepComplete", note, None)
                }
            };
            publish(ctx, sweep, type_, reason, note, job.as_deref()).await;
        }

        if after.complete {
            Ok(Action::await_change())
        } else {
            Ok(Action::requeue(ctx.config.scrape_interval))
        }
    }

    async fn write_status(
        &mut self,
        sweep: &SeedSweep,
        ctx: &Context,
        ns: &str,
        decisions: &Decisions,
        findings: &Findings,
    ) -> Result<()> {
        let mut status = report::status(&self.state, decisions);
        status.observed_generation = sweep.metadata.generation;
        status.start_time = Some(self.start_time.clone());
        status.completion_time = self.completion_time.clone();
        status.engine = Some(persist::save(&self.spec, &self.state));
        let previous = self
            .last_status
            .as_ref()
            .or(sweep.status.as_ref())
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        status.conditions = status::conditions(
            &status,
            findings,
            sweep.metadata.generation,
            &previous,
            &Time(Timestamp::now()),
        );
        if self.last_status.as_ref() != Some(&status) {
            apply_status(sweep, ctx, &status).await?;
        }
        self.last_write = Some(Instant::now());
        self.unwritten = false;
        let name = sweep.name_any();
        let m = &ctx.metrics;
        for phase in status::PHASES {
            let n = status.trials.iter().filter(|t| t.phase == phase).count();
            m.trials
                .with_label_values(&[ns, &name, &format!("{phase:?}")])
                .set(n as i64);
        }
        if let Some(b) = &status.best_trial {
            m.best_score.with_label_values(&[ns, &name]).set(b.score);
        }
        self.last_status = Some(status);
        Ok(())
    }

    /// Deletes the Jobs no trial needs: discarded, diverged or paused trials' Jobs, and any running Job of an
    /// attempt the state does not expect. Finished Jobs of finished trials stay, with their pods' logs.
    async fn delete_jobs(
        &self,
        sweep: &SeedSweep,
        ctx: &Context,
        ns: &str,
        jobs: &BTreeMap<String, Job>,
        index: &HashMap<String, usize>,
    ) -> Result<()> {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        for (name, job) in jobs {
            if job.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some((trial, attempt)) = job_identity(job) else {
                continue;
            };
            let Some(t) = index.get(&trial).map(|&i| &self.state.trials[i]) else {
                continue;
            };
            let current = attempt == t.attempts;
            let reason = match &t.run {
                RunState::Running | RunState::Completed if current => continue,
                RunState::Stopped => t.stop_reason.as_ref().map_or("stopped", |r| r.short()),
                RunState::Paused => "paused",
                _ if !is_finished(job) => "superseded",
                _ => continue,
            };
            match api.delete(name, &background()).await {
                Ok(_) => {
                    tracing::info!(sweep = %sweep.name_any(), job = %name, reason, "deleted the Job");
                    ctx.metrics
                        .jobs_deleted
                        .with_label_values(&[ns, reason])
                        .inc();
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Creates the Job of every running trial's current attempt that does not exist. Job names are determined by
    /// the trial and attempt, so this never makes a second Job for an attempt, whatever happened before.
    async fn create_jobs(
        &self,
        sweep: &SeedSweep,
        ctx: &Context,
        ns: &str,
        job_spec: &SeedSweepSpec,
        jobs: &BTreeMap<String, Job>,
    ) -> Result<()> {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        for (i, t) in self.state.trials.iter().enumerate() {
            if t.run != RunState::Running {
                continue;
            }
            let planned = &self.state.plan.trials[i];
            let name = job_name(&planned.name, t.attempts);
            if jobs.contains_key(&name) {
                continue;
            }
            let job = build_job(sweep, job_spec, planned, t.attempts, &ctx.config.image);
            match api.create(&PostParams::default(), &job).await {
                Ok(_) => {
                    ctx.metrics.jobs_created.with_label_values(&[ns]).inc();
                    let again = if t.attempts > 1 {
                        format!(" (attempt {})", t.attempts)
                    } else {
                        String::new()
                    };
                    publish(
                        ctx,
                        sweep,
                        EventType::Normal,
                        "TrialStarted",
                        format!(
                            "{}: weight-init seed {}, data-order seed {}, Job {name}{again}",
                            planned.name, planned.weight_init, planned.data_order
                        ),
                        Some(&name),
                    )
                    .await;
                }
                // Created before a restart, or by a replica that lost its lease: it is this attempt's Job.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The Job of a trial's latest attempt.
    fn job_of(&self, trial: usize) -> String {
        job_name(
            &self.state.plan.trials[trial].name,
            self.state.trials[trial].attempts,
        )
    }

    fn queue_events(&mut self, decisions: &Decisions, ended: &[usize]) {
        let names = &self.state.plan.trials;
        let mut queue = Vec::new();
        for (i, reason) in &decisions.to_stop {
            let (type_, why) = match reason.short() {
                "diverged" => (EventType::Warning, "TrialDiverged"),
                _ => (EventType::Normal, "TrialDiscarded"),
            };
            let note = format!("{}: {}", names[*i].name, reason.message());
            queue.push(Pending::Event(type_, why, note, Some(self.job_of(*i))));
        }
        for &i in &decisions.to_pause {
            let note = format!(
                "{}: paused at the rung; in the top so far, trials still to come may beat it",
                names[i].name
            );
            queue.push(Pending::Event(
                EventType::Normal,
                "TrialPaused",
                note,
                Some(self.job_of(i)),
            ));
        }
        for &i in ended {
            let t = &self.state.trials[i];
            let name = &names[i].name;
            let metric = self.state.objective.metric;
            let (type_, why, note) = match &t.run {
                RunState::Completed => (
                    EventType::Normal,
                    "TrialCompleted",
                    match t.final_metrics {
                        Some(m) => format!("{name}: {metric} {:.4}", m.get(metric)),
                        None => format!("{name}: completed"),
                    },
                ),
                RunState::Diverged { reason } => (
                    EventType::Warning,
                    "TrialDiverged",
                    format!("{name}: {reason}"),
                ),
                RunState::Failed { reason } => (
                    EventType::Warning,
                    "TrialFailed",
                    format!("{name}: {reason}"),
                ),
                _ => continue,
            };
            queue.push(Pending::Event(type_, why, note, Some(self.job_of(i))));
        }
        self.pending_events.extend(queue);
    }
}

/// How an attempt's Job stands, from the Job and its pods (oldest first). Pure.
pub fn job_outcome(job: &Job, pods: &[&Pod], default_port: u16) -> JobOutcome {
    let condition = |type_: &str| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == "True"))
    };
    if condition("Complete").is_some() {
        let pod = pods
            .iter()
            .rev()
            .find(|p| pod_phase(p) == Some("Succeeded"))
            .or(pods.last());
        return match pod.and_then(|p| terminated(p)) {
            Some((code, message)) => JobOutcome::Ended {
                summary: parse_summary(message),
                exit: format!("exit code {code}"),
            },
            None => JobOutcome::Ended {
                summary: None,
                exit: "the Job completed but its pod and the trainer's summary are gone".into(),
            },
        };
    }
    if let Some(c) = condition("Failed") {
        let why = c
            .message
            .clone()
            .or_else(|| c.reason.clone())
            .unwrap_or_else(|| "the Job failed".into());
        let last = pods.iter().rev().find_map(|p| terminated(p));
        return JobOutcome::Ended {
            summary: last.and_then(|(_, m)| parse_summary(m)),
            exit: match last {
                Some((code, _)) => format!("{why}; last pod: exit code {code}"),
                None => why,
            },
        };
    }
    // A trainer that diverged will diverge again with the same seeds: do not wait for the Job's retries.
    for pod in pods {
        if let Some((code, message)) = terminated(pod)
            && let Some(summary) = parse_summary(message)
            && summary.outcome == seedsweep_crds::trainer::Outcome::Diverged
        {
            return JobOutcome::Ended {
                summary: Some(summary),
                exit: format!("exit code {code}"),
            };
        }
    }
    let metrics_url = pods
        .iter()
        .rev()
        .find(|p| pod_phase(p) == Some("Running"))
        .and_then(|p| {
            let ip = p.status.as_ref()?.pod_ip.as_ref()?;
            let port = p
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == job::CONTAINER))
                .and_then(|c| c.ports.as_ref())
                .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some("metrics")))
                .map(|p| p.container_port)
                .unwrap_or(i32::from(default_port));
            Some(if ip.contains(':') {
                format!("http://[{ip}]:{port}/metrics")
            } else {
                format!("http://{ip}:{port}/metrics")
            })
        });
    JobOutcome::Running { metrics_url }
}

fn pod_phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

/// The trainer container's exit code and termination message, once it has ended.
fn terminated(pod: &Pod) -> Option<(i32, &str)> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let t = statuses
        .iter()
        .find(|c| c.name == job::CONTAINER)?
        .state
        .as_ref()?
        .terminated
        .as_ref()?;
    Some((t.exit_code, t.message.as_deref().unwrap_or("")))
}

fn parse_summary(message: &str) -> Option<Box<TrialSummary>> {
    serde_json::from_str(message.trim()).ok()
}

/// A Job that has ended, one way or the other.
pub fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

fn condition_on(status: &SeedSweepStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn background() -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    }
}

async fn apply_status(sweep: &SeedSweep, ctx: &Context, status: &SeedSweepStatus) -> Result<()> {
    let api: Api<SeedSweep> = Api::namespaced(
        ctx.client.clone(),
        sweep.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let patch = serde_json::json!({
        "apiVersion": "seedsweep.dev/v1alpha1",
        "kind": "SeedSweep",
        "status": status,
    });
    api.patch_status(
        &sweep.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// An invalid spec: the Invalid condition with every problem, and nothing created.
async fn write_invalid(sweep: &SeedSweep, ctx: &Context, errors: &[String]) -> Result<()> {
    let previous = sweep.status.clone().unwrap_or_default();
    let findings = Findings {
        invalid: errors.to_vec(),
        ..Findings::default()
    };
    let mut status = SeedSweepStatus {
        phase: SweepPhase::Invalid,
        observed_generation: sweep.metadata.generation,
        ..SeedSweepStatus::default()
    };
    status.conditions = status::conditions(
        &status,
        &findings,
        sweep.metadata.generation,
        &previous.conditions,
        &Time(Timestamp::now()),
    );
    if previous.phase == SweepPhase::Invalid && previous.conditions == status.conditions {
        return Ok(());
    }
    apply_status(sweep, ctx, &status).await?;
    publish(
        ctx,
        sweep,
        EventType::Warning,
        "InvalidSpec",
        errors.join("; "),
        None,
    )
    .await;
    Ok(())
}

/// Events are for people; failing to publish one never fails a reconciliation.
async fn publish(
    ctx: &Context,
    sweep: &SeedSweep,
    type_: EventType,
    reason: &str,
    note: String,
    job: Option<&str>,
) {
    let mut note = note;
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: job.map(|name| ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(name.into()),
            namespace: sweep.metadata.namespace.clone(),
            ..ObjectReference::default()
        }),
    };
    if let Err(e) = ctx.recorder.publish(&event, &sweep.object_ref(&())).await {
        tracing::warn!(sweep = %sweep.name_any(), "publishing event {reason}: {e}");
    }
}
