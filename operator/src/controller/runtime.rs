//! A sweep as the operator runs it, and one reconciliation of it in named steps:
//! observe (Jobs, pods, scrapes) → decide (one engine step) → persist (the status, before acting) → act (delete and
//! create Jobs, publish events).

use super::Context;
use super::checkpoints;
use super::concurrent;
use super::engine_store::{self, Written};
use super::error::Result;
use super::events::{SweepEvent, publish};
use super::job::{LABEL_RECORDED, LABEL_TRIAL, MANAGER, build_job, job_identity, job_name};
use super::observe::{Cluster, JobStanding, is_finished, job_standing, why_cannot_start};
use super::status::{self, Findings};
use crate::engine::policy::{Decisions, RunState};
use crate::engine::snapshot::Snapshot;
use crate::engine::state::{Step, SweepState, TrialState, plan_changes};
use crate::{manifest, report, scrape};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use seedsweep_crds::sweep::{
    SeedSweep, SeedSweepSpec, SeedSweepStatus, SweepPhase, TrialPhase, UnpublishedEvent,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// A trial's metrics endpoint counts as unavailable after this many failed scrapes in a row.
const FAILED_SCRAPES_UNAVAILABLE: u32 = 2;

/// A trainer that has not answered yet gets this many scrape intervals from its first scrape before a failure
/// counts: a pod that has just started may be scraped before the trainer listens.
const GRACE_INTERVALS: u32 = 10;

/// The plan's spec and the engine state, plus what only matters while this process lives.
pub struct SweepRuntime {
    /// The spec the plan was made from. Only parallelism, backoffLimit and the trial template follow the live spec.
    spec: SeedSweepSpec,
    state: SweepState,
    start_time: Time,
    completion_time: Option<Time>,
    last_write: Option<Instant>,
    last_status: Option<SeedSweepStatus>,
    /// How each running trial's metrics endpoint has answered.
    endpoints: BTreeMap<usize, Endpoint>,
    /// The state holds decisions or outcomes the status does not show yet: write before acting again.
    unwritten: bool,
    /// Events for what this reconciliation found or decided, recorded in the status at its next write.
    pending_events: Vec<SweepEvent>,
    /// Events recorded in the status (`unpublishedEvents`), published once the Jobs have been changed accordingly.
    unpublished: Vec<UnpublishedEvent>,
    /// Trials whose checkpoints a removal Job has removed (the whole sweep's: `checkpoints_gone`). In memory only:
    /// after a restart a removal runs again, which removes nothing twice.
    checkpoints_removed: HashSet<String>,
    checkpoints_gone: bool,
    /// What each chunk of the engine's memory held when last written (see `engine_store`).
    written: Written,
    /// Paused trials already known to be discarded: announced by this process, or so in the recorded state it
    /// resumed from (whose events are in the status, published by whoever reads it). Not read from
    /// `status.trials`, which keeps at most 1,000 records: past that, every reconcile announced every settled
    /// trial again (36,000 events for 2,250 trials at 10,000 trials).
    settled: HashSet<usize>,
}

/// The paused trials that `outlook` discards.
fn settled_discards(state: &SweepState, outlook: &Decisions) -> HashSet<usize> {
    (state.trials.iter().zip(&outlook.verdicts))
        .enumerate()
        .filter(|(_, (t, v))| t.run == RunState::Paused && v.phase == TrialPhase::Discarded)
        .map(|(i, _)| i)
        .collect()
}

/// How one running trial's metrics endpoint has answered this attempt.
struct Endpoint {
    attempt: u32,
    first_scrape: Instant,
    answered: bool,
    /// The trainer said it is done: it exits next, and a refused scrape then is no failure.
    done: bool,
    /// Failed scrapes in a row that count, with the last error.
    failures: u32,
    last_error: String,
}

/// What the live spec allows this reconciliation: the plan's spec with the live parallelism, backoffLimit and pod
/// template, and what changes it refuses.
struct LiveSpec {
    job_spec: SeedSweepSpec,
    refused_changes: Vec<String>,
}

impl SweepRuntime {
    /// A new sweep, planned from `spec` (the live spec with `weightInit.fromSweeps` resolved).
    pub fn start(sweep: &SeedSweep, spec: SeedSweepSpec) -> Self {
        let state = SweepState::new(&sweep.name_any(), &spec);
        Self::new(spec, state, None)
    }

    /// Picks a sweep up from its status (after a restart, or on the replica that took over the lease).
    pub fn resume(
        snapshot: &Snapshot,
        status: &SeedSweepStatus,
        written: Written,
    ) -> Result<Self, String> {
        let state = snapshot.restore().map_err(|e| e.to_string())?;
        let rules = state.rules(&snapshot.spec, snapshot.spec.parallelism as usize);
        let settled = settled_discards(&state, &state.decide(&rules));
        let mut runtime = Self::new(snapshot.spec.clone(), state, Some(status));
        runtime.written = written;
        runtime.settled = settled;
        Ok(runtime)
    }

    fn new(spec: SeedSweepSpec, state: SweepState, status: Option<&SeedSweepStatus>) -> Self {
        SweepRuntime {
            spec,
            state,
            start_time: status
                .and_then(|s| s.start_time.clone())
                .unwrap_or_else(|| Time(Timestamp::now())),
            completion_time: status.and_then(|s| s.completion_time.clone()),
            last_write: None,
            last_status: status.cloned(),
            endpoints: BTreeMap::new(),
            unwritten: false,
            pending_events: Vec::new(),
            // What a predecessor recorded and may not have published.
            unpublished: status
                .map(|s| s.unpublished_events.clone())
                .unwrap_or_default(),
            checkpoints_removed: HashSet::new(),
            checkpoints_gone: false,
            written: Written::default(),
            settled: HashSet::new(),
        }
    }

    pub async fn reconcile(
        &mut self,
        sweep: &SeedSweep,
        ctx: &Context,
        ns: &str,
    ) -> Result<Action> {
        let live = self.live_spec(sweep);
        let rules = self
            .state
            .rules(&self.spec, live.job_spec.parallelism as usize);
        // Each step's time, so a slow reconciliation says where it went (a timer dropped by `?` still counts).
        let timer = |step: &str| {
            (ctx.metrics.reconcile_step_duration)
                .with_label_values(&[step])
                .start_timer()
        };
        let read = timer("read");
        let running: HashSet<(&str, u32)> = (self.state.trials.iter())
            .zip(&self.state.plan.trials)
            .filter(|(t, _)| t.run == RunState::Running)
            .map(|(t, p)| (p.name.as_str(), t.attempts))
            .collect();
        let cluster = Cluster::read(ctx, sweep, ns, |trial, attempt| {
            running.contains(&(trial, attempt))
        })
        .await?;
        drop(running);
        let (ended, targets) = self.fold_jobs(&cluster, sweep.spec.trial_start_timeout_seconds);
        read.observe_duration();
        let scrape = timer("scrape");
        self.scrape(ctx, ns, &sweep.name_any(), targets).await;
        scrape.observe_duration();
        let step = self.state.step(&rules);
        let findings = Findings {
            refused_changes: live.refused_changes,
            metrics_unavailable: self.metrics_unavailable(),
            stuck: self.stuck(),
            fail_fast: step.outlook.aborted.clone(),
            ..Findings::default()
        };
        self.record_news(&step, &ended);
        let persist = timer("persist");
        self.persist(sweep, ctx, ns, &step.outlook, &findings)
            .await?;
        persist.observe_duration();
        let act = timer("act");
        self.act(sweep, ctx, ns, &live.job_spec, &cluster).await?;
        act.observe_duration();
        self.remove_checkpoints(sweep, ctx, ns, &live.job_spec, &cluster, &step.outlook)
            .await?;
        Ok(if step.outlook.complete {
            Action::await_change()
        } else {
            Action::requeue(ctx.config.scrape_interval)
        })
    }

    /// Validate: parallelism and the pod template follow the live spec; changes to the plan are refused.
    fn live_spec(&self, sweep: &SeedSweep) -> LiveSpec {
        let live_errors = manifest::validate(sweep);
        let mut job_spec = self.spec.clone();
        if !live_errors.is_empty() {
            let refused_changes = live_errors
                .iter()
                .map(|e| format!("the changed spec is invalid: {e}"))
                .collect();
            return LiveSpec {
                job_spec,
                refused_changes,
            };
        }
        job_spec.parallelism = sweep.spec.parallelism;
        job_spec.backoff_limit = sweep.spec.backoff_limit;
        job_spec.trial_template = sweep.spec.trial_template.clone();
        LiveSpec {
            job_spec,
            refused_changes: plan_changes(&self.spec, &sweep.spec),
        }
    }

    /// Observe: folds running trials' ended attempts into the state, and records which cannot start (failing those
    /// stuck past `start_timeout` seconds). Returns the trials that ended, and the metrics URLs of those running.
    fn fold_jobs(
        &mut self,
        cluster: &Cluster,
        start_timeout: Option<u32>,
    ) -> (Vec<usize>, Vec<(usize, String)>) {
        let (mut ended, mut targets) = (Vec::new(), Vec::new());
        let now = Timestamp::now();
        for i in 0..self.state.trials.len() {
            let t = &self.state.trials[i];
            if t.run != RunState::Running {
                continue;
            }
            let trial = self.state.plan.trials[i].name.clone();
            let Some(job) = cluster.jobs.get(&job_name(&trial, t.attempts)) else {
                continue;
            };
            let pods = cluster.pods_of(&trial, t.attempts);
            match job_standing(job, &pods, self.spec.trial_template.metrics_port) {
                JobStanding::Ended { summary, exit } => {
                    self.state.finish(i, summary.as_deref(), &exit);
                    ended.push(i);
                    continue;
                }
                JobStanding::Running {
                    metrics_url: Some(url),
                } => targets.push((i, url)),
                JobStanding::Running { metrics_url: None } => {}
            }
            let cannot_start = why_cannot_start(&pods);
            let waited = pods
                .last()
                .and_then(|p| p.metadata.creation_timestamp.as_ref())
                .and_then(|created| now.duration_since(created.0).try_into().ok())
                .unwrap_or(std::time::Duration::ZERO);
            // The start timeout is the user's: it counts from the pod's creation, whatever the reason.
            if let (Some(c), Some(limit)) = (&cannot_start, start_timeout)
                && waited.as_secs() >= u64::from(limit)
            {
                let exit = format!("could not start within {limit} s: {}", c.why);
                self.state.finish(i, None, &exit);
                ended.push(i);
                continue;
            }
            let stuck = cannot_start.filter(|c| c.is_stuck(now)).map(|c| c.why);
            if self.state.mark_stuck(i, stuck.clone()) {
                self.unwritten = true;
                if let Some(message) = stuck {
                    self.pending_events.push(SweepEvent::TrialStuck {
                        trial,
                        job: self.job_of(i),
                        message,
                    });
                }
            }
        }
        (ended, targets)
    }

    /// Observe: scrapes the running trainers, a bounded number at a time, and records what they serve.
    async fn scrape(&mut self, ctx: &Context, ns: &str, name: &str, targets: Vec<(usize, String)>) {
        let timeout = ctx.config.scrape_timeout;
        let results: Vec<_> = futures::stream::iter(targets)
            .map(|(i, url)| {
                let http = &ctx.http;
                async move { (i, scrape::scrape(http, &url, timeout).await) }
            })
            .buffer_unordered(ctx.config.scrape_concurrency.max(1))
            .collect()
            .await;
        let grace = ctx.config.scrape_interval * GRACE_INTERVALS;
        for (i, result) in results {
            let t = &self.state.trials[i];
            let attempt = t.attempts;
            let finishing = t.total_steps.is_some_and(|n| n > 0 && t.steps_done >= n);
            let endpoint = self
                .endpoints
                .entry(i)
                .and_modify(|e| {
                    if e.attempt != attempt {
                        *e = Endpoint::new(attempt);
                    }
                })
                .or_insert_with(|| Endpoint::new(attempt));
            // A refused scrape (another trial's metrics at this address, say) counts as a failed one.
            let result = result.map_err(|e| e.to_string()).and_then(|snap| {
                self.state
                    .check_scrape(i, &snap)
                    .map_err(|e| e.to_string())?;
                Ok(snap)
            });
            match result {
                Ok(snap) => {
                    endpoint.answered = true;
                    endpoint.done = snap.done;
                    endpoint.failures = 0;
                    tracing::debug!(trial = %self.state.plan.trials[i].name, step = snap.step, total = snap.total_steps, resumed = ?snap.resumed_from, "scraped");
                    self.state.observe(i, &snap).expect("checked above");
                }
                // A trainer that is not listening yet, or has finished training and is exiting, is not unavailable.
                Err(_) if endpoint.done || finishing => {}
                Err(_) if !endpoint.answered && endpoint.first_scrape.elapsed() < grace => {}
                Err(e) => {
                    ctx.metrics
                        .scrape_failures
                        .with_label_values(&[ns, name])
                        .inc();
                    endpoint.failures += 1;
                    endpoint.last_error = e;
                }
            }
        }
        let state = &self.state;
        self.endpoints
            .retain(|&i, _| state.trials[i].run == RunState::Running);
    }

    /// Running trials whose pod cannot start, with why.
    fn stuck(&self) -> Vec<(String, String)> {
        (self.state.trials.iter().enumerate())
            .filter(|(_, t)| t.run == RunState::Running)
            .filter_map(|(i, t)| Some((self.state.plan.trials[i].name.clone(), t.stuck.clone()?)))
            .collect()
    }

    /// Running trials whose metrics endpoint has not answered for a while, with the last error.
    fn metrics_unavailable(&self) -> Vec<(String, String)> {
        self.endpoints
            .iter()
            .filter(|(_, e)| e.failures >= FAILED_SCRAPES_UNAVAILABLE)
            .map(|(&i, e)| (self.state.plan.trials[i].name.clone(), e.last_error.clone()))
            .collect()
    }

    /// Decide: queues the events for what the step and the ended attempts mean, and marks the state unwritten when
    /// something happened that the status must show before anything is acted on.
    fn record_news(&mut self, step: &Step, ended: &[usize]) {
        let completed_now = step.outlook.complete && self.completion_time.is_none();
        if completed_now {
            self.completion_time = Some(Time(Timestamp::now()));
        }
        let names = &self.state.plan.trials;
        let mut events = Vec::new();
        // Trials paused at a rung whose decision has now gone against them: nothing to stop, but news.
        let settled = settled_discards(&self.state, &step.outlook);
        let mut news: Vec<usize> = settled.difference(&self.settled).copied().collect();
        news.sort_unstable();
        for i in news {
            if let Some(reason) = &step.outlook.verdicts[i].reason {
                events.push(SweepEvent::stopped(&names[i].name, self.job_of(i), reason));
            }
        }
        self.settled = settled;
        let settled_any = !events.is_empty();
        if !(step.actions.acts() || !ended.is_empty() || completed_now || settled_any) {
            return;
        }
        self.unwritten = true;
        for (i, reason) in &step.actions.to_stop {
            events.push(SweepEvent::stopped(
                &names[*i].name,
                self.job_of(*i),
                reason,
            ));
        }
        for &i in &step.actions.to_pause {
            events.push(SweepEvent::TrialPaused {
                trial: names[i].name.clone(),
                job: self.job_of(i),
            });
        }
        for &i in ended {
            events.extend(SweepEvent::ended(&self.state, i, self.job_of(i)));
        }
        // Announced with the decision, not when the Job is created: the creation may be the retry of a reconcile
        // that failed after the decision was written, or of a predecessor that died.
        for &i in &step.actions.to_start {
            let planned = &names[i];
            events.push(SweepEvent::TrialStarted {
                trial: planned.name.clone(),
                weight_init: planned.weight_init,
                data_order: planned.data_order,
                job: self.job_of(i),
                attempt: self.state.trials[i].attempts,
            });
        }
        self.pending_events.extend(events);
        if completed_now {
            // Worded from the status about to be written (its phase and best trial): see `persist`.
            self.pending_events.push(SweepEvent::SweepComplete {
                trials: self.state.trials.len(),
                metric: self.state.objective.metric,
                best: None,
            });
        }
    }

    /// Persist: writes the status when a decision or a condition must be shown, or when progress is due. A
    /// decision whose status write failed is written before anything else happens.
    async fn persist(
        &mut self,
        sweep: &SeedSweep,
        ctx: &Context,
        ns: &str,
        outlook: &Decisions,
        findings: &Findings,
    ) -> Result<()> {
        let conditions_changed = self.last_status.as_ref().is_none_or(|s| {
            condition_on(s, status::METRICS_UNAVAILABLE) == findings.metrics_unavailable.is_empty()
                || condition_on(s, status::SPEC_CHANGE_REFUSED)
                    == findings.refused_changes.is_empty()
        });
        let due = self.unwritten
            || !self.pending_events.is_empty()
            || conditions_changed
            || self
                .last_write
                .is_none_or(|t| t.elapsed() >= ctx.config.status_interval);
        if !due {
            return Ok(());
        }
        let mut status = report::bounded_status(&self.state, outlook, report::MAX_TRIAL_RECORDS);
        status.checkpoints = Some(report::checkpoints(
            checkpoints::sweep_dir(&self.spec, Some(ns), &sweep.name_any())
                .map(|dir| {
                    let volume = (self.spec.checkpoints.as_ref())
                        .and_then(|c| c.volume.as_deref())
                        .unwrap_or_default();
                    format!("volume {volume} at {dir}")
                })
                .as_deref(),
        ));
        status.observed_generation = sweep.metadata.generation;
        status.start_time = Some(self.start_time.clone());
        status.completion_time = self.completion_time.clone();
        let (head, chunks) = engine_store::changed_chunks(&self.spec, &self.state, &self.written)?;
        status.engine = Some(serde_json::to_value(head)?);
        for event in std::mem::take(&mut self.pending_events) {
            let event = match event {
                SweepEvent::SweepComplete { trials, .. } if status.phase == SweepPhase::Failed => {
                    SweepEvent::SweepFailed { trials }
                }
                SweepEvent::SweepComplete { trials, metric, .. } => SweepEvent::SweepComplete {
                    trials,
                    metric,
                    best: status.best_trial.clone(),
                },
                event => event,
            };
            self.unpublished.push(event.render());
        }
        status.unpublished_events = self.unpublished.clone();
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
        // After the head: see `engine_store`.
        engine_store::write_chunks(&ctx.client, sweep, ns, chunks, &mut self.written).await?;
        self.last_write = Some(Instant::now());
        self.unwritten = false;
        ctx.metrics.record_sweep(ns, &sweep.name_any(), &status);
        self.last_status = Some(status);
        Ok(())
    }

    /// Act: Jobs that must go, then Jobs that must exist, then the labels on Jobs no longer read, then the events
    /// for what was done. Creates come before labels: a freed slot waits for nothing that can wait.
    async fn act(
        &mut self,
        sweep: &SeedSweep,
        ctx: &Context,
        ns: &str,
        job_spec: &SeedSweepSpec,
        cluster: &Cluster,
    ) -> Result<()> {
        let deleted = self.delete_jobs(sweep, ctx, ns, cluster).await?;
        self.create_jobs(sweep, ctx, ns, job_spec, &cluster.jobs)
            .await?;
        // The status keeps listing the events until its next write; an operator that dies before then publishes
        // them again rather than never. They go out beside the labels, a bounded number at a time (started in
        // order): one after another, 2-15 ms each, they held a reconcile in which many trials ended, and with it
        // the next refill.
        let events = std::mem::take(&mut self.unpublished);
        let publishing: Vec<_> = (events.iter())
            .map(|event| publish(ctx, sweep, event))
            .collect();
        let (labelled, _) = futures::join!(
            self.mark_recorded(ctx, ns, cluster, &deleted),
            futures::stream::iter(publishing)
                .buffered(concurrent::API_CALLS_IN_FLIGHT)
                .collect::<Vec<()>>()
        );
        labelled
    }

    /// Deletes the Jobs no trial needs: discarded, diverged or paused trials' Jobs, and any running Job of an
    /// attempt the state does not expect. Finished Jobs of finished trials stay, with their pods' logs. Returns the
    /// names of the Jobs it deleted.
    async fn delete_jobs(
        &self,
        sweep: &SeedSweep,
        ctx: &Context,
        ns: &str,
        cluster: &Cluster,
    ) -> Result<HashSet<String>> {
        let mut doomed: Vec<(String, &'static str)> = Vec::new();
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        for (name, job, t, attempt) in self.trial_jobs(&cluster.jobs) {
            let current = attempt == t.attempts;
            let reason = match &t.run {
                RunState::Running | RunState::Completed if current => continue,
                RunState::Stopped => t.stop_reason.as_ref().map_or("stopped", |r| r.short()),
                RunState::Paused => "paused",
                _ if !cluster.attempt_over(job) => "superseded",
                _ => continue,
            };
            doomed.push((name.clone(), reason));
        }
        let (api, sweep_name) = (&api, sweep.name_any());
        let sweep_name = &sweep_name;
        let deletes: Vec<_> = doomed
            .iter()
            .map(|(name, reason)| async move {
                match api.delete(name, &background()).await {
                    Ok(_) => {
                        tracing::info!(sweep = %sweep_name, job = %name, reason, "deleted the Job");
                        ctx.metrics
                            .jobs_deleted
                            .with_label_values(&[ns, reason])
                            .inc();
                        Ok(())
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            })
            .collect();
        concurrent::each(deletes).await?;
        Ok(doomed.into_iter().map(|(name, _)| name).collect())
    }

    /// Labels [`LABEL_RECORDED`] the Jobs whose attempt is over (finished, or its pod succeeded) and whose end the
    /// written status records (any attempt but a running trial's current one), so later reconciliations no longer
    /// list them or their pods. Runs after `persist`: a Job is labelled only once the state that no longer needs it
    /// is in the status; if the label is lost (the operator dies first), the Job is listed and labelled again.
    async fn mark_recorded(
        &self,
        ctx: &Context,
        ns: &str,
        cluster: &Cluster,
        deleted: &HashSet<String>,
    ) -> Result<()> {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        let label = serde_json::json!({"metadata": {"labels": {LABEL_RECORDED: "true"}}});
        let ended: Vec<&String> = (self.trial_jobs(&cluster.jobs).into_iter())
            .filter(|(name, job, t, attempt)| {
                !deleted.contains(*name)
                    && cluster.attempt_over(job)
                    && !(t.run == RunState::Running && t.attempts == *attempt)
            })
            .map(|(name, ..)| name)
            .collect();
        let (api, label) = (&api, &label);
        let patches: Vec<_> = ended
            .into_iter()
            .map(|name| async move {
                match api
                    .patch(name, &PatchParams::default(), &Patch::Merge(label))
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            })
            .collect();
        concurrent::each(patches).await?;
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
        let mut missing = Vec::new();
        for (i, t) in self.state.trials.iter().enumerate() {
            if t.run != RunState::Running {
                continue;
            }
            let planned = &self.state.plan.trials[i];
            if !jobs.contains_key(&job_name(&planned.name, t.attempts)) {
                missing.push(build_job(
                    sweep,
                    job_spec,
                    planned,
                    t.attempts,
                    &ctx.config.image,
                ));
            }
        }
        let (api, sweep_name) = (&api, sweep.name_any());
        let sweep_name = &sweep_name;
        let creates: Vec<_> = missing.iter().map(|job| async move {
            match api.create(&PostParams::default(), job).await {
                Ok(_) => {
                    ctx.metrics.jobs_created.with_label_values(&[ns]).inc();
                    tracing::debug!(sweep = %sweep_name, job = %job.name_any(), "created the Job");
                    Ok(())
                }
                // Created before a restart, or by a replica that lost its lease: it is this attempt's Job.
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
        .collect();
        concurrent::each(creates).await?;
        Ok(())
    }

    /// Removes the checkpoints no trial can continue from, one removal Job at a time: those of trials that ended for
    /// good (finished, discarded, diverged, failed) while the sweep runs, the sweep's whole directory once it is
    /// complete. A removal that failed is tried again with the next batch.
    async fn remove_checkpoints(
        &mut self,
        sweep: &SeedSweep,
        ctx: &Context,
        ns: &str,
        job_spec: &SeedSweepSpec,
        cluster: &Cluster,
        outlook: &Decisions,
    ) -> Result<()> {
        let Some(dir) = checkpoints::sweep_dir(job_spec, Some(ns), &sweep.name_any()) else {
            return Ok(());
        };
        if self.checkpoints_gone {
            return Ok(());
        }
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        let mut busy = false;
        for (name, job) in &cluster.jobs {
            let Some(trials) = checkpoints::cleanup_trials(job) else {
                continue;
            };
            if job.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if !is_finished(job) {
                busy = true;
                continue;
            }
            if checkpoints::succeeded(job) {
                if trials == [checkpoints::WHOLE_SWEEP] {
                    self.checkpoints_gone = true;
                }
                self.checkpoints_removed.extend(trials);
            } else {
                tracing::warn!(sweep = %sweep.name_any(), job = %name, "a checkpoint removal failed; it is tried again");
            }
            match api.delete(name, &background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        if busy || self.checkpoints_gone {
            return Ok(());
        }
        // A trial stopped by a decision may still be writing a checkpoint: its files go once its pods have ended.
        let live: HashSet<&str> = (cluster.pods.iter())
            .filter(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            })
            .filter_map(|p| p.labels().get(LABEL_TRIAL).map(String::as_str))
            .collect();
        let trials: Vec<String> = if outlook.complete {
            if !live.is_empty() {
                return Ok(());
            }
            vec![checkpoints::WHOLE_SWEEP.to_string()]
        } else {
            (self.state.trials.iter().zip(&self.state.plan.trials))
                .zip(&outlook.verdicts)
                .filter(|((t, p), v)| {
                    v.phase.is_terminal()
                        && t.attempts > 0
                        && !live.contains(p.name.as_str())
                        && !self.checkpoints_removed.contains(&p.name)
                })
                .map(|((_, p), _)| p.name.clone())
                .take(checkpoints::MAX_TRIALS_PER_JOB)
                .collect()
        };
        if trials.is_empty() {
            return Ok(());
        }
        let job = checkpoints::cleanup_job(sweep, job_spec, &ctx.config.image, &dir, &trials);
        match api.create(&PostParams::default(), &job).await {
            Ok(_) => {
                tracing::info!(sweep = %sweep.name_any(), trials = trials.len(), "removing checkpoints")
            }
            // Made before a restart: it is this removal.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// The listed trial Jobs not being deleted, each with its trial's state and the attempt it runs (Jobs of
    /// trials the plan does not have are left out).
    fn trial_jobs<'a>(
        &'a self,
        jobs: &'a BTreeMap<String, Job>,
    ) -> Vec<(&'a String, &'a Job, &'a TrialState, u32)> {
        let index: HashMap<&str, usize> = (self.state.plan.trials.iter().enumerate())
            .map(|(i, t)| (t.name.as_str(), i))
            .collect();
        (jobs.iter())
            .filter(|(_, job)| job.metadata.deletion_timestamp.is_none())
            .filter_map(|(name, job)| {
                let (trial, attempt) = job_identity(job)?;
                let t = &self.state.trials[*index.get(trial.as_str())?];
                Some((name, job, t, attempt))
            })
            .collect()
    }

    /// The Job of a trial's latest attempt.
    fn job_of(&self, trial: usize) -> String {
        job_name(
            &self.state.plan.trials[trial].name,
            self.state.trials[trial].attempts,
        )
    }
}

impl Endpoint {
    fn new(attempt: u32) -> Self {
        Endpoint {
            attempt,
            first_scrape: Instant::now(),
            answered: false,
            done: false,
            failures: 0,
            last_error: String::new(),
        }
    }
}

fn condition_on(status: &SeedSweepStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

pub(super) fn background() -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    }
}

/// Server-side apply of the whole status, as the operator's field manager.
pub async fn apply_status(
    sweep: &SeedSweep,
    ctx: &Context,
    status: &SeedSweepStatus,
) -> Result<()> {
    let api: Api<SeedSweep> = Api::namespaced(
        ctx.client.clone(),
        sweep.metadata.namespace.as_deref().unwrap_or_default(),
    );
    /// The apply body, serialized straight from the status: built with `json!` it was first copied into a JSON
    /// value, several MB for a 625-trial status (heaptrack).
    #[derive(Debug, serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct StatusApply<'a> {
        api_version: &'a str,
        kind: &'a str,
        status: &'a SeedSweepStatus,
    }
    let patch = StatusApply {
        api_version: &SeedSweep::api_version(&()),
        kind: &SeedSweep::kind(&()),
        status,
    };
    api.patch_status(
        &sweep.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// An invalid spec: the Invalid condition with every problem, and nothing created.
pub async fn write_invalid(sweep: &SeedSweep, ctx: &Context, errors: &[String]) -> Result<()> {
    let findings = Findings {
        invalid: errors.to_vec(),
        ..Findings::default()
    };
    let event = SweepEvent::InvalidSpec {
        errors: errors.to_vec(),
    };
    write_unstarted(sweep, ctx, SweepPhase::Invalid, &findings, &event).await
}

/// Earlier sweeps that `weightInit.fromSweeps` names are missing or running: Pending, saying which, and nothing
/// created.
pub async fn write_waiting(sweep: &SeedSweep, ctx: &Context, reasons: &[String]) -> Result<()> {
    let findings = Findings {
        waiting_for_seeds: reasons.to_vec(),
        ..Findings::default()
    };
    let event = SweepEvent::WaitingForSeedSources {
        reasons: reasons.to_vec(),
    };
    write_unstarted(sweep, ctx, SweepPhase::Pending, &findings, &event).await
}

/// The status of a sweep that has not started, and its event when the conditions changed.
async fn write_unstarted(
    sweep: &SeedSweep,
    ctx: &Context,
    phase: SweepPhase,
    findings: &Findings,
    event: &SweepEvent,
) -> Result<()> {
    let previous = sweep.status.clone().unwrap_or_default();
    let mut status = SeedSweepStatus {
        phase,
        observed_generation: sweep.metadata.generation,
        ..SeedSweepStatus::default()
    };
    status.conditions = status::conditions(
        &status,
        findings,
        sweep.metadata.generation,
        &previous.conditions,
        &Time(Timestamp::now()),
    );
    let ns = sweep.metadata.namespace.as_deref().unwrap_or_default();
    ctx.metrics.record_sweep(ns, &sweep.name_any(), &status);
    if previous.phase == phase && previous.conditions == status.conditions {
        return Ok(());
    }
    apply_status(sweep, ctx, &status).await?;
    // A waiting sweep's message follows its sources' progress; its event is news only when it starts waiting.
    let reasons = |c: &[Condition]| c.iter().map(|c| c.reason.clone()).collect::<Vec<_>>();
    if phase == SweepPhase::Invalid
        || previous.phase != phase
        || reasons(&previous.conditions) != reasons(&status.conditions)
    {
        publish(ctx, sweep, &event.render()).await;
    }
    Ok(())
}
