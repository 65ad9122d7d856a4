//! The controller's entry points: one reconciliation of one sweep, and the error policy. The sweep's own steps
//! are in [`super::runtime`].

use super::checkpoints;
use super::engine_store;
use super::error::Result;
use super::events::{SweepEvent, publish};
use super::job::{LABEL_TRIAL, job_identity};
use super::observe::{Cluster, is_finished};
use super::runtime::{SweepRuntime, background, write_invalid, write_waiting};
use super::{Context, Error};
use crate::manifest;
use crate::seed_sources::{self, Source, Unresolved};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a sweep whose `weightInit.fromSweeps` waits for earlier sweeps looks at them again (the controller
/// watches SeedSweeps one by one: another sweep finishing does not wake this one).
const SEED_SOURCES_POLL: Duration = Duration::from_secs(10);

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

/// Dereference the sweep's runtime (resumed from its status, or started after validation), then run its steps.
async fn reconcile_sweep(sweep: &SeedSweep, ctx: &Context) -> Result<Action> {
    let name = sweep.name_any();
    let ns = sweep
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(name.clone()))?;
    let uid = sweep.uid().unwrap_or_default();
    if sweep.metadata.deletion_timestamp.is_some() {
        if checkpoints::has_finalizer(sweep) {
            return remove_checkpoints_of_deleted(sweep, ctx, &ns).await;
        }
        // The garbage collector deletes the Jobs the sweep owns, and their pods with them.
        ctx.forget(&uid);
        ctx.metrics.forget_sweep(&ns, &name);
        return Ok(Action::await_change());
    }
    let cell = ctx.runtime(&uid);
    let mut guard = cell.lock().await;
    if guard.is_none() {
        let recorded = sweep
            .status
            .as_ref()
            .and_then(|s| Some((s, s.engine.as_ref()?)));
        match recorded {
            Some((status, engine)) => {
                let corrupt = |message: String| Error::CorruptState {
                    sweep: name.clone(),
                    message,
                };
                let (snapshot, written) = engine_store::load(&ctx.client, &ns, &name, engine)
                    .await
                    .map_err(|e| match e {
                        engine_store::LoadError::Kube(e) => Error::Kube(e),
                        engine_store::LoadError::Corrupt(message) => corrupt(message),
                    })?;
                let runtime = SweepRuntime::resume(&snapshot, status, written).map_err(corrupt)?;
                tracing::info!(sweep = %name, namespace = %ns, "resuming from the recorded status");
                *guard = Some(runtime);
            }
            None => {
                let errors = manifest::validate(sweep);
                if !errors.is_empty() {
                    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    write_invalid(sweep, ctx, &errors).await?;
                    return Ok(Action::await_change());
                }
                let spec = match planned_spec(sweep, ctx, &ns).await? {
                    Ok(spec) => spec,
                    Err(Unresolved::Waiting(reasons)) => {
                        write_waiting(sweep, ctx, &reasons).await?;
                        return Ok(Action::requeue(SEED_SOURCES_POLL));
                    }
                    Err(Unresolved::Invalid(errors)) => {
                        write_invalid(sweep, ctx, &errors).await?;
                        return Ok(Action::await_change());
                    }
                };
                tracing::info!(sweep = %name, namespace = %ns, "starting");
                *guard = Some(SweepRuntime::start(sweep, spec));
            }
        }
    }
    if checkpoints::sweep_dir(&sweep.spec, Some(&ns), &name).is_some()
        && !checkpoints::has_finalizer(sweep)
    {
        set_finalizers(sweep, ctx, &ns, true).await?;
    }
    guard
        .as_mut()
        .expect("set above")
        .reconcile(sweep, ctx, &ns)
        .await
}

/// Adds or removes the checkpoint finalizer, keeping the others. The list goes with the resourceVersion it was read
/// at: a concurrent change makes this fail and the reconcile run again.
async fn set_finalizers(sweep: &SeedSweep, ctx: &Context, ns: &str, present: bool) -> Result<()> {
    let mut finalizers: Vec<String> = sweep
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != checkpoints::FINALIZER)
        .collect();
    if present {
        finalizers.push(checkpoints::FINALIZER.to_string());
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": finalizers, "resourceVersion": sweep.resource_version()},
    });
    let api: Api<SeedSweep> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        &sweep.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// A deleted sweep with checkpoints: stop its trials, wait for their pods to end (one may still be writing a
/// checkpoint), remove the sweep's checkpoint directory with a Job that outlives it, then let it go. A removal that
/// fails is reported as a warning event naming the directory, and the sweep goes anyway: deleting must not hang.
async fn remove_checkpoints_of_deleted(
    sweep: &SeedSweep,
    ctx: &Context,
    ns: &str,
) -> Result<Action> {
    let name = sweep.name_any();
    let again = Action::requeue(Duration::from_secs(2));
    let Some(dir) = checkpoints::sweep_dir(&sweep.spec, Some(ns), &name) else {
        set_finalizers(sweep, ctx, ns, false).await?;
        return Ok(Action::await_change());
    };
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    // No trial is waited on any more: no succeeded pod is read.
    let cluster = Cluster::read(ctx, sweep, ns, |_, _| false).await?;
    let mut trials_alive = false;
    for (job_name, job) in &cluster.jobs {
        if job_identity(job).is_some() && job.metadata.deletion_timestamp.is_none() {
            match jobs.delete(job_name, &background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    for pod in &cluster.pods {
        let ended = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        trials_alive |= pod.labels().contains_key(LABEL_TRIAL) && !ended;
    }
    if trials_alive {
        return Ok(again);
    }
    let mut removal = checkpoints::cleanup_job(
        sweep,
        &sweep.spec,
        &ctx.config.image,
        &dir,
        &[checkpoints::WHOLE_SWEEP.to_string()],
    );
    // It must outlive the sweep: the garbage collector would delete a Job the sweep owns with it.
    removal.metadata.owner_references = None;
    let removal_name = removal.metadata.name.clone().unwrap_or_default();
    let Some(job) = jobs.get_opt(&removal_name).await? else {
        match jobs.create(&PostParams::default(), &removal).await {
            Ok(_) => {
                tracing::info!(sweep = %name, dir = %dir, "removing the deleted sweep's checkpoints")
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(again);
    };
    if !is_finished(&job) {
        return Ok(again);
    }
    if !checkpoints::succeeded(&job) {
        let note = format!(
            "could not remove the checkpoints in {dir} on volume {:?} (Job {removal_name} failed); remove them by hand",
            sweep
                .spec
                .checkpoints
                .as_ref()
                .and_then(|c| c.volume.clone())
                .unwrap_or_default()
        );
        tracing::warn!(sweep = %name, "{note}");
        publish(ctx, sweep, &SweepEvent::CheckpointsLeft { note }.render()).await;
    }
    match jobs.delete(&removal_name, &background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    set_finalizers(sweep, ctx, ns, false).await?;
    Ok(Action::await_change())
}

/// The spec a new sweep is planned from: its own, with `weightInit.fromSweeps` resolved from the named SeedSweeps'
/// recorded states (`status.engine`) in its namespace. Announces the seeds chosen.
async fn planned_spec(
    sweep: &SeedSweep,
    ctx: &Context,
    ns: &str,
) -> Result<Result<SeedSweepSpec, Unresolved>> {
    let names = seed_sources::named(&sweep.spec);
    if names.is_empty() {
        return Ok(Ok(sweep.spec.clone()));
    }
    let api: Api<SeedSweep> = Api::namespaced(ctx.client.clone(), ns);
    let mut sources = Vec::with_capacity(names.len());
    for name in names {
        let source = match api.get_opt(&name).await? {
            None => Source::Absent(format!("SeedSweep {ns}/{name} does not exist")),
            Some(earlier) => match earlier.status.and_then(|s| s.engine) {
                None => Source::Absent(format!("SeedSweep {ns}/{name} has not started")),
                Some(engine) => match engine_store::load(&ctx.client, ns, &name, &engine)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|(snapshot, _)| {
                        let state = snapshot.restore().map_err(|e| e.to_string())?;
                        Ok((snapshot.spec, state))
                    }) {
                    Ok((spec, state)) => Source::Found {
                        spec: Box::new(spec),
                        state,
                    },
                    Err(e) => Source::Unreadable(format!(
                        "the recorded state of SeedSweep {ns}/{name} cannot be read: {e}"
                    )),
                },
            },
        };
        sources.push((name, source));
    }
    let resolved = seed_sources::resolve(sweep, sources);
    if let Ok(spec) = &resolved {
        let chosen = SweepEvent::SeedsChosen {
            seeds: (spec.seeds.weight_init.as_ref())
                .and_then(|l| l.values.clone())
                .unwrap_or_default(),
            sweeps: seed_sources::named(spec),
        };
        publish(ctx, sweep, &chosen.render()).await;
    }
    Ok(resolved)
}
