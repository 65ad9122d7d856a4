//! The controller's entry points: one reconciliation of one sweep, and the error policy. The sweep's own steps
//! are in [`super::runtime`].

use super::error::Result;
use super::events::{SweepEvent, publish};
use super::runtime::{SweepRuntime, write_invalid, write_waiting};
use super::{Context, Error};
use crate::engine::snapshot::Snapshot;
use crate::manifest;
use crate::seed_sources::{self, Source, Unresolved};
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
                let snapshot: Snapshot =
                    serde_json::from_value(engine.clone()).map_err(|e| corrupt(e.to_string()))?;
                let runtime = SweepRuntime::resume(&snapshot, status).map_err(corrupt)?;
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
    guard
        .as_mut()
        .expect("set above")
        .reconcile(sweep, ctx, &ns)
        .await
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
                Some(engine) => match serde_json::from_value::<Snapshot>(engine)
                    .map_err(|e| e.to_string())
                    .and_then(|snapshot| {
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
