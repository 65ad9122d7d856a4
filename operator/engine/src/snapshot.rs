//! The one persisted form of a sweep's engine state, written by both executors: the local executor as its state
//! file, the operator as `status.engine`. It holds the spec the plan was made from (the plan itself is a pure
//! function of it) and every trial's recorded state; restoring it replays into the same decisions.
//!
//! Trials are launched in plan order, so the ones never launched are a tail of untouched records: they are left
//! out, which keeps a 625-trial sweep's status a few kilobytes at creation instead of a few hundred.
//!
//! The operator cannot keep every trial's evaluations in one object: etcd refuses objects over 1.5 MiB, which a
//! few thousand trials exceed. It splits the snapshot ([`Snapshot::into_chunks`]) into a head without trials (the
//! status keeps it) and chunks of a fixed number of trials, each sized to stay under a ConfigMap's 1 MiB however
//! long the spec lets a trial's record grow ([`trials_per_chunk`]), and joins them back when it restarts.

use crate::state::{SweepState, TrialState};
use seedsweep_crds::sweep::SeedSweepSpec;
use serde::{Deserialize, Serialize};

/// Raised whenever the shape or its meaning changes; a snapshot of another version is refused with both numbers.
/// Version 3 added `trialChunks`; a version-2 snapshot (trials inline) reads as one. Version 4 chunks hold
/// [`TRIALS_PER_CHUNK`] trials, and a writer keeps the layout its head records: an operator of version 3 would
/// rewrite them in its own larger chunks under the same names, and one interrupted write would then mix two layouts.
pub const FORMAT_VERSION: u32 = 4;
const OLDEST_READ: u32 = 2;

/// What one chunk of trials may take when serialized: a ConfigMap holds at most 1 MiB, less its metadata.
pub const CHUNK_BYTES: usize = 768 * 1024;
/// The most trials one chunk holds. A trial's record changes at each scrape while it runs, and a write sends its whole
/// chunk again. Running trials are scattered over the plan (the kept ones relaunch among finished ones), so chunks
/// filled to [`CHUNK_BYTES`] (118 trials at 30 evaluations) sent about 28 chunks of 100 KB per status write at
/// 10,000 trials: 1.7 GB of ConfigMap revisions per sweep, enough to fill etcd's 2 GiB quota between two
/// compactions. Chunks of 16 send about a seventh of a full chunk for each one changed.
pub const TRIALS_PER_CHUNK: usize = 16;
/// A bound on one recorded trial without its evaluations: the reasons are cut to [`crate::state::MAX_REASON_BYTES`]
/// each (the run's, the stop's, the stuck one's), and the numbers take a few hundred bytes.
const TRIAL_BYTES_BUT_EVALS: usize = 4 * 1024;
/// A bound on one recorded evaluation, `[seq, index, step, score]`, with a comma.
const EVAL_BYTES: usize = 80;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Absent in what seedsweep 0.1's operator wrote (read as 0, and refused).
    #[serde(default)]
    pub format_version: u32,
    pub sweep: String,
    pub spec: SeedSweepSpec,
    pub next_seq: u64,
    /// Every trial's state up to the last one ever launched; the rest are as planned. Empty in a head whose trials
    /// are in chunks (`trialChunks`).
    pub trials: Vec<TrialState>,
    /// Set in a head whose trials are kept apart, in chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_chunks: Option<TrialChunks>,
}

/// Where a head's trials are: `recorded` trials in chunks of `perChunk`, chunk k holding trials from k × perChunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialChunks {
    pub per_chunk: u32,
    pub recorded: u32,
}

impl TrialChunks {
    /// How many chunks hold the recorded trials.
    pub fn count(&self) -> usize {
        (self.recorded as usize).div_ceil(self.per_chunk.max(1) as usize)
    }
}

/// The most evaluations a trial may plan (`epochs × evalsPerEpoch`, validated): one such trial fits in a chunk.
pub const MAX_EVALS_PER_TRIAL: usize = 5000;
const _: () =
    assert!(TRIAL_BYTES_BUT_EVALS + EVAL_BYTES * (MAX_EVALS_PER_TRIAL + 1) <= CHUNK_BYTES);

/// The ConfigMap in which the operator keeps chunk `k` of sweep `sweep` (readers of the cluster find them so).
pub fn chunk_name(sweep: &str, k: usize) -> String {
    format!("{sweep}-engine-{k}")
}

/// The ConfigMap key holding a chunk: the JSON array of its trials' records.
pub const CHUNK_DATA_KEY: &str = "trials.json";

/// How many trials one chunk holds for a new sweep of `spec`: [`TRIALS_PER_CHUNK`], or fewer when that many would not
/// fit in [`CHUNK_BYTES`] with every trial holding every evaluation the spec plans. A sweep already recorded keeps the
/// layout its head names.
pub fn trials_per_chunk(spec: &SeedSweepSpec) -> usize {
    let evals = spec.training.epochs as usize * spec.training.evals_per_epoch as usize + 1;
    let fit = CHUNK_BYTES / (TRIAL_BYTES_BUT_EVALS + EVAL_BYTES * evals);
    fit.clamp(1, TRIALS_PER_CHUNK)
}

/// How many trials a snapshot records: up to the last one ever launched.
fn recorded_count(state: &SweepState) -> usize {
    let untouched = TrialState::new();
    (state.trials.iter())
        .rposition(|t| *t != untouched)
        .map_or(0, |last| last + 1)
}

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnapshotError {
    #[error("format version {found}, this seedsweep reads {OLDEST_READ} to {FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("{recorded} trials recorded for a plan of {planned}")]
    TrialCount { recorded: usize, planned: usize },
    #[error("trials[{trial}] has evaluations but no totalSteps")]
    NoTotalSteps { trial: usize },
    #[error("chunk {chunk} holds {found} trials; chunks of this head hold {per_chunk}")]
    ChunkSize {
        chunk: usize,
        found: usize,
        per_chunk: usize,
    },
    #[error("{found} chunks for a head of {expected}")]
    ChunkCount { found: usize, expected: usize },
    #[error("its trials are kept in {0} chunks, not joined to it")]
    NotJoined(usize),
}

impl Snapshot {
    /// The snapshot of `state`, planned from `spec`.
    pub fn of(spec: &SeedSweepSpec, state: &SweepState) -> Snapshot {
        let recorded = recorded_count(state);
        Snapshot {
            format_version: FORMAT_VERSION,
            sweep: state.name.clone(),
            spec: spec.clone(),
            next_seq: state.next_seq,
            trials: state.trials[..recorded].to_vec(),
            trial_chunks: None,
        }
    }

    /// The head of [`Snapshot::of`]`(spec, state)` split into chunks of `per_chunk` ([`Snapshot::into_chunks`]),
    /// and its chunks as slices of `state`'s trials: without copying them, for an executor that writes them often.
    pub fn chunks_of<'a>(
        spec: &SeedSweepSpec,
        state: &'a SweepState,
        per_chunk: usize,
    ) -> (Snapshot, std::slice::Chunks<'a, TrialState>) {
        let per_chunk = per_chunk.max(1);
        let recorded = recorded_count(state);
        let head = Snapshot {
            format_version: FORMAT_VERSION,
            sweep: state.name.clone(),
            spec: spec.clone(),
            next_seq: state.next_seq,
            trials: Vec::new(),
            trial_chunks: Some(TrialChunks {
                per_chunk: per_chunk as u32,
                recorded: recorded as u32,
            }),
        };
        (head, state.trials[..recorded].chunks(per_chunk))
    }

    /// The head (this snapshot without its trials, saying where they are) and the trials in chunks of
    /// `per_chunk`, the last one possibly shorter.
    pub fn into_chunks(mut self, per_chunk: usize) -> (Snapshot, Vec<Vec<TrialState>>) {
        let per_chunk = per_chunk.max(1);
        let trials = std::mem::take(&mut self.trials);
        self.trial_chunks = Some(TrialChunks {
            per_chunk: per_chunk as u32,
            recorded: trials.len() as u32,
        });
        (self, trials.chunks(per_chunk).map(<[_]>::to_vec).collect())
    }

    /// The snapshot `head` was split from, with `chunks[k]` the chunk k found (`None`: not written yet, its trials
    /// as planned). The operator writes the head before the chunks, so a chunk may be older than the head (an
    /// interrupted write): that is a state recorded earlier, which replays into the same decisions. The next
    /// evaluation's sequence number is made larger than any recorded, so that a chunk newer than the head's count
    /// cannot be given numbers twice.
    pub fn from_chunks(
        mut head: Snapshot,
        chunks: Vec<Option<Vec<TrialState>>>,
    ) -> Result<Snapshot, SnapshotError> {
        let Some(layout) = head.trial_chunks.take() else {
            return Ok(head);
        };
        let per_chunk = layout.per_chunk.max(1) as usize;
        if chunks.len() != layout.count() {
            return Err(SnapshotError::ChunkCount {
                found: chunks.len(),
                expected: layout.count(),
            });
        }
        let last = chunks.len().saturating_sub(1);
        let mut trials = Vec::with_capacity(layout.recorded as usize);
        for (k, chunk) in chunks.into_iter().enumerate() {
            let expected = if k == last {
                layout.recorded as usize - k * per_chunk
            } else {
                per_chunk
            };
            let chunk = chunk.unwrap_or_else(|| vec![TrialState::new(); expected]);
            // A chunk written when fewer trials were recorded is shorter: its missing tail was untouched then.
            if chunk.len() > expected {
                return Err(SnapshotError::ChunkSize {
                    chunk: k,
                    found: chunk.len(),
                    per_chunk,
                });
            }
            let short = expected - chunk.len();
            trials.extend(chunk);
            trials.extend(std::iter::repeat_n(TrialState::new(), short));
        }
        let after_recorded = (trials.iter().flat_map(|t| &t.evals))
            .map(|e| e.seq + 1)
            .max()
            .unwrap_or(0);
        head.next_seq = head.next_seq.max(after_recorded);
        head.trials = trials;
        Ok(head)
    }

    /// The state it records, with the plan made again from its spec.
    pub fn restore(&self) -> Result<SweepState, SnapshotError> {
        if !(OLDEST_READ..=FORMAT_VERSION).contains(&self.format_version) {
            return Err(SnapshotError::Version {
                found: self.format_version,
            });
        }
        if let Some(chunks) = self.trial_chunks {
            return Err(SnapshotError::NotJoined(chunks.count()));
        }
        let mut state = SweepState::new(&self.sweep, &self.spec);
        if self.trials.len() > state.trials.len() {
            return Err(SnapshotError::TrialCount {
                recorded: self.trials.len(),
                planned: state.trials.len(),
            });
        }
        if let Some(trial) = self
            .trials
            .iter()
            .position(|t| !t.evals.is_empty() && t.total_steps.is_none())
        {
            return Err(SnapshotError::NoTotalSteps { trial });
        }
        state.next_seq = self.next_seq;
        state.trials[..self.trials.len()].clone_from_slice(&self.trials);
        Ok(state)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::observation::TrainerSnapshot;
    use seedsweep_crds::Metrics;
    use seedsweep_crds::sweep::SeedSweep;
    use seedsweep_crds::trainer::EvalPoint;

    /// A 2 × 2 MRPC sweep with every default, for the engine's unit tests.
    pub(crate) fn spec() -> SeedSweepSpec {
        let text = r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata: {name: s}
spec:
  task: {name: mrpc, dataDir: /data}
  model: {path: /model}
  seeds: {weightInit: {start: 1, count: 2}, dataOrder: {start: 1, count: 2}}
"#;
        serde_yaml::from_str::<SeedSweep>(text).unwrap().spec
    }

    #[test]
    fn round_trips_through_json() {
        let spec = spec();
        let mut state = SweepState::new("s", &spec);
        state.mark_started(1);
        state
            .observe(
                1,
                &TrainerSnapshot {
                    step: 3,
                    total_steps: 10,
                    evals: vec![EvalPoint {
                        index: 0,
                        step: 3,
                        progress: 0.3,
                        metrics: Metrics {
                            accuracy: 0.7,
                            f1: 0.8,
                            mcc: 0.1,
                            acc_and_f1: 0.75,
                        },
                    }],
                    ..TrainerSnapshot::default()
                },
            )
            .expect("a consistent scrape");
        let json = serde_json::to_string(&Snapshot::of(&spec, &state)).unwrap();
        let snapshot: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(snapshot.spec, spec);
        assert_eq!(snapshot.restore().unwrap(), state);
    }

    #[test]
    fn a_record_for_another_plan_is_refused() {
        let spec = spec();
        let mut snapshot = Snapshot::of(&spec, &SweepState::new("s", &spec));
        snapshot.trials = vec![TrialState::new(); 5];
        let e = snapshot.restore().unwrap_err();
        assert_eq!(e.to_string(), "5 trials recorded for a plan of 4");
        snapshot.format_version = 1;
        assert_eq!(
            snapshot.restore().unwrap_err().to_string(),
            "format version 1, this seedsweep reads 2 to 4"
        );
        // What a version-3 operator wrote is read (its chunk layout is kept: `trialChunks`).
        snapshot.format_version = 3;
        snapshot.trials.truncate(4);
        assert!(snapshot.restore().is_ok());
        assert!(serde_json::from_value::<Snapshot>(serde_json::json!({"spec": 1})).is_err());
    }

    /// Trials never launched are not recorded, and come back as planned.
    #[test]
    fn untouched_trials_are_left_out() {
        let spec = spec();
        let mut state = SweepState::new("s", &spec);
        assert!(Snapshot::of(&spec, &state).trials.is_empty());
        state.mark_started(0);
        state.mark_started(1);
        let snapshot = Snapshot::of(&spec, &state);
        assert_eq!(snapshot.trials.len(), 2);
        assert_eq!(snapshot.restore().unwrap(), state);
    }

    /// A 625-trial sweep's status at creation holds only the trials launched (228 KB before they were left out).
    #[test]
    fn a_625_trial_status_is_small_at_creation() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/mrpc-sweep.yaml"
        ))
        .unwrap();
        let spec = serde_yaml::from_str::<SeedSweep>(&text).unwrap().spec;
        let mut state = SweepState::new("mrpc", &spec);
        let step = state.step(&state.rules(&spec, spec.parallelism as usize));
        assert_eq!(step.actions.to_start.len(), spec.parallelism as usize);
        let mut status = crate::report::status(&state, &step.outlook);
        status.engine = Some(serde_json::to_value(Snapshot::of(&spec, &state)).unwrap());
        assert_eq!(status.counts.total, 625);
        assert_eq!(status.trials.len(), spec.parallelism as usize);
        let bytes = serde_json::to_vec(&status).unwrap().len();
        eprintln!("625 trials at creation: status {bytes} bytes");
        assert!(bytes < 16_000, "{bytes} bytes");
        let snapshot: Snapshot = serde_json::from_value(status.engine.unwrap()).unwrap();
        assert_eq!(snapshot.restore().unwrap(), state);
    }

    /// A sweep of `wi × do` seeds from the MRPC example without discarding, every trial trained to completion
    /// with 30 evaluations of full precision (as real scores have); every seventh failed with a reason far longer
    /// than any recorded.
    fn finished_sweep(wi: u64, dor: u64) -> (SeedSweepSpec, SweepState) {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/mrpc-sweep.yaml"
        ))
        .unwrap();
        let sweep: SeedSweep = serde_yaml::from_str(&text).unwrap();
        let mut spec = sweep.spec.clone();
        spec.early_discard = None;
        spec.divergence = None;
        let seeds = spec.seeds.weight_init.as_mut().unwrap();
        seeds.count = Some(wi as u32);
        let seeds = spec.seeds.data_order.as_mut().unwrap();
        seeds.count = Some(dor as u32);
        let mut state = SweepState::new("mrpc", &spec);
        let total = 690u64;
        let n = state.trials.len();
        for i in 0..n {
            state.mark_started(i);
            let score = |k: usize| 0.6 + ((i * 31 + k * 7) % 1000) as f64 / 3001.0;
            let evals: Vec<EvalPoint> = (0..30)
                .map(|k| EvalPoint {
                    index: k as u32,
                    step: (k as u64 + 1) * 23,
                    progress: (k as f64 + 1.0) * 23.0 / total as f64,
                    metrics: Metrics {
                        accuracy: score(k),
                        f1: score(k + 1),
                        mcc: score(k + 2) - 0.5,
                        acc_and_f1: score(k + 3),
                    },
                })
                .collect();
            state
                .observe(
                    i,
                    &TrainerSnapshot {
                        step: total,
                        total_steps: total,
                        evals: evals.clone(),
                        ..TrainerSnapshot::default()
                    },
                )
                .expect("a consistent scrape");
            let failed = i % 7 == 3;
            let summary = seedsweep_crds::trainer::TrialSummary {
                sweep: "mrpc".into(),
                trial: state.plan.trials[i].name.clone(),
                wi_seed: state.plan.trials[i].weight_init,
                do_seed: state.plan.trials[i].data_order,
                outcome: if failed {
                    seedsweep_crds::trainer::Outcome::Failed
                } else {
                    seedsweep_crds::trainer::Outcome::Completed
                },
                reason: failed.then(|| "é".repeat(5000)),
                steps_done: total,
                total_steps: total,
                majority_baseline: Metrics::default(),
                final_metrics: Some(evals[29].metrics),
                evals,
                dropped_evals: 0,
                resumed_from_step: 0,
            };
            state.finish(i, Some(&summary), "exit code 0");
        }
        (spec, state)
    }

    /// The status the operator writes for `state`: records bounded, the snapshot's head as `engine`; and the
    /// chunks of trials beside it, each as its ConfigMap's value.
    fn as_written(spec: &SeedSweepSpec, state: &SweepState) -> (Vec<u8>, Vec<Vec<u8>>) {
        let rules = state.rules(spec, 8);
        let mut status = crate::report::bounded_status(
            state,
            &state.decide(&rules),
            crate::report::MAX_TRIAL_RECORDS,
        );
        let (head, chunks) = Snapshot::of(spec, state).into_chunks(trials_per_chunk(spec));
        status.engine = Some(serde_json::to_value(&head).unwrap());
        let chunks = (chunks.iter())
            .map(|c| serde_json::to_vec(c).unwrap())
            .collect();
        (serde_json::to_vec(&status).unwrap(), chunks)
    }

    /// Reads back what [`as_written`] wrote.
    fn read_back(status: &[u8], chunks: &[Vec<u8>]) -> SweepState {
        let status: seedsweep_crds::sweep::SeedSweepStatus =
            serde_json::from_slice(status).unwrap();
        let head: Snapshot = serde_json::from_value(status.engine.unwrap()).unwrap();
        let chunks = (chunks.iter())
            .map(|c| Some(serde_json::from_slice(c).unwrap()))
            .collect();
        Snapshot::from_chunks(head, chunks)
            .unwrap()
            .restore()
            .unwrap()
    }

    /// The paper's 25 × 25 grid with no discarding: every record stays in the status.
    #[test]
    fn a_625_trial_sweep_keeps_every_record_and_fits_in_etcd() {
        let (spec, state) = finished_sweep(25, 25);
        let (status, chunks) = as_written(&spec, &state);
        eprintln!(
            "625 trials × 30 evaluations: status {} bytes, {} chunks of at most {} bytes",
            status.len(),
            chunks.len(),
            chunks.iter().map(Vec::len).max().unwrap()
        );
        let parsed: seedsweep_crds::sweep::SeedSweepStatus =
            serde_json::from_slice(&status).unwrap();
        assert_eq!((parsed.trials.len(), parsed.trials_omitted), (625, 0));
        // Leaves a third of etcd's limit for the spec, metadata and managed fields.
        assert!(status.len() < 1_000_000, "{} bytes", status.len());
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_BYTES));
        assert_eq!(read_back(&status, &chunks), state);
    }

    /// The largest sweep validation accepts, 10,000 trials of 30 evaluations: the status stays within etcd's limit
    /// with 1,000 records, every chunk within a ConfigMap's, and all of it reads back into the same state.
    #[test]
    fn a_10000_trial_sweep_fits_in_etcd_in_chunks() {
        let (spec, state) = finished_sweep(100, 100);
        assert_eq!(state.trials.len(), 10_000);
        let (status, chunks) = as_written(&spec, &state);
        let largest = chunks.iter().map(Vec::len).max().unwrap();
        eprintln!(
            "10,000 trials × 30 evaluations: status {} bytes, {} chunks of at most {largest} bytes",
            status.len(),
            chunks.len(),
        );
        let parsed: seedsweep_crds::sweep::SeedSweepStatus =
            serde_json::from_slice(&status).unwrap();
        assert_eq!(
            (parsed.trials.len(), parsed.trials_omitted),
            (crate::report::MAX_TRIAL_RECORDS, 9_000)
        );
        assert!(status.len() < 1_000_000, "{} bytes", status.len());
        assert!(largest <= CHUNK_BYTES, "{largest} bytes");
        assert_eq!(read_back(&status, &chunks), state);
    }

    #[test]
    fn chunks_join_into_the_snapshot_they_were_split_from() {
        let (spec, state) = finished_sweep(5, 5);
        let snapshot = Snapshot::of(&spec, &state);
        let (head, chunks) = snapshot.clone().into_chunks(7);
        assert!(head.trials.is_empty());
        assert_eq!(
            head.trial_chunks,
            Some(TrialChunks {
                per_chunk: 7,
                recorded: 25
            })
        );
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [7, 7, 7, 4]
        );
        assert_eq!(
            head.restore().unwrap_err().to_string(),
            "its trials are kept in 4 chunks, not joined to it"
        );
        let joined =
            Snapshot::from_chunks(head.clone(), chunks.iter().cloned().map(Some).collect());
        assert_eq!(joined.unwrap(), snapshot);
        // Too few or too many chunks, or a chunk longer than the head's size, are refused.
        let e = Snapshot::from_chunks(head.clone(), vec![None; 3]).unwrap_err();
        assert_eq!(e.to_string(), "3 chunks for a head of 4");
        let mut long = chunks.clone();
        long[3].extend(chunks[0].clone());
        let e = Snapshot::from_chunks(head.clone(), long.into_iter().map(Some).collect());
        assert_eq!(
            e.unwrap_err().to_string(),
            "chunk 3 holds 11 trials; chunks of this head hold 7"
        );
    }

    #[test]
    fn chunks_of_a_state_are_the_chunks_of_its_snapshot() {
        let (spec, state) = finished_sweep(5, 5);
        let (head, chunks) = Snapshot::chunks_of(&spec, &state, 7);
        let (expected_head, expected) = Snapshot::of(&spec, &state).into_chunks(7);
        assert_eq!(head, expected_head);
        assert_eq!(chunks.map(<[_]>::to_vec).collect::<Vec<_>>(), expected);
    }

    /// A write interrupted between the head and its chunks leaves chunks older than the head: missing ones and
    /// shorter ones read as trials untouched then, and the next sequence number stays past every recorded one.
    #[test]
    fn chunks_older_than_their_head_read_as_an_earlier_state() {
        let spec = spec();
        let mut state = SweepState::new("s", &spec);
        state.mark_started(0);
        let earlier = Snapshot::of(&spec, &state);
        let (_, old_chunks) = earlier.into_chunks(2);
        state.mark_started(1);
        state.mark_started(2);
        let (mut head, _) = Snapshot::of(&spec, &state).into_chunks(2);
        assert_eq!(head.trial_chunks.unwrap().count(), 2);
        // Only the first chunk, as it was with one trial recorded, was written.
        let joined = Snapshot::from_chunks(head.clone(), vec![Some(old_chunks[0].clone()), None]);
        let restored = joined.unwrap().restore().unwrap();
        let mut expected = SweepState::new("s", &spec);
        expected.mark_started(0);
        assert_eq!(restored, expected);
        // A chunk holding evaluations numbered past the head's next one moves it on.
        let mut newer = old_chunks[0].clone();
        newer[0].evals.push(crate::state::RecordedEval {
            seq: 41,
            index: 0,
            step: 1,
            score: 0.5,
        });
        newer[0].total_steps = Some(10);
        head.next_seq = 3;
        let joined = Snapshot::from_chunks(head, vec![Some(newer), None]).unwrap();
        assert_eq!(joined.next_seq, 42);
    }

    #[test]
    fn chunks_are_sized_for_the_longest_trials_the_spec_plans() {
        let mut spec = spec();
        // 118 such trials would fit: a chunk holds no more than a write should send again for one of them.
        const { assert!(CHUNK_BYTES / (4096 + 80 * 31) > TRIALS_PER_CHUNK) };
        assert_eq!(trials_per_chunk(&spec), TRIALS_PER_CHUNK);
        spec.training.epochs = 5;
        spec.training.evals_per_epoch = 200;
        assert_eq!(trials_per_chunk(&spec), CHUNK_BYTES / (4096 + 80 * 1001));
        assert!(trials_per_chunk(&spec) < TRIALS_PER_CHUNK);
        spec.training.evals_per_epoch = MAX_EVALS_PER_TRIAL as u32 / 5;
        assert_eq!(trials_per_chunk(&spec), 1);
    }
}
