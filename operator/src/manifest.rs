//! Reading SeedSweep manifests: YAML → typed resource, with every problem reported at once and named by its field
//! path. Parsing catches syntax, type and unknown-field errors; [`validate`] catches the cross-field rules that the
//! CRD's OpenAPI schema cannot express on Kubernetes 1.20 (no CEL), plus the schema's own simple constraints so that
//! `seedsweep validate` agrees with the apiserver offline.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use seedsweep_crds::sweep::*;
use seedsweep_crds::{MetricName, Task};
use seedsweep_engine::plan::{keep_of, seed_values};
use seedsweep_engine::snapshot::MAX_EVALS_PER_TRIAL;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use anyhow::Context as _;

/// One problem with a manifest, located by its field path (`spec.training.epochs`) or by line and column for
/// syntax errors.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn err(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        path: path.into(),
        message: message.into(),
    }
}

/// All problems found in one manifest.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ManifestErrors(pub Vec<FieldError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Parses one YAML document into a `SeedSweep` and validates it.
pub fn load(text: &str) -> Result<SeedSweep, ManifestErrors> {
    let mut docs = serde_yaml::Deserializer::from_str(text);
    let Some(doc) = docs.next() else {
        return Err(ManifestErrors(vec![err(
            "",
            "empty manifest: expected a SeedSweep document",
        )]));
    };
    let sweep = parse_document(doc)?;
    if docs.next().is_some() {
        return Err(ManifestErrors(vec![err(
            "",
            "more than one YAML document: put one SeedSweep per file",
        )]));
    }
    Ok(sweep)
}

/// The document as written, before it becomes a `SeedSweep` (whose derived type does not keep apiVersion and kind).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    spec: SeedSweepSpec,
    #[serde(default)]
    status: Option<SeedSweepStatus>,
}

fn parse_document(doc: serde_yaml::Deserializer<'_>) -> Result<SeedSweep, ManifestErrors> {
    let mut unknown = Vec::new();
    let mut on_unknown = |p: serde_ignored::Path<'_>| unknown.push(ignored_path(&p));
    let parsed: Result<Document, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(doc, &mut on_unknown));
    let mut errors: Vec<FieldError> = unknown.into_iter().map(unknown_field_error).collect();
    let doc = match parsed {
        Ok(doc) => doc,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let path = if path == "." { String::new() } else { path };
            // The YAML library names the path too; say it once.
            let message = inner.to_string();
            let message = message
                .strip_prefix(&format!("{path}: "))
                .map(str::to_string)
                .unwrap_or(message);
            errors.push(err(path, message));
            return Err(ManifestErrors(errors));
        }
    };
    let (api_version, kind) = (SeedSweep::api_version(&()), SeedSweep::kind(&()));
    if doc.api_version != api_version {
        errors.push(err(
            "apiVersion",
            format!("must be {api_version}, got {:?}", doc.api_version),
        ));
    }
    if doc.kind != kind {
        errors.push(err("kind", format!("must be {kind}, got {:?}", doc.kind)));
    }
    let sweep = SeedSweep {
        metadata: doc.metadata,
        spec: doc.spec,
        status: doc.status,
    };
    errors.extend(validate(&sweep));
    if errors.is_empty() {
        Ok(sweep)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// `serde_ignored` paths rendered like `serde_path_to_error`'s: `spec.trialTemplate.volumes[0].hostPath`.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

fn unknown_field_error(path: String) -> FieldError {
    let field = path.rsplit('.').next().unwrap_or(&path).to_string();
    let is_volume_source =
        path.starts_with("spec.trialTemplate.volumes[") && path.matches('.').count() == 3;
    let message = if is_volume_source {
        format!(
            "volume kind {field:?} is not allowed; trial volumes may be persistentVolumeClaim, configMap, secret or \
             emptyDir"
        )
    } else {
        format!("unknown field {field:?}")
    };
    err(path, message)
}

/// Every rule a parsed manifest must satisfy, all reported at once.
pub fn validate(sweep: &SeedSweep) -> Vec<FieldError> {
    let mut v = Validator::default();
    let name = sweep.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        v.push("metadata.name", "required");
    } else if !is_dns_label(&name) {
        v.push(
            "metadata.name",
            format!("must be a DNS label (lower-case letters, digits and '-', starting and ending alphanumeric), got {name:?}"),
        );
    }
    let spec = &sweep.spec;
    v.task(&spec.task);
    if spec.model.path.trim().is_empty() {
        v.push("spec.model.path", "must not be empty");
    }
    let trial_count = v.seeds(&spec.seeds, &name);
    v.training(&spec.training);
    v.objective(spec);
    if let Some(ed) = &spec.early_discard {
        v.early_discard(ed, trial_count);
    }
    if let Some(d) = &spec.divergence {
        v.fraction_closed("spec.divergence.afterFraction", d.after_fraction);
        v.fraction_half_open("spec.divergence.margin", d.margin);
    }
    if spec.parallelism == 0 {
        v.push("spec.parallelism", "must be at least 1, got 0");
    }
    if spec.backoff_limit > 10 {
        v.push(
            "spec.backoffLimit",
            format!("must be at most 10, got {}", spec.backoff_limit),
        );
    }
    v.template(&spec.trial_template);
    v.checkpoints(spec);
    v.errors
}

/// How many seeds a list gives, and the largest (0 when not known before the sweep starts).
struct SeedCount {
    count: usize,
    largest: u64,
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The GLUE leaderboard's metrics for each task; other metrics are computed but not meaningful objectives there.
pub fn metrics_for(task: Task) -> &'static [MetricName] {
    match task {
        Task::Mrpc => &[MetricName::AccAndF1, MetricName::Accuracy, MetricName::F1],
        Task::Rte | Task::Sst2 => &[MetricName::Accuracy],
        Task::Cola => &[MetricName::Mcc],
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(err(path, message));
    }

    fn fraction_closed(&mut self, path: &str, x: f64) {
        if !(0.0..=1.0).contains(&x) {
            self.push(path, format!("must be in [0, 1], got {x}"));
        }
    }

    fn fraction_half_open(&mut self, path: &str, x: f64) {
        if !(0.0..1.0).contains(&x) {
            self.push(path, format!("must be in [0, 1), got {x}"));
        }
    }

    fn task(&mut self, task: &TaskSpec) {
        if task.data_dir.trim().is_empty() {
            self.push("spec.task.dataDir", "must not be empty");
        }
        if task.train_subset == Some(0) {
            self.push("spec.task.trainSubset", "must be at least 1, got 0");
        }
        if task.dev_subset == Some(0) {
            self.push("spec.task.devSubset", "must be at least 1, got 0");
        }
    }

    /// Checks the seed selection and returns how many trials it plans (0 when invalid).
    fn seeds(&mut self, seeds: &SeedsSpec, name: &str) -> usize {
        let path = "spec.seeds";
        if let Some(pairs) = &seeds.pairs {
            for (field, present) in [
                ("weightInit", seeds.weight_init.is_some()),
                ("dataOrder", seeds.data_order.is_some()),
                ("sample", seeds.sample.is_some()),
            ] {
                if present {
                    self.push(
                        format!("{path}.{field}"),
                        "must be absent when spec.seeds.pairs lists the pairs",
                    );
                }
            }
            if pairs.is_empty() {
                self.push(format!("{path}.pairs"), "must list at least one pair");
            }
            if pairs.len() > MAX_TRIALS {
                self.push(
                    format!("{path}.pairs"),
                    format!("at most {MAX_TRIALS} pairs, got {}", pairs.len()),
                );
            }
            let mut seen = BTreeMap::new();
            for (i, p) in pairs.iter().enumerate() {
                if let Some(first) = seen.insert(*p, i) {
                    self.push(
                        format!("{path}.pairs[{i}]"),
                        format!(
                            "duplicate of pairs[{first}] (weightInit {}, dataOrder {})",
                            p.weight_init, p.data_order
                        ),
                    );
                    seen.insert(*p, first);
                }
            }
            let max_wi = pairs.iter().map(|p| p.weight_init).max().unwrap_or(0);
            let max_do = pairs.iter().map(|p| p.data_order).max().unwrap_or(0);
            self.trial_name_fits(name, max_wi, max_do);
            return if self.errors.is_empty() {
                pairs.len()
            } else {
                0
            };
        }
        let wi = self.seed_list(
            &format!("{path}.weightInit"),
            seeds.weight_init.as_ref(),
            name,
        );
        let dor = self.seed_list(
            &format!("{path}.dataOrder"),
            seeds.data_order.as_ref(),
            name,
        );
        let (Some(wi), Some(dor)) = (wi, dor) else {
            return 0;
        };
        let grid = wi.count * dor.count;
        self.trial_name_fits(name, wi.largest, dor.largest);
        match seeds.sample {
            Some(sample) => {
                if sample.count == 0 {
                    self.push(format!("{path}.sample.count"), "must be at least 1, got 0");
                    0
                } else if sample.count as usize > grid {
                    self.push(
                        format!("{path}.sample.count"),
                        format!(
                            "must not exceed the grid's {grid} pairs ({} weightInit × {} dataOrder), got {}",
                            wi.count,
                            dor.count,
                            sample.count
                        ),
                    );
                    0
                } else if sample.count as usize > MAX_TRIALS {
                    self.push(
                        format!("{path}.sample.count"),
                        format!("at most {MAX_TRIALS}, got {}", sample.count),
                    );
                    0
                } else {
                    sample.count as usize
                }
            }
            None if grid > MAX_TRIALS => {
                self.push(
                    path,
                    format!(
                        "the grid of {} weightInit × {} dataOrder seeds has {grid} trials, more than the maximum \
                         {MAX_TRIALS}; use fewer seeds or spec.seeds.sample",
                        wi.count,
                        dor.count
                    ),
                );
                0
            }
            None => grid,
        }
    }

    /// Checks one seed list; returns how many seeds it gives and the largest (for the trial names' length).
    fn seed_list(&mut self, path: &str, list: Option<&SeedList>, sweep: &str) -> Option<SeedCount> {
        let Some(list) = list else {
            self.push(path, "required (or list explicit spec.seeds.pairs)");
            return None;
        };
        let before = self.errors.len();
        if let Some(from) = &list.from_sweeps {
            self.seeds_from_sweeps(path, list, from, sweep);
            // The seeds are known once resolved (and the resolved spec is validated again then).
            return (self.errors.len() == before).then_some(SeedCount {
                count: from.top as usize,
                largest: 0,
            });
        }
        match (&list.values, list.start, list.count) {
            (Some(values), None, None) => {
                if values.is_empty() {
                    self.push(format!("{path}.values"), "must list at least one seed");
                }
                if values.len() > MAX_TRIALS {
                    self.push(
                        format!("{path}.values"),
                        format!("at most {MAX_TRIALS} seeds, got {}", values.len()),
                    );
                }
                let mut seen = BTreeSet::new();
                for (i, s) in values.iter().enumerate() {
                    if !seen.insert(*s) {
                        self.push(format!("{path}.values[{i}]"), format!("duplicate seed {s}"));
                    }
                }
            }
            (None, Some(start), Some(count)) => {
                if count == 0 {
                    self.push(format!("{path}.count"), "must be at least 1, got 0");
                } else if count as usize > MAX_TRIALS {
                    self.push(
                        format!("{path}.count"),
                        format!("at most {MAX_TRIALS}, got {count}"),
                    );
                }
                if start.checked_add(u64::from(count)).is_none() {
                    self.push(
                        format!("{path}.start"),
                        format!("start + count overflows a 64-bit seed, got {start}"),
                    );
                }
            }
            (None, None, None) => self.push(path, "must give either values or start and count"),
            (Some(_), _, _) => self.push(path, "give either values or start and count, not both"),
            (None, None, Some(_)) => self.push(format!("{path}.start"), "required with count"),
            (None, Some(_), None) => self.push(format!("{path}.count"), "required with start"),
        }
        (self.errors.len() == before).then(|| {
            let seeds = seed_values(list);
            SeedCount {
                count: seeds.len(),
                largest: seeds.iter().copied().max().unwrap_or(0),
            }
        })
    }

    fn seeds_from_sweeps(&mut self, path: &str, list: &SeedList, from: &FromSweeps, sweep: &str) {
        if !path.ends_with("weightInit") {
            self.push(
                format!("{path}.fromSweeps"),
                "only weightInit seeds can come from earlier sweeps (a data order is specific to its dataset)",
            );
        }
        for (field, present) in [
            ("values", list.values.is_some()),
            ("start", list.start.is_some()),
            ("count", list.count.is_some()),
        ] {
            if present {
                self.push(
                    format!("{path}.{field}"),
                    "must be absent with fromSweeps (the seeds come from the sweeps it names)",
                );
            }
        }
        let at = format!("{path}.fromSweeps");
        if from.sweeps.is_empty() {
            self.push(format!("{at}.sweeps"), "must name at least one sweep");
        }
        let mut seen = BTreeSet::new();
        for (i, name) in from.sweeps.iter().enumerate() {
            if !is_dns_label(name) {
                self.push(
                    format!("{at}.sweeps[{i}]"),
                    format!("must be a SeedSweep's name (a DNS label), got {name:?}"),
                );
            } else if name == sweep {
                self.push(
                    format!("{at}.sweeps[{i}]"),
                    format!("names this sweep itself ({name:?})"),
                );
            } else if !seen.insert(name) {
                self.push(
                    format!("{at}.sweeps[{i}]"),
                    format!("duplicate sweep {name:?}"),
                );
            }
        }
        if from.top == 0 {
            self.push(format!("{at}.top"), "must be at least 1, got 0");
        } else if from.top as usize > MAX_TRIALS {
            self.push(
                format!("{at}.top"),
                format!("at most {MAX_TRIALS}, got {}", from.top),
            );
        }
    }

    fn trial_name_fits(&mut self, name: &str, max_wi: u64, max_do: u64) {
        let longest = trial_name(name, max_wi, max_do);
        if !name.is_empty() && longest.len() > MAX_TRIAL_NAME_LEN {
            self.push(
                "metadata.name",
                format!(
                    "too long: trial names such as {longest:?} ({} characters) must fit in {MAX_TRIAL_NAME_LEN}",
                    longest.len()
                ),
            );
        }
    }

    fn training(&mut self, t: &TrainingSpec) {
        let p = "spec.training";
        if t.epochs == 0 {
            self.push(format!("{p}.epochs"), "must be at least 1, got 0");
        }
        if t.batch_size == 0 {
            self.push(format!("{p}.batchSize"), "must be at least 1, got 0");
        }
        if !(t.learning_rate > 0.0 && t.learning_rate <= 1.0) {
            self.push(
                format!("{p}.learningRate"),
                format!("must be in (0, 1], got {}", t.learning_rate),
            );
        }
        if !(8..=8192).contains(&t.max_seq_length) {
            self.push(
                format!("{p}.maxSeqLength"),
                format!("must be in [8, 8192], got {}", t.max_seq_length),
            );
        }
        self.fraction_closed(&format!("{p}.warmupRatio"), t.warmup_ratio);
        self.fraction_half_open(&format!("{p}.weightDecay"), t.weight_decay);
        if t.evals_per_epoch == 0 {
            self.push(format!("{p}.evalsPerEpoch"), "must be at least 1, got 0");
        }
        let evals = u64::from(t.epochs) * u64::from(t.evals_per_epoch);
        if evals > MAX_EVALS_PER_TRIAL as u64 {
            self.push(
                format!("{p}.evalsPerEpoch"),
                format!(
                    "{} epochs × {} evaluations = {evals} evaluations per trial; at most {MAX_EVALS_PER_TRIAL} are \
                     recorded (the operator keeps every one in ConfigMaps of 1 MiB)",
                    t.epochs, t.evals_per_epoch
                ),
            );
        }
    }

    fn objective(&mut self, spec: &SeedSweepSpec) {
        if let Some(obj) = spec.objective {
            let valid = metrics_for(spec.task.name);
            if !valid.contains(&obj.metric) {
                let names: Vec<_> = valid.iter().map(|m| m.as_str()).collect();
                self.push(
                    "spec.objective.metric",
                    format!(
                        "{} is not a GLUE metric of task {}; use {}",
                        obj.metric,
                        spec.task.name,
                        names.join(" or ")
                    ),
                );
            }
        }
    }

    fn early_discard(&mut self, ed: &EarlyDiscardSpec, trial_count: usize) {
        let p = "spec.earlyDiscard";
        if ed.rungs.is_empty() {
            self.push(format!("{p}.rungs"), "must list at least one rung");
        }
        if ed.min_observations == 0 {
            self.push(format!("{p}.minObservations"), "must be at least 1, got 0");
        }
        let mut previous: Option<f64> = None;
        // Trials ranked at the next rung; unknown once the seeds are invalid (then keep counts are not checked).
        let mut ranked = (trial_count > 0).then_some(trial_count);
        for (i, rung) in ed.rungs.iter().enumerate() {
            let rp = format!("{p}.rungs[{i}]");
            let f = rung.at_fraction;
            if !(f > 0.0 && f < 1.0) {
                self.push(
                    format!("{rp}.atFraction"),
                    format!("must be in (0, 1), got {f}"),
                );
            } else if let Some(prev) = previous.filter(|&prev| f <= prev) {
                self.push(
                    format!("{rp}.atFraction"),
                    format!("rungs must be strictly increasing, got {f} after {prev}"),
                );
            }
            if f.is_finite() {
                previous = Some(f);
            }
            match (rung.keep_fraction, rung.keep_count) {
                (Some(_), Some(_)) => self.push(
                    rp.clone(),
                    "give either keepFraction or keepCount, not both",
                ),
                (None, None) => self.push(rp.clone(), "give keepFraction or keepCount"),
                (Some(q), None) => {
                    if !(q > 0.0 && q <= 1.0) {
                        self.push(
                            format!("{rp}.keepFraction"),
                            format!("must be in (0, 1], got {q}"),
                        );
                        ranked = None;
                    } else {
                        ranked = ranked.map(|n| keep_of(n, q));
                    }
                }
                (None, Some(k)) => {
                    if k == 0 {
                        self.push(format!("{rp}.keepCount"), "must be at least 1, got 0");
                    } else if let Some(n) = ranked.filter(|&n| k as usize > n) {
                        let what = if i == 0 {
                            "trials in the sweep".to_string()
                        } else {
                            format!("trials kept by rungs[{}]", i - 1)
                        };
                        self.push(
                            format!("{rp}.keepCount"),
                            format!("must not exceed the {n} {what}, got {k}"),
                        );
                    }
                    ranked = ranked.map(|n| n.min(k as usize));
                }
            }
        }
    }

    /// A checkpoint volume must outlive a pod (a retry runs in a new one) and be writable where the trainer runs.
    fn checkpoints(&mut self, spec: &SeedSweepSpec) {
        let Some(volume) = spec.checkpoints.as_ref().and_then(|c| c.volume.as_ref()) else {
            return;
        };
        let p = "spec.checkpoints.volume";
        let t = &spec.trial_template;
        match t.volumes.iter().find(|v| &v.name == volume) {
            None => self.push(
                p,
                format!("no volume named {volume:?} in spec.trialTemplate.volumes"),
            ),
            Some(v) if v.persistent_volume_claim.is_none() => self.push(
                p,
                format!(
                    "volume {volume:?} must be a persistentVolumeClaim (typically ReadWriteMany): configMap and \
                     secret volumes are read-only, and an emptyDir dies with its pod"
                ),
            ),
            Some(_) => {
                let mounts: Vec<_> = t.volume_mounts.iter().filter(|m| &m.name == volume).collect();
                if !mounts.iter().any(|m| !m.read_only && m.sub_path.is_none()) {
                    self.push(
                        p,
                        format!(
                            "volume {volume:?} must be mounted read-write, without subPath, by \
                             spec.trialTemplate.volumeMounts"
                        ),
                    );
                }
            }
        }
    }

    /// The operator adds a scratch volume of its own to every trial pod (the root filesystem is read-only).
    fn template(&mut self, t: &TrialTemplate) {
        let p = "spec.trialTemplate";
        let mut names = BTreeSet::new();
        for (i, vol) in t.volumes.iter().enumerate() {
            let vp = format!("{p}.volumes[{i}]");
            if !is_dns_label(&vol.name) {
                self.push(
                    format!("{vp}.name"),
                    format!("must be a DNS label, got {:?}", vol.name),
                );
            }
            if vol.name == SCRATCH_VOLUME {
                self.push(
                    format!("{vp}.name"),
                    format!("{SCRATCH_VOLUME:?} is reserved for the trainer's scratch space"),
                );
            } else if !names.insert(vol.name.as_str()) {
                self.push(
                    format!("{vp}.name"),
                    format!("duplicate volume name {:?}", vol.name),
                );
            }
            let sources = [
                vol.persistent_volume_claim.is_some(),
                vol.config_map.is_some(),
                vol.secret.is_some(),
                vol.empty_dir.is_some(),
            ];
            let n = sources.iter().filter(|s| **s).count();
            if n != 1 {
                self.push(
                    vp,
                    format!(
                        "needs exactly one source (persistentVolumeClaim, configMap, secret or emptyDir), got {n}"
                    ),
                );
            }
        }
        let mut paths = BTreeSet::new();
        for (i, m) in t.volume_mounts.iter().enumerate() {
            let mp = format!("{p}.volumeMounts[{i}]");
            if !names.contains(m.name.as_str()) {
                self.push(
                    format!("{mp}.name"),
                    format!("no volume named {:?} in spec.trialTemplate.volumes", m.name),
                );
            }
            if !m.mount_path.starts_with('/') {
                self.push(
                    format!("{mp}.mountPath"),
                    format!("must be an absolute path, got {:?}", m.mount_path),
                );
            } else if m.mount_path.trim_end_matches('/') == SCRATCH_DIR {
                self.push(
                    format!("{mp}.mountPath"),
                    format!("{SCRATCH_DIR:?} is reserved for the trainer's scratch space"),
                );
            } else if !paths.insert(m.mount_path.as_str()) {
                self.push(
                    format!("{mp}.mountPath"),
                    format!("duplicate mount path {:?}", m.mount_path),
                );
            }
        }
        if let Some(policy) = &t.image_pull_policy
            && !["Always", "IfNotPresent", "Never"].contains(&policy.as_str())
        {
            self.push(
                format!("{p}.imagePullPolicy"),
                format!("must be Always, IfNotPresent or Never, got {policy:?}"),
            );
        }
        if t.metrics_port < 1024 {
            self.push(
                format!("{p}.metricsPort"),
                format!("must be in [1024, 65535], got {}", t.metrics_port),
            );
        }
        for (i, e) in t.env.iter().enumerate() {
            if e.name.is_empty() {
                self.push(format!("{p}.env[{i}].name"), "must not be empty");
            } else if !is_env_name(&e.name) {
                self.push(
                    format!("{p}.env[{i}].name"),
                    format!("must consist of letters, digits, '_', '-' or '.' and not start with a digit, got {:?}", e.name),
                );
            }
        }
        self.kubernetes_values(t);
    }

    /// What the apiserver would reject when the trial's Job is created, by Kubernetes' own rules: names, quantities,
    /// label selectors, tolerations.
    fn kubernetes_values(&mut self, t: &TrialTemplate) {
        let p = "spec.trialTemplate";
        if let Some(image) = &t.image
            && (image.trim().is_empty() || image.chars().any(char::is_whitespace))
        {
            self.push(
                format!("{p}.image"),
                format!("must be an image reference without spaces, got {image:?}"),
            );
        }
        for (field, name) in [
            ("serviceAccountName", &t.service_account_name),
            ("priorityClassName", &t.priority_class_name),
        ] {
            if let Some(name) = name
                && !is_dns_subdomain(name)
            {
                self.push(format!("{p}.{field}"), format!("must be a DNS subdomain (lowercase letters, digits, '-', '.'), got {name:?}"));
            }
        }
        for (i, secret) in t.image_pull_secrets.iter().enumerate() {
            if !is_dns_subdomain(&secret.name) {
                self.push(
                    format!("{p}.imagePullSecrets[{i}].name"),
                    format!("must be a DNS subdomain, got {:?}", secret.name),
                );
            }
        }
        for (key, value) in &t.node_selector {
            if !is_qualified_name(key) {
                self.push(
                    format!("{p}.nodeSelector"),
                    format!("key {key:?} is not a valid label key"),
                );
            }
            if !is_label_value(value) {
                self.push(
                    format!("{p}.nodeSelector.{key}"),
                    format!("{value:?} is not a valid label value"),
                );
            }
        }
        for (i, tol) in t.tolerations.iter().enumerate() {
            let tp = format!("{p}.tolerations[{i}]");
            let operator = tol.operator.as_deref().unwrap_or("Equal");
            if !["Equal", "Exists"].contains(&operator) {
                self.push(
                    format!("{tp}.operator"),
                    format!("must be Equal or Exists, got {operator:?}"),
                );
            }
            if operator == "Exists" && tol.value.as_deref().is_some_and(|v| !v.is_empty()) {
                self.push(
                    format!("{tp}.value"),
                    "must be empty when operator is Exists",
                );
            }
            if let Some(key) = tol.key.as_deref().filter(|k| !k.is_empty())
                && !is_qualified_name(key)
            {
                self.push(
                    format!("{tp}.key"),
                    format!("{key:?} is not a valid label key"),
                );
            }
            if let Some(effect) = tol.effect.as_deref().filter(|e| !e.is_empty())
                && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
            {
                self.push(
                    format!("{tp}.effect"),
                    format!("must be NoSchedule, PreferNoSchedule or NoExecute, got {effect:?}"),
                );
            }
        }
        for (i, vol) in t.volumes.iter().enumerate() {
            let vp = format!("{p}.volumes[{i}]");
            let source_names = [
                (
                    "persistentVolumeClaim.claimName",
                    vol.persistent_volume_claim
                        .as_ref()
                        .map(|c| c.claim_name.clone()),
                ),
                (
                    "configMap.name",
                    vol.config_map.as_ref().map(|c| c.name.clone()),
                ),
                (
                    "secret.secretName",
                    vol.secret
                        .as_ref()
                        .map(|s| s.secret_name.clone().unwrap_or_default()),
                ),
            ];
            for (field, name) in source_names {
                if let Some(name) = name
                    && !is_dns_subdomain(&name)
                {
                    self.push(
                        format!("{vp}.{field}"),
                        format!("must be a DNS subdomain, got {name:?}"),
                    );
                }
            }
        }
        if let Some(resources) = &t.resources {
            self.resources(resources);
        }
    }

    /// Quantities that parse, requests within limits, whole numbers of extended resources (`nvidia.com/gpu`).
    fn resources(&mut self, r: &ResourceRequirements) {
        let p = "spec.trialTemplate.resources";
        let mut parsed = BTreeMap::<(&str, &str), f64>::new();
        for (kind, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (name, quantity) in map.iter().flatten() {
                let field = format!("{p}.{kind}.{name}");
                if !is_qualified_name(name) {
                    self.push(&field, "is not a valid resource name");
                    continue;
                }
                let Some(value) = parse_quantity(&quantity.0) else {
                    self.push(
                        &field,
                        format!("{:?} is not a quantity (e.g. 2, 500m, 8Gi)", quantity.0),
                    );
                    continue;
                };
                if value < 0.0 {
                    self.push(
                        &field,
                        format!("must not be negative, got {:?}", quantity.0),
                    );
                }
                let extended = name.contains('/') && !name.starts_with("kubernetes.io/");
                if extended && value.fract() != 0.0 {
                    self.push(
                        &field,
                        format!("must be a whole number, got {:?}", quantity.0),
                    );
                }
                parsed.insert((kind, name), value);
            }
        }
        for (&(kind, name), &request) in &parsed {
            if kind != "requests" {
                continue;
            }
            let extended = name.contains('/') && !name.starts_with("kubernetes.io/");
            match parsed.get(&("limits", name)) {
                Some(&limit) if request > limit => self.push(
                    format!("{p}.requests.{name}"),
                    format!("must not exceed limits.{name}"),
                ),
                Some(&limit) if extended && request != limit => self.push(
                    format!("{p}.requests.{name}"),
                    format!("must equal limits.{name} for an extended resource"),
                ),
                None if extended => self.push(
                    format!("{p}.limits.{name}"),
                    "is required for an extended resource (set limits; requests default to them)",
                ),
                _ => {}
            }
        }
    }
}

/// A Kubernetes quantity (`2`, `500m`, `1.5`, `8Gi`, `1e3`) as a number; `None` when it does not parse.
fn parse_quantity(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty()
        || digits.contains(['+', '-'])
        || digits.matches('.').count() > 1
        || digits == "."
    {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let e: i32 = exponent[1..].parse().ok()?;
            10f64.powi(e)
        }
        _ => return None,
    };
    Some(value * scale)
}

/// Kubernetes' DNS-1123 subdomain: at most 253 characters, DNS labels joined by dots.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A label value: empty, or at most 63 characters of alphanumerics, '-', '_' and '.', starting and ending with an
/// alphanumeric.
fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A qualified name (label keys, resource names): an optional DNS-subdomain prefix and '/', then a non-empty name
/// of at most 63 characters like a label value.
fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// An environment variable name as the apiserver accepts it: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
fn is_env_name(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Reads and validates one manifest; the error lists every problem, each prefixed with the file name.
pub fn load_file(path: &Path) -> anyhow::Result<SeedSweep> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    load(&text).map_err(|errors| {
        let lines: Vec<String> = errors
            .0
            .iter()
            .map(|e| format!("{}: {e}", path.display()))
            .collect();
        anyhow::anyhow!("invalid manifest\n{}", lines.join("\n"))
    })
}
