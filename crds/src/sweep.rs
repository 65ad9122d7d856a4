//! The `SeedSweep` custom resource: one fine-tuning configuration run under many (weight-init, data-order) seed
//! pairs, with early discarding of trials that fall behind.
//!
//! Simple constraints (ranges, enums, list sizes) live in the OpenAPI schema generated from these types, so the
//! apiserver enforces them. Cross-field rules (strictly increasing rungs, keep counts against the trial count, a
//! grid's size) cannot be expressed without CEL, which Kubernetes 1.20 lacks; the operator validates those.

use crate::statistics::SweepStatistics;
use crate::task::{MetricName, Task};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, EmptyDirVolumeSource, EnvVar, LocalObjectReference,
    PersistentVolumeClaimVolumeSource, ResourceRequirements, SecretVolumeSource, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most trials one sweep may plan. Dodge et al.'s largest grid is 25 × 25 = 625.
pub const MAX_TRIALS: usize = 10_000;
/// A trial's Job is named `<trial>-<attempt>` and Job names label their pods, so they must fit a 63-character
/// label value; four characters are left for the attempt suffix.
pub const MAX_TRIAL_NAME_LEN: usize = 59;

/// The name of a trial, and the stem of its Jobs: `<sweep>-w<WI>-d<DO>`.
pub fn trial_name(sweep: &str, weight_init: u64, data_order: u64) -> String {
    format!("{sweep}-w{weight_init}-d{data_order}")
}
/// The trial pod's scratch volume (an emptyDir: the root filesystem is read-only) and where it is mounted. Part of
/// the API because `trialTemplate.volumes` may not reuse the name.
pub const SCRATCH_VOLUME: &str = "scratch";
pub const SCRATCH_DIR: &str = "/scratch";

#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "seedsweep.dev",
    version = "v1alpha1",
    kind = "SeedSweep",
    plural = "seedsweeps",
    singular = "seedsweep",
    shortname = "ssw",
    namespaced,
    status = "SeedSweepStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Running","type":"integer","jsonPath":".status.counts.running"}"#,
    printcolumn = r#"{"name":"Paused","type":"integer","jsonPath":".status.counts.paused"}"#,
    printcolumn = r#"{"name":"Stuck","type":"integer","jsonPath":".status.counts.stuck","priority":1}"#,
    printcolumn = r#"{"name":"Finished","type":"integer","jsonPath":".status.counts.succeeded"}"#,
    printcolumn = r#"{"name":"Discarded","type":"integer","jsonPath":".status.counts.discarded"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.counts.failed"}"#,
    printcolumn = r#"{"name":"Best","type":"string","jsonPath":".status.bestScore"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SeedSweepSpec {
    pub task: TaskSpec,
    pub model: ModelSpec,
    pub seeds: SeedsSpec,
    #[serde(default)]
    pub training: TrainingSpec,
    /// Defaults to the paper's metric for the task (MRPC `acc_and_f1`, CoLA `mcc`, else `accuracy`), maximized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveSpec>,
    /// Without it every trial trains to completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_discard: Option<EarlyDiscardSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<DivergenceSpec>,
    /// How many trials run at once. It may change while the sweep runs.
    #[serde(default = "default_parallelism")]
    #[schemars(range(min = 1, max = 10000))]
    pub parallelism: u32,
    /// Retries of a trial's pod before the trial counts as failed (the Job's `backoffLimit`).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: u32,
    #[serde(default)]
    pub trial_template: TrialTemplate,
    /// Stop launching trials once the first `afterFailures` trials to end have all failed (a wrong model path or
    /// image fails every trial the same way). On by default.
    #[serde(default)]
    pub fail_fast: FailFastSpec,
    /// A trial attempt whose pod cannot start (unschedulable, image pull, container config, crash loop) for this
    /// many seconds fails with that reason. Unset: it waits, phase `Stuck`. It may change while the sweep runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604800))]
    pub trial_start_timeout_seconds: Option<u32>,
    /// Checkpoints at each rung and when a trial is stopped, so that a trial kept at an exact-mode rung continues
    /// from the rung instead of training again from the beginning, and a retried or interrupted trial continues
    /// from its last checkpoint. Locally they live in the state directory; in a cluster in `volume`. Without it, a
    /// paused or retried trial trains again from the beginning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<CheckpointSpec>,
}

/// Where trials keep their checkpoints.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointSpec {
    /// In a cluster: the `trialTemplate.volumes` entry that holds them (typically a ReadWriteMany
    /// PersistentVolumeClaim; every trial's pod mounts it). It must be mounted read-write by
    /// `trialTemplate.volumeMounts`; a trial writes under `<mountPath>/seedsweep-checkpoints/<namespace>/<sweep>/<trial>/`.
    /// Ignored by `seedsweep run`, which keeps them in the state directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub volume: Option<String>,
}

fn default_parallelism() -> u32 {
    1
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailFastSpec {
    /// 0 turns fail-fast off.
    #[serde(default = "default_fail_fast_after")]
    #[schemars(range(min = 0, max = 10000))]
    pub after_failures: u32,
}

impl Default for FailFastSpec {
    fn default() -> Self {
        FailFastSpec {
            after_failures: default_fail_fast_after(),
        }
    }
}

fn default_fail_fast_after() -> u32 {
    3
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    pub name: Task,
    /// Directory holding the task's `train.tsv` and `dev.tsv` (GLUE layout), inside the trial's container or, for
    /// `seedsweep run`, on this machine (relative paths are relative to the manifest).
    #[schemars(length(min = 1))]
    pub data_dir: String,
    /// Train on only the first `trainSubset` training examples (for quick runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub train_subset: Option<u32>,
    /// Evaluate on only the first `devSubset` dev examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub dev_subset: Option<u32>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// A Hugging-Face-format model directory (`config.json`, `model.safetensors`, `tokenizer.json` or `vocab.txt`).
    #[schemars(length(min = 1))]
    pub path: String,
}

/// Which (weight-init, data-order) seed pairs the sweep trains. Without `pairs` or `sample`, the full grid of
/// `weightInit` × `dataOrder`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SeedsSpec {
    /// Seeds of the task head's random initialization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_init: Option<SeedList>,
    /// Seeds of the training data's order (and, by default, of dropout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_order: Option<SeedList>,
    /// An explicit list of pairs instead of a grid; `weightInit` and `dataOrder` must then be absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10000))]
    pub pairs: Option<Vec<SeedPair>>,
    /// Train only `count` pairs drawn uniformly without replacement from the grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleSpec>,
}

/// Seed values, either listed, as the range `start, start + 1, …, start + count − 1`, or (weight-init seeds only)
/// the best seeds of earlier sweeps (`fromSweeps`). Exactly one form.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SeedList {
    /// The seeds. In the spec a plan was made from (`status.engine.spec`), also the seeds `fromSweeps` chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10000))]
    pub values: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub count: Option<u32>,
    /// The `top` weight-init seeds of earlier sweeps, ranked by their mean rank across those sweeps (Dodge et al.
    /// 2020 found weight-init seeds that do well on one task tend to do well on others). Resolved once, when the
    /// sweep starts, after every named sweep has finished; the plan keeps the seeds chosen then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_sweeps: Option<FromSweeps>,
}

/// Seeds taken from earlier sweeps' results.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FromSweeps {
    /// The earlier sweeps, by name: SeedSweeps in this sweep's namespace, or for `seedsweep run` the state
    /// directories of those names beside this sweep's (`seedsweep-state/<name>` by default).
    #[schemars(length(min = 1, max = 100))]
    pub sweeps: Vec<String>,
    /// How many seeds to take, best first.
    #[schemars(range(min = 1, max = 10000))]
    pub top: u32,
}

impl SeedList {
    /// The list as a user wrote it: without the seeds `fromSweeps` resolved to (which the plan's spec records), so
    /// a live spec compares equal to the spec its plan was made from.
    pub fn as_written(&self) -> SeedList {
        let mut list = self.clone();
        if list.from_sweeps.is_some() {
            list.values = None;
        }
        list
    }
}

impl SeedsSpec {
    /// See [`SeedList::as_written`].
    pub fn as_written(&self) -> SeedsSpec {
        SeedsSpec {
            weight_init: self.weight_init.as_ref().map(SeedList::as_written),
            data_order: self.data_order.as_ref().map(SeedList::as_written),
            ..self.clone()
        }
    }
}

#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct SeedPair {
    pub weight_init: u64,
    pub data_order: u64,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SampleSpec {
    #[schemars(range(min = 1, max = 10000))]
    pub count: u32,
    /// Seed of the draw, so that a sample is reproducible.
    #[serde(default)]
    pub seed: u64,
}

/// Fine-tuning hyperparameters, shared by every trial. Defaults are the paper's, except the batch size.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainingSpec {
    #[serde(default = "default_epochs")]
    #[schemars(range(min = 1, max = 1000))]
    pub epochs: u32,
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 65536))]
    pub batch_size: u32,
    #[serde(default = "default_learning_rate")]
    #[schemars(extend("exclusiveMinimum" = true, "minimum" = 0.0, "maximum" = 1.0))]
    pub learning_rate: f64,
    #[serde(default = "default_max_seq_length")]
    #[schemars(range(min = 8, max = 8192))]
    pub max_seq_length: u32,
    #[serde(default = "default_warmup_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub warmup_ratio: f64,
    #[serde(default = "default_weight_decay")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub weight_decay: f64,
    /// Evaluations on the dev set per epoch, evenly spaced in steps (the paper: 10).
    #[serde(default = "default_evals_per_epoch")]
    #[schemars(range(min = 1, max = 1000))]
    pub evals_per_epoch: u32,
    /// Which seed drives dropout masks. The paper's code reseeded the global generator with the data-order seed
    /// before training, so dropout followed the data order there.
    #[serde(default)]
    pub dropout_seed: DropoutSeed,
    /// Arithmetic of the trainer's matrix products: `fp32` (default), or `bf16`, mixed precision with fp32 weights,
    /// optimizer state, normalisation and loss. Trials of one precision are reproducible among themselves; the two
    /// precisions give different (close) curves, so compare seeds within one.
    #[serde(default)]
    pub precision: Precision,
}

fn default_epochs() -> u32 {
    3
}
fn default_batch_size() -> u32 {
    32
}
fn default_learning_rate() -> f64 {
    2e-5
}
fn default_max_seq_length() -> u32 {
    128
}
fn default_warmup_ratio() -> f64 {
    0.1
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_evals_per_epoch() -> u32 {
    10
}

impl Default for TrainingSpec {
    fn default() -> Self {
        TrainingSpec {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            learning_rate: default_learning_rate(),
            max_seq_length: default_max_seq_length(),
            warmup_ratio: default_warmup_ratio(),
            weight_decay: default_weight_decay(),
            evals_per_epoch: default_evals_per_epoch(),
            dropout_seed: DropoutSeed::default(),
            precision: Precision::default(),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum DropoutSeed {
    #[default]
    DataOrder,
    WeightInit,
}

impl DropoutSeed {
    /// The trainer's `--dropout-seed-from` value.
    pub fn as_trainer_arg(self) -> &'static str {
        match self {
            DropoutSeed::DataOrder => "do",
            DropoutSeed::WeightInit => "wi",
        }
    }
}

/// The trainer's compute precision (`--precision`): fp32 throughout, or bf16 matrix products (weights and
/// activations rounded to bfloat16 for each product, accumulated in fp32) around fp32 master weights.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Bf16];

    /// The spec's value, which is also the trainer's `--precision` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a precision; use fp32 or bf16"))
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveSpec {
    pub metric: MetricName,
    #[serde(default)]
    pub direction: Direction,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    #[default]
    Maximize,
    Minimize,
}

impl Direction {
    /// True when `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Maximize => a > b,
            Direction::Minimize => a < b,
        }
    }
}

/// Early discarding (Dodge et al. 2020, §5): evaluate every trial after a fraction of training and continue only the
/// best. One rung is the paper's algorithm; several rungs give successive halving.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EarlyDiscardSpec {
    #[serde(default)]
    pub mode: DiscardMode,
    #[schemars(length(min = 1, max = 16))]
    pub rungs: Vec<RungSpec>,
    /// `asynchronous` only: how many trials must have reached a rung before it discards any.
    #[serde(default = "default_min_observations")]
    #[schemars(range(min = 1, max = 10000))]
    pub min_observations: u32,
}

fn default_min_observations() -> u32 {
    2
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum DiscardMode {
    /// The trials that train to completion are exactly the offline algorithm's top-p at every rung, among all trials
    /// of the sweep. A trial in the top so far whose place later trials may still take is paused at the rung and
    /// relaunched (same seeds) once kept; one that is certain to be kept continues at once.
    #[default]
    Exact,
    /// ASHA-style: continue when within the top fraction of the trials that reached the rung so far. Never preempts.
    Asynchronous,
}

/// One evaluation point at which trials are ranked. Exactly one of `keepFraction` and `keepCount`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RungSpec {
    /// Fraction of training after which trials are ranked, in (0, 1). A trial is ranked by its first evaluation at
    /// or after this point.
    #[schemars(extend("exclusiveMinimum" = true, "minimum" = 0.0, "exclusiveMaximum" = true, "maximum" = 1.0))]
    pub at_fraction: f64,
    /// Fraction of the trials ranked at this rung that continue, in (0, 1]; rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("exclusiveMinimum" = true, "minimum" = 0.0, "maximum" = 1.0))]
    pub keep_fraction: Option<f64>,
    /// How many trials ranked at this rung continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub keep_count: Option<u32>,
}

/// A trial whose evaluation metric, at or after `afterFraction` of training, is no better than the majority-class
/// baseline plus `margin` has diverged (it predicts one class) and is discarded at once. A NaN or infinite loss
/// always counts as divergence.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DivergenceSpec {
    #[serde(default = "default_divergence_after")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub after_fraction: f64,
    #[serde(default = "default_divergence_margin")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub margin: f64,
}

fn default_divergence_after() -> f64 {
    0.3
}
fn default_divergence_margin() -> f64 {
    0.005
}

/// Settings of every trial's pod. Volumes are restricted to kinds that cannot reach the node: no hostPath, no
/// privileged anything.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrialTemplate {
    /// Container image holding `seedsweep-trainer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Always", "IfNotPresent", "Never"]))]
    pub image_pull_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Requests and limits, e.g. `limits: {nvidia.com/gpu: 1}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub volumes: Vec<TrialVolume>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub volume_mounts: Vec<TrialVolumeMount>,
    /// Port of the trainer's Prometheus endpoint inside the pod.
    #[serde(default = "default_metrics_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub metrics_port: u16,
    /// Extra arguments appended to the trainer's command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

fn default_metrics_port() -> u16 {
    9090
}

impl Default for TrialTemplate {
    fn default() -> Self {
        TrialTemplate {
            image: None,
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            affinity: None,
            priority_class_name: None,
            service_account_name: None,
            env: Vec::new(),
            volumes: Vec::new(),
            volume_mounts: Vec::new(),
            metrics_port: default_metrics_port(),
            extra_args: Vec::new(),
        }
    }
}

/// A pod volume of one of the allowed kinds. Exactly one source.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrialVolume {
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrialVolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
}

impl SeedSweepSpec {
    /// The objective with the task's default filled in.
    pub fn objective(&self) -> ObjectiveSpec {
        self.objective.unwrap_or(ObjectiveSpec {
            metric: self.task.name.default_metric(),
            direction: Direction::Maximize,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Status

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SeedSweepStatus {
    // Not an Option: schemars renders an optional enum with a `null` member, which kubectl's validation rejects.
    #[serde(default)]
    pub phase: SweepPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub counts: TrialCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_trial: Option<BestTrial>,
    /// The best trial's score rounded to 4 decimals, for `kubectl get` (printer columns cannot round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_score: Option<String>,
    /// One record per trial launched so far, in launch order; trials not launched yet are only counted
    /// (`counts.pending`), so that a large sweep's status stays small at creation. At most 1,000 records: beyond
    /// that, the trials not ended come first, then the kept ones best first, then the latest launched; the others
    /// are counted in `trialsOmitted` (`seedsweep report ssw/NAME` lists every trial).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<TrialRecord>,
    /// Records left out of `trials` to keep the object within etcd's size limit.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub trials_omitted: u32,
    /// Seed statistics over the trials finished so far (which trials each number uses is stated inside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<SweepStatistics>,
    /// Whether paused and retried trials continue from checkpoints (and where they are), or train again from the
    /// beginning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoints: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Events decided on and not yet published: written with the decision that caused them and published once the
    /// Jobs have been changed, so an operator restarted in between publishes them then (at least once: one may be
    /// published twice, none is lost). Cleared at the next status write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpublished_events: Vec<UnpublishedEvent>,
    /// The operator's memory of the sweep (the plan's spec as first seen, every evaluation recorded, how each trial
    /// ran). Written before any decision is acted on, so a restarted operator decides the same way. Internal. Its
    /// trials are in the ConfigMaps `<sweep>-engine-<k>` it names (`trialChunks`), which the sweep owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::sweep::opaque_object")]
    pub engine: Option<serde_json::Value>,
}

/// A Kubernetes Event as the operator will publish it about the sweep.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UnpublishedEvent {
    /// The event's reason, e.g. `TrialDiscarded`.
    pub reason: String,
    /// A Warning event rather than a Normal one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
    pub note: String,
    /// The trial's Job, for trial events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// An object whose fields the apiserver keeps as they are.
fn opaque_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SweepPhase {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Invalid,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrialCounts {
    pub total: u32,
    pub pending: u32,
    /// Training now (phase Running).
    pub running: u32,
    /// Stopped at an exact-mode rung until its decision is final (phase AwaitingDecision).
    #[serde(default)]
    pub paused: u32,
    /// Running, but the pod cannot start (phase Stuck).
    #[serde(default)]
    pub stuck: u32,
    /// Trained to completion and kept.
    pub succeeded: u32,
    pub discarded: u32,
    pub diverged: u32,
    pub failed: u32,
}

impl TrialCounts {
    /// How many trials are in `phase`.
    pub fn of(&self, phase: TrialPhase) -> u32 {
        match phase {
            TrialPhase::Pending => self.pending,
            TrialPhase::Running => self.running,
            TrialPhase::AwaitingDecision => self.paused,
            TrialPhase::Stuck => self.stuck,
            TrialPhase::Succeeded => self.succeeded,
            TrialPhase::Discarded => self.discarded,
            TrialPhase::Diverged => self.diverged,
            TrialPhase::Failed => self.failed,
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BestTrial {
    pub name: String,
    pub weight_init: u64,
    pub data_order: u64,
    pub score: f64,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrialPhase {
    /// Planned, not started.
    Pending,
    Running,
    /// Paused at an exact-mode rung (or, rarely, trained to completion) while its decision there is not final:
    /// trials still to come may beat it. Relaunched from the beginning if it is kept.
    AwaitingDecision,
    /// Trained to completion and kept.
    Succeeded,
    /// Stopped (or, having completed, not kept) because it fell outside the top at a rung.
    Discarded,
    Diverged,
    Failed,
    /// Running, but its pod cannot start: unschedulable, image pull, container config or crash loop; the reason
    /// says which. It fails after `trialStartTimeoutSeconds` when that is set.
    Stuck,
}

impl TrialPhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TrialPhase::Succeeded
                | TrialPhase::Discarded
                | TrialPhase::Diverged
                | TrialPhase::Failed
        )
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrialRecord {
    pub name: String,
    pub weight_init: u64,
    pub data_order: u64,
    pub phase: TrialPhase,
    /// How many times the trial was launched (a kept trial paused at an exact-mode rung is launched again).
    #[serde(default)]
    pub attempts: u32,
    /// Fraction of training done, 0..=1.
    #[serde(default)]
    pub progress: f64,
    #[serde(default)]
    pub steps_done: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_steps: Option<u64>,
    /// The objective at each rung the trial reached, and the decision taken there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rungs: Vec<RungRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_score: Option<f64>,
    /// Why the trial was discarded, diverged or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RungRecord {
    pub rung: u32,
    /// Training progress of the evaluation used for this rung.
    pub progress: f64,
    pub score: f64,
    pub decision: RungDecision,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RungDecision {
    /// In the top so far, but later trials may still beat it (exact mode): paused until that is settled.
    ContinueProvisional,
    Continue,
    Discard,
}
