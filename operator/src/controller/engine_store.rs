//! Where the operator keeps a sweep's engine memory. The snapshot's head (spec, sequence number, where the trials
//! are) goes in `status.engine`; its trials go in ConfigMaps `<sweep>-engine-<k>` that the sweep owns, each holding a
//! chunk sized to stay under a ConfigMap's 1 MiB (`seedsweep_engine::snapshot`). One status object holding every
//! evaluation would pass etcd's 1.5 MiB limit at a few thousand trials, and every status write would then fail.
//!
//! The head is written first, then the chunks that changed: a chunk is never newer than the head, and an
//! interrupted write leaves chunks that record an earlier state, which replays into the same decisions (see
//! `Snapshot::from_chunks`).

use super::job::{LABEL_MANAGED_BY, LABEL_SWEEP, MANAGER, owner_reference};
use crate::engine::snapshot::{CHUNK_DATA_KEY as DATA_KEY, Snapshot, chunk_name, trials_per_chunk};
use crate::engine::state::{SweepState, TrialState};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Marks the ConfigMaps holding engine chunks (value: the chunk's number).
pub const LABEL_CHUNK: &str = "seedsweep.dev/engine-chunk";

/// What each chunk held when last written or read, so that a write sends only the chunks that changed.
#[derive(Debug, Default)]
pub struct Written(HashMap<usize, u64>);

fn digest(text: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Why the recorded memory cannot be read: the apiserver (retried), or what it holds (the sweep is stuck).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Corrupt(String),
}

/// Chunks to write: `(k, the JSON of chunk k)`.
pub type ChangedChunks = Vec<(usize, Vec<u8>)>;

/// The head for `status.engine`, and the chunks of trials that changed since `written` saw them, as
/// `(k, JSON)`. Every chunk is serialized to compare it, one at a time: only the changed ones are kept (a
/// 10,000-trial sweep's chunks together are about 15 MB of JSON).
pub fn changed_chunks(
    spec: &SeedSweepSpec,
    state: &SweepState,
    written: &Written,
) -> serde_json::Result<(Snapshot, ChangedChunks)> {
    let (head, chunks) = Snapshot::chunks_of(spec, state, trials_per_chunk(spec));
    let mut changed = Vec::new();
    for (k, trials) in chunks.enumerate() {
        let text = serde_json::to_vec(trials)?;
        if written.0.get(&k) != Some(&digest(&text)) {
            changed.push((k, text));
        }
    }
    Ok((head, changed))
}

/// Writes `changed` chunks ([`changed_chunks`]) by server-side apply, creating or replacing each, and records each
/// in `written` once it is stored.
pub async fn write_chunks(
    client: &Client,
    sweep: &SeedSweep,
    ns: &str,
    changed: ChangedChunks,
    written: &mut Written,
) -> kube::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let name = sweep.name_any();
    for (k, text) in changed {
        let hash = digest(&text);
        let text = String::from_utf8(text).expect("serde_json writes UTF-8");
        let object = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": chunk_name(&name, k),
                "labels": {
                    LABEL_SWEEP: name,
                    LABEL_MANAGED_BY: MANAGER,
                    LABEL_CHUNK: k.to_string(),
                },
                "ownerReferences": owner_reference(sweep).into_iter().collect::<Vec<_>>(),
            },
            "data": {DATA_KEY: text},
        });
        api.patch(
            &chunk_name(&name, k),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await?;
        written.0.insert(k, hash);
    }
    Ok(())
}

/// The snapshot recorded for sweep `name`: `engine` (its `status.engine`) joined with its chunks, and what the
/// chunks held. A head written by an operator that kept trials in the status comes back as it is.
pub async fn load(
    client: &Client,
    ns: &str,
    name: &str,
    engine: &serde_json::Value,
) -> Result<(Snapshot, Written), LoadError> {
    let head: Snapshot = serde_json::from_value(engine.clone())
        .map_err(|e| LoadError::Corrupt(format!("status.engine: {e}")))?;
    let mut written = Written::default();
    let Some(layout) = head.trial_chunks else {
        return Ok((head, written));
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut chunks = Vec::with_capacity(layout.count());
    for k in 0..layout.count() {
        let cm_name = chunk_name(name, k);
        let Some(cm) = api.get_opt(&cm_name).await? else {
            // Not written yet when the operator stopped: its trials were untouched at the last complete write.
            chunks.push(None);
            continue;
        };
        let text = (cm.data.as_ref())
            .and_then(|d| d.get(DATA_KEY))
            .ok_or_else(|| {
                LoadError::Corrupt(format!("ConfigMap {cm_name} has no data.{DATA_KEY}"))
            })?;
        let trials: Vec<TrialState> = serde_json::from_str(text)
            .map_err(|e| LoadError::Corrupt(format!("ConfigMap {cm_name} data.{DATA_KEY}: {e}")))?;
        written.0.insert(k, digest(text.as_bytes()));
        chunks.push(Some(trials));
    }
    let snapshot =
        Snapshot::from_chunks(head, chunks).map_err(|e| LoadError::Corrupt(e.to_string()))?;
    Ok((snapshot, written))
}
