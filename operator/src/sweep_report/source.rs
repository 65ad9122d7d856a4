//! Where a report's sweep comes from: a local state directory or a SeedSweep in a cluster. Both hold the same
//! engine snapshot (the spec the plan was made from and every recorded evaluation), so a report reads the same
//! either way.

use crate::engine::snapshot::Snapshot;
use crate::engine::state::SweepState;
use crate::kubeconfig::kube_config;
use crate::local::store;
use anyhow::{Context, bail};
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec};
use std::path::Path;

/// A sweep read for a report.
pub struct Loaded {
    pub spec: SeedSweepSpec,
    pub state: SweepState,
    /// Where it was read from, for the report's header.
    pub origin: String,
}

/// Reads a local state directory (without locking it: `seedsweep run` may still be writing it).
pub fn from_state_dir(dir: &Path) -> anyhow::Result<Loaded> {
    if !dir.is_dir() {
        bail!("state directory {} does not exist", dir.display());
    }
    let (spec, state) = store::read(dir)?.with_context(|| {
        format!(
            "no sweep state in {} (no state.json: run `seedsweep run` first, or pass the directory it used)",
            dir.display()
        )
    })?;
    Ok(Loaded {
        spec,
        state,
        origin: format!("state directory {}", dir.display()),
    })
}

/// Reads a SeedSweep's `status.engine` from the cluster.
pub async fn from_cluster(
    name: &str,
    namespace: Option<&str>,
    kubeconfig: Option<&Path>,
) -> anyhow::Result<Loaded> {
    let config = kube_config(kubeconfig).await?;
    let namespace = namespace.unwrap_or(&config.default_namespace).to_string();
    let client = kube::Client::try_from(config)?;
    let api: kube::Api<SeedSweep> = kube::Api::namespaced(client, &namespace);
    let sweep = api
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read SeedSweep {namespace}/{name}"))?
        .with_context(|| format!("SeedSweep {namespace}/{name} does not exist"))?;
    let engine = sweep
        .status
        .and_then(|s| s.engine)
        .with_context(|| {
            format!(
                "SeedSweep {namespace}/{name} has no recorded state yet (status.engine is empty): the operator has \
                 not started it"
            )
        })?;
    let snapshot: Snapshot = serde_json::from_value(engine).with_context(|| {
        format!("status.engine of SeedSweep {namespace}/{name} is not a SeedSweep snapshot")
    })?;
    let state = snapshot
        .restore()
        .with_context(|| format!("status.engine of SeedSweep {namespace}/{name} cannot be read"))?;
    Ok(Loaded {
        spec: snapshot.spec,
        state,
        origin: format!("SeedSweep {namespace}/{name}"),
    })
}
