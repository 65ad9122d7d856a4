//! Where the operator keeps a sweep's engine memory. The snapshot's head (spec, sequence number, where the trials
//! are) goes in `status.engine`; its trials go in ConfigMaps `<sweep>-engine-<k>` that the sweep owns, each holding a
//! chunk of a few trials, sized to stay under a ConfigMap's 1 MiB (`seedsweep_engine::snapshot`). One status object
//! holding every evaluation would pass etcd's 1.5 MiB limit at a few thousand trials, and every status write would
//! then fail.
//!
//! The head is written first, then the chunks that changed: a chunk is never newer than the head, and an
//! interrupted write leaves chunks that record an earlier state, which replays into the same decisions (see
//! `Snapshot::from_chunks`).

use super::job::{LABEL_MANAGED_BY, LABEL_SWEEP, MANAGER, owner_reference};
use crate::engine::snapshot::{CHUNK_DATA_KEY as DATA_KEY, Snapshot, chunk_name, trials_per_chunk};
use crate::engine::state::{SweepState, TrialState};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec};
use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hasher};

/// Marks the ConfigMaps holding engine chunks (value: the chunk's number).
pub const LABEL_CHUNK: &str = "seedsweep.dev/engine-chunk";

/// What each chunk held when last written or read, so that a write sends only the chunks that changed; and the
/// layout of a sweep read back, which its writes keep (`None`: a new sweep, laid out by
/// [`trials_per_chunk`]). Chunks are found by number alone, so one write in another layout, interrupted, would leave
/// chunks that join into the wrong trials.
#[derive(Debug, Default)]
pub struct Written {
    digests: HashMap<usize, u64>,
    per_chunk: Option<usize>,
}

/// A digest of a chunk's trials, taken from their JSON as serde_json writes it, without holding the text (a
/// finished 10,000-trial sweep's chunks are about 9 MB of JSON, digested at every status write). Chunks read back are
/// digested the same way, from what they parse into.
fn digest(trials: &[TrialState]) -> serde_json::Result<u64> {
    struct Digest(DefaultHasher);
    impl std::io::Write for Digest {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.write(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut d = Digest(DefaultHasher::new());
    serde_json::to_writer(&mut d, trials)?;
    Ok(d.0.finish())
}

/// Why the recorded memory cannot be read: the apiserver (retried), or what it holds (the sweep is stuck).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Corrupt(String),
}

/// A chunk to write: its number, its digest, its JSON.
pub struct ChangedChunk {
    k: usize,
    digest: u64,
    text: String,
}

/// The head for `status.engine`, and the chunks of trials that changed since `written` saw them. Only those are
/// serialized: the others are digested, and compared.
pub fn changed_chunks(
    spec: &SeedSweepSpec,
    state: &SweepState,
    written: &Written,
) -> serde_json::Result<(Snapshot, Vec<ChangedChunk>)> {
    let per_chunk = written.per_chunk.unwrap_or_else(|| trials_per_chunk(spec));
    let (head, chunks) = Snapshot::chunks_of(spec, state, per_chunk);
    let mut changed = Vec::new();
    for (k, trials) in chunks.enumerate() {
        let digest = digest(trials)?;
        if written.digests.get(&k) != Some(&digest) {
            let text = serde_json::to_string(trials)?;
            changed.push(ChangedChunk { k, digest, text });
        }
    }
    Ok((head, changed))
}

/// Writes `changed` chunks ([`changed_chunks`]) by server-side apply, creating or replacing each, a few at once, and
/// records each in `written` once it is stored. Their order does not matter: each is written after the head, and an
/// interrupted write leaves some chunks a write behind the others, each recording an earlier state (see
/// `Snapshot::from_chunks`). One after another, the up to 40 chunks of a 625-trial sweep that one write may touch
/// would hold the reconcile, and the slots it refills, for as many round trips.
pub async fn write_chunks(
    client: &Client,
    sweep: &SeedSweep,
    ns: &str,
    changed: Vec<ChangedChunk>,
    written: &mut Written,
) -> kube::Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let name = sweep.name_any();
    let owner = owner_reference(sweep);
    let writes: Vec<_> = changed
        .into_iter()
        .map(|ChangedChunk { k, digest, text }| {
            let cm_name = chunk_name(&name, k);
            // The chunk's text moves into the ConfigMap: a chunk near 1 MiB is not copied on its way out.
            let object = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(cm_name.clone()),
                    labels: Some(BTreeMap::from([
                        (LABEL_SWEEP.to_string(), name.clone()),
                        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
                        (LABEL_CHUNK.to_string(), k.to_string()),
                    ])),
                    owner_references: Some(owner.clone().into_iter().collect()),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(DATA_KEY.to_string(), text)])),
                ..ConfigMap::default()
            };
            let api = &api;
            async move {
                api.patch(
                    &cm_name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await
                .map(|_| (k, digest))
            }
        })
        .collect();
    let mut writes = futures::stream::iter(writes).buffer_unordered(CHUNKS_IN_FLIGHT);
    while let Some(stored) = writes.next().await {
        let (k, digest) = stored?;
        written.digests.insert(k, digest);
    }
    Ok(())
}

/// The snapshot recorded for sweep `name`: `engine` (its `status.engine`) joined with its chunks, and what the
/// chunks held. A head written by an operator that kept trials in the status comes back as it is (and its trials go
/// into chunks of [`trials_per_chunk`] at the next write).
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
    written.per_chunk = Some(layout.per_chunk.max(1) as usize);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    // A few reads in flight: a 10,000-trial sweep has 625 chunks, which one after another would keep a restarted
    // operator (or a sweep waiting on its `fromSweeps`) waiting on as many round trips.
    let reads: Vec<_> = (0..layout.count())
        .map(|k| read_chunk(&api, name, k))
        .collect();
    let mut chunks = Vec::with_capacity(reads.len());
    let mut reads = futures::stream::iter(reads).buffered(CHUNKS_IN_FLIGHT);
    while let Some(chunk) = reads.next().await {
        let chunk = chunk?;
        if let Some((digest, _)) = &chunk {
            written.digests.insert(chunks.len(), *digest);
        }
        chunks.push(chunk.map(|(_, trials)| trials));
    }
    let snapshot =
        Snapshot::from_chunks(head, chunks).map_err(|e| LoadError::Corrupt(e.to_string()))?;
    Ok((snapshot, written))
}

/// How many chunks [`load`] reads, or [`write_chunks`] writes, at once.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Chunk `k` of sweep `name` and its digest; `None` when it was not written yet when the operator stopped (its trials
/// were untouched at the last complete write).
async fn read_chunk(
    api: &Api<ConfigMap>,
    name: &str,
    k: usize,
) -> Result<Option<(u64, Vec<TrialState>)>, LoadError> {
    let cm_name = chunk_name(name, k);
    let Some(cm) = api.get_opt(&cm_name).await? else {
        return Ok(None);
    };
    let text = (cm.data.as_ref())
        .and_then(|d| d.get(DATA_KEY))
        .ok_or_else(|| LoadError::Corrupt(format!("ConfigMap {cm_name} has no data.{DATA_KEY}")))?;
    let trials: Vec<TrialState> = serde_json::from_str(text)
        .map_err(|e| LoadError::Corrupt(format!("ConfigMap {cm_name} data.{DATA_KEY}: {e}")))?;
    let digest =
        digest(&trials).map_err(|e| LoadError::Corrupt(format!("ConfigMap {cm_name}: {e}")))?;
    Ok(Some((digest, trials)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks [`changed_chunks`] leaves out after a write, or after a restarted operator read them back: those
    /// whose trials are unchanged. A trial that changes puts its own chunk back in, and no other.
    #[test]
    fn only_the_chunks_that_changed_are_written_again() {
        let text = include_str!("../../../examples/mrpc-sweep.yaml");
        let spec = serde_yaml::from_str::<SeedSweep>(text).unwrap().spec;
        let mut state = SweepState::new("mrpc", &spec);
        let n = state.trials.len();
        let per_chunk = trials_per_chunk(&spec);
        assert!(n > 2 * per_chunk, "{n} trials, {per_chunk} a chunk");
        for i in 0..n {
            state.mark_started(i);
        }
        let (_, changed) = changed_chunks(&spec, &state, &Written::default()).unwrap();
        assert_eq!(changed.len(), n.div_ceil(per_chunk));
        // As `load` records them: digested from what the written text parses into.
        let mut written = Written::default();
        for chunk in &changed {
            let trials: Vec<TrialState> = serde_json::from_str(&chunk.text).unwrap();
            assert_eq!(digest(&trials).unwrap(), chunk.digest);
            written.digests.insert(chunk.k, chunk.digest);
        }
        assert!(
            changed_chunks(&spec, &state, &written)
                .unwrap()
                .1
                .is_empty()
        );
        let trial = per_chunk + 3;
        state.mark_started(trial);
        let (_, changed) = changed_chunks(&spec, &state, &written).unwrap();
        let changed: Vec<usize> = changed.iter().map(|c| c.k).collect();
        assert_eq!(changed, [1]);
    }

    /// A sweep read back in another layout (an earlier operator's larger chunks) is written in that layout: its head
    /// names it, and only the chunk of a changed trial is sent.
    #[test]
    fn a_sweep_read_back_keeps_its_chunk_layout() {
        let text = include_str!("../../../examples/mrpc-sweep.yaml");
        let spec = serde_yaml::from_str::<SeedSweep>(text).unwrap().spec;
        let mut state = SweepState::new("mrpc", &spec);
        for i in 0..300 {
            state.mark_started(i);
        }
        let earlier = 118;
        assert_ne!(trials_per_chunk(&spec), earlier);
        let (_, chunks) = Snapshot::chunks_of(&spec, &state, earlier);
        let mut written = Written {
            digests: HashMap::new(),
            per_chunk: Some(earlier),
        };
        for (k, trials) in chunks.enumerate() {
            written.digests.insert(k, digest(trials).unwrap());
        }
        state.mark_started(250);
        let (head, changed) = changed_chunks(&spec, &state, &written).unwrap();
        let layout = head.trial_chunks.unwrap();
        assert_eq!((layout.per_chunk, layout.recorded), (118, 300));
        assert_eq!(changed.iter().map(|c| c.k).collect::<Vec<_>>(), [2]);
        let trials: Vec<TrialState> = serde_json::from_str(&changed[0].text).unwrap();
        assert_eq!(trials.len(), 300 - 2 * 118);
    }
}
