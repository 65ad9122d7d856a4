//! The controller's entry points: one reconciliation of one sweep, and the error policy. The sweep's own steps
//! are in [`super::runtime`].

use super::error::Result;
use super::runtime::{SweepRuntime, write_invalid};
use super::{Context, Error};
use crate::engine::snapshot::Snapshot;
use crate::manifest;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use seedsweep_crds::sweep::SeedSweep;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
