//! Recorded learning curves (`bench/curves/*.json`, written by `seedsweep-extract-curves`) and how the stand-in
//! replays them: which recorded curve a seed pair gets, and what it serves at each of the sweep's evaluation points.
//!
//! **Mapping** (deterministic, a pure function of the file, the seed pair and the evaluation points):
//! 1. *Which curve*: `splitmix(wi, do) mod n` over the file's curves, so every pair gets one recorded run and the
//!    36 recorded runs are spread evenly over a 25 × 25 grid.
//! 2. *Where*: the sweep's evaluation points (`evals_per_epoch × epochs`, at `step / total_steps`) are placed on
//!    the recorded curve by progress and linearly interpolated between its evaluations. Before its first
//!    evaluation the curve starts from the majority baseline at progress 0 (an untrained head predicts one class);
//!    after its last it stays there.
//! 3. *Perturbation*: a shift `s = w + d + e` where `w` is uniform in ±[`WI_SPREAD`] from the WI seed alone, `d`
//!    in ±[`DO_SPREAD`] from the DO seed alone and `e` in ±[`EVAL_NOISE`] from the pair and the evaluation's index.
//!    Accuracy and F1 move by `s`, MCC (twice the range) by `2s`, each clamped to its range; `acc_and_f1` is their
//!    mean again. So 625 pairs give 625 distinct curves, with a WI effect and a DO effect of about the size the
//!    recorded sweep shows (its final accuracies span a few points), and ties between trials are practically absent.
//! 4. *Collapsed runs* (optional, `diverge_fraction`): the pairs whose own uniform draw falls below the fraction
//!    serve the majority baseline at every evaluation, unperturbed — what a fine-tuning run that collapsed to one
//!    class scores (Dodge et al. saw such runs); a sweep's `divergence` rule stops them.
//!
//! **Metrics not recorded.** The engine's snapshot keeps only the objective per evaluation; the extractor takes
//! all four metrics from each trial's `summary.json` when it is there. For a point without them the other metrics
//! are *derived*, not measured: as for a balanced binary classifier with symmetric errors at that accuracy `a`:
//! `f1 = a`, `mcc = 2a − 1`, `acc_and_f1 = a` (with `a` = the objective, or `(mcc + 1) / 2` when the objective is
//! MCC); the objective itself is always the recorded value.

use seedsweep_crds::{MetricName, Metrics, Task};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Raised whenever the file's shape changes.
pub const FORMAT_VERSION: u32 = 1;
/// Half-width of the per-WI-seed shift of a whole curve (accuracy points / 100).
pub const WI_SPREAD: f64 = 0.010;
/// Half-width of the per-DO-seed shift of a whole curve.
pub const DO_SPREAD: f64 = 0.010;
/// Half-width of the per-evaluation jitter.
pub const EVAL_NOISE: f64 = 0.004;

/// A file of recorded curves.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CurveFile {
    pub format_version: u32,
    pub source: CurveSource,
    pub curves: Vec<RecordedCurve>,
}

/// The sweep the curves were recorded in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CurveSource {
    pub sweep: String,
    pub task: Task,
    /// The metric the engine recorded as each evaluation's score.
    pub objective: MetricName,
    pub model: String,
    pub epochs: u64,
    pub batch_size: u64,
    pub evals_per_epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_subset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_subset: Option<u64>,
    /// Trials of the sweep that were left out (not trained to completion when extracted).
    pub trials_left_out: Vec<String>,
}

/// One trial's whole run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordedCurve {
    pub trial: String,
    pub wi_seed: u64,
    pub do_seed: u64,
    pub total_steps: u64,
    pub majority_baseline: Metrics,
    pub evals: Vec<RecordedPoint>,
}

/// One evaluation of a recorded run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordedPoint {
    pub step: u64,
    /// The objective as the engine recorded it.
    pub objective: f64,
    /// All four metrics, from the trainer's summary; absent when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Mean training loss of the steps since the previous evaluation, from the summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CurveError {
    #[error("cannot read the curves file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the curves file {path} is not a curves file: {message}")]
    Parse { path: String, message: String },
    #[error("the curves file {path}: {field}: {message}")]
    Invalid {
        path: String,
        field: String,
        message: String,
    },
}

impl CurveFile {
    pub fn load(path: &Path) -> Result<CurveFile, CurveError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CurveError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: CurveFile = serde_json::from_str(&text).map_err(|e| CurveError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        file.validate()
            .map_err(|(field, message)| CurveError::Invalid {
                path: shown,
                field,
                message,
            })?;
        Ok(file)
    }

    /// Every problem that would make a replay wrong rather than merely odd, as (field path, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |field: String, message: String| Err((field, message));
        if self.format_version != FORMAT_VERSION {
            return bad(
                "formatVersion".into(),
                format!(
                    "{}, this stand-in reads {FORMAT_VERSION}",
                    self.format_version
                ),
            );
        }
        if self.source.epochs == 0 || self.source.batch_size == 0 {
            return bad(
                "source".into(),
                "epochs and batchSize must be at least 1".into(),
            );
        }
        if self.curves.is_empty() {
            return bad("curves".into(), "no curves".into());
        }
        for (i, c) in self.curves.iter().enumerate() {
            let at = |f: &str| format!("curves[{i}].{f}");
            if c.total_steps == 0 {
                return bad(at("totalSteps"), "must be at least 1".into());
            }
            if let Err(m) = check_metrics(&c.majority_baseline) {
                return bad(at("majorityBaseline"), m);
            }
            if c.evals.is_empty() {
                return bad(at("evals"), "no evaluations".into());
            }
            let mut last = 0;
            for (j, e) in c.evals.iter().enumerate() {
                let at = |f: &str| format!("curves[{i}].evals[{j}].{f}");
                if e.step <= last || e.step > c.total_steps {
                    return bad(
                        at("step"),
                        format!(
                            "{} is not after the previous evaluation's {last} and within totalSteps {}",
                            e.step, c.total_steps
                        ),
                    );
                }
                last = e.step;
                if !e.objective.is_finite() {
                    return bad(at("objective"), format!("{} is not finite", e.objective));
                }
                if let Some(m) = &e.metrics {
                    check_metrics(m).or_else(|m| bad(at("metrics"), m))?;
                    let recorded = m.get(self.source.objective);
                    if (recorded - e.objective).abs() > 1e-9 {
                        return bad(
                            at("objective"),
                            format!(
                                "{} but metrics.{} is {recorded}",
                                e.objective, self.source.objective
                            ),
                        );
                    }
                }
                if e.train_loss.is_some_and(|l| !l.is_finite() || l < 0.0) {
                    return bad(
                        at("trainLoss"),
                        "must be a finite, non-negative loss".into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// Optimizer steps per epoch of the recorded runs, for a sweep that does not say how many examples it trains on.
    pub fn steps_per_epoch(&self) -> u64 {
        (self.curves[0].total_steps / self.source.epochs).max(1)
    }
}

fn check_metrics(m: &Metrics) -> Result<(), String> {
    for name in MetricName::ALL {
        let v = m.get(name);
        let (lo, hi) = if name == MetricName::Mcc {
            (-1.0, 1.0)
        } else {
            (0.0, 1.0)
        };
        if !(lo..=hi).contains(&v) {
            return Err(format!("{name} {v} is outside [{lo}, {hi}]"));
        }
    }
    Ok(())
}

/// What one seed pair is served: the recorded curve it replays, how it is shifted, and every evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedCurve {
    /// The recorded trial replayed.
    pub recorded_trial: String,
    pub majority_baseline: Metrics,
    /// The whole-curve shift `w + d` (before the per-evaluation jitter).
    pub offset: f64,
    pub collapsed: bool,
    /// One per evaluation point asked for, in order.
    pub evals: Vec<Metrics>,
    /// Training loss to report at each evaluation point (interpolated like the metrics), if recorded.
    pub train_loss: Vec<Option<f64>>,
}

/// splitmix64's finaliser: a well-mixed 64-bit value from a few integers, identical on every platform.
fn mix(parts: &[u64]) -> u64 {
    let mut h: u64 = 0x5EED_5EED_5EED_5EED;
    for &p in parts {
        h = h.wrapping_add(p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

/// Uniform in [0, 1) from `parts`.
fn unit(parts: &[u64]) -> f64 {
    (mix(parts) >> 11) as f64 / (1u64 << 53) as f64
}

/// Uniform in [-half, half) from `parts`.
fn symmetric(half: f64, parts: &[u64]) -> f64 {
    half * (2.0 * unit(parts) - 1.0)
}

// Domain tags, so the draws for different purposes are independent.
const PICK: u64 = 1;
const WI: u64 = 2;
const DO: u64 = 3;
const EVAL: u64 = 4;
const COLLAPSE: u64 = 5;

/// The four metrics of a point: recorded, or derived from the objective (see the module's documentation).
fn point_metrics(objective: MetricName, p: &RecordedPoint) -> Metrics {
    if let Some(m) = p.metrics {
        return m;
    }
    let a = match objective {
        MetricName::Mcc => (p.objective + 1.0) / 2.0,
        _ => p.objective,
    }
    .clamp(0.0, 1.0);
    let mut m = Metrics {
        accuracy: a,
        f1: a,
        mcc: 2.0 * a - 1.0,
        acc_and_f1: a,
    };
    m.set(objective, p.objective);
    m
}

fn lerp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t
}

fn lerp_metrics(a: &Metrics, b: &Metrics, t: f64) -> Metrics {
    let mut m = Metrics::default();
    for name in MetricName::ALL {
        m.set(name, lerp(a.get(name), b.get(name), t));
    }
    m
}

fn shifted(m: &Metrics, s: f64) -> Metrics {
    let accuracy = (m.accuracy + s).clamp(0.0, 1.0);
    let f1 = (m.f1 + s).clamp(0.0, 1.0);
    Metrics {
        accuracy,
        f1,
        mcc: (m.mcc + 2.0 * s).clamp(-1.0, 1.0),
        acc_and_f1: (accuracy + f1) / 2.0,
    }
}

/// The curve served to the pair (`wi`, `do_`) at the evaluation points `progress` (each in (0, 1]).
pub fn serve_curve(
    file: &CurveFile,
    wi: u64,
    do_: u64,
    progress: &[f64],
    diverge_fraction: f64,
) -> ServedCurve {
    let curve = &file.curves[(mix(&[PICK, wi, do_]) % file.curves.len() as u64) as usize];
    let baseline = curve.majority_baseline;
    let collapsed = unit(&[COLLAPSE, wi, do_]) < diverge_fraction;
    let offset = symmetric(WI_SPREAD, &[WI, wi]) + symmetric(DO_SPREAD, &[DO, do_]);
    // The recorded points with the progress-0 anchor in front.
    let total = curve.total_steps as f64;
    let first_loss = curve.evals.iter().find_map(|e| e.train_loss);
    let mut knots: Vec<(f64, Metrics, Option<f64>)> = vec![(0.0, baseline, first_loss)];
    knots.extend(curve.evals.iter().map(|e| {
        (
            e.step as f64 / total,
            point_metrics(file.source.objective, e),
            e.train_loss,
        )
    }));
    let mut evals = Vec::with_capacity(progress.len());
    let mut train_loss = Vec::with_capacity(progress.len());
    for (index, &p) in progress.iter().enumerate() {
        let after = knots.iter().position(|k| k.0 >= p);
        let (metrics, loss) = match after {
            Some(0) => (knots[0].1, knots[0].2),
            Some(j) => {
                let (a, b) = (&knots[j - 1], &knots[j]);
                let t = (p - a.0) / (b.0 - a.0);
                let loss = match (a.2, b.2) {
                    (Some(x), Some(y)) => Some(lerp(x, y, t)),
                    (x, y) => y.or(x),
                };
                (lerp_metrics(&a.1, &b.1, t), loss)
            }
            None => {
                let last = knots.last().expect("the anchor is always there");
                (last.1, last.2)
            }
        };
        if collapsed {
            evals.push(baseline);
        } else {
            let jitter = symmetric(EVAL_NOISE, &[EVAL, wi, do_, index as u64]);
            evals.push(shifted(&metrics, offset + jitter));
        }
        train_loss.push(loss);
    }
    ServedCurve {
        recorded_trial: curve.trial.clone(),
        majority_baseline: baseline,
        offset,
        collapsed,
        evals,
        train_loss,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn m(a: f64, f1: f64, mcc: f64) -> Metrics {
        Metrics {
            accuracy: a,
            f1,
            mcc,
            acc_and_f1: (a + f1) / 2.0,
        }
    }

    fn point(step: u64, metrics: Metrics) -> RecordedPoint {
        RecordedPoint {
            step,
            objective: metrics.accuracy,
            metrics: Some(metrics),
            train_loss: Some(0.5),
        }
    }

    pub(crate) fn file(curves: usize) -> CurveFile {
        CurveFile {
            format_version: FORMAT_VERSION,
            source: CurveSource {
                sweep: "rec".into(),
                task: Task::Sst2,
                objective: MetricName::Accuracy,
                model: "minilm".into(),
                epochs: 2,
                batch_size: 16,
                evals_per_epoch: 2,
                train_subset: Some(160),
                dev_subset: None,
                trials_left_out: vec![],
            },
            curves: (0..curves)
                .map(|c| RecordedCurve {
                    trial: format!("rec-w{c}-d1"),
                    wi_seed: c as u64,
                    do_seed: 1,
                    total_steps: 20,
                    majority_baseline: m(0.5, 0.6, 0.0),
                    evals: vec![
                        point(5, m(0.6, 0.6, 0.2)),
                        point(10, m(0.7, 0.7, 0.4)),
                        point(15, m(0.8, 0.8, 0.6)),
                        point(20, m(0.8 + c as f64 / 100.0, 0.8, 0.6)),
                    ],
                })
                .collect(),
        }
    }

    #[test]
    fn the_same_pair_is_always_served_the_same_curve() {
        let f = file(3);
        let p = [0.25, 0.5, 1.0];
        assert_eq!(
            serve_curve(&f, 4, 7, &p, 0.0),
            serve_curve(&f, 4, 7, &p, 0.0)
        );
    }

    #[test]
    fn a_grid_of_625_pairs_gets_625_distinct_curves_using_every_record() {
        let f = file(6);
        let p: Vec<f64> = (1..=30).map(|i| f64::from(i) / 30.0).collect();
        let mut finals = Vec::new();
        let mut used = std::collections::BTreeSet::new();
        for wi in 1..=25 {
            for do_ in 1..=25 {
                let s = serve_curve(&f, wi, do_, &p, 0.0);
                used.insert(s.recorded_trial.clone());
                finals.push(s.evals.last().unwrap().accuracy);
            }
        }
        assert_eq!(used.len(), 6);
        finals.sort_by(f64::total_cmp);
        finals.dedup();
        assert_eq!(finals.len(), 625);
    }

    #[test]
    fn served_points_follow_the_record_within_the_perturbation() {
        let f = file(1);
        let s = serve_curve(&f, 1, 1, &[0.125, 0.25, 0.625, 1.0], 0.0);
        let bound = WI_SPREAD + DO_SPREAD + EVAL_NOISE + 1e-12;
        // 0.125 is halfway between the anchor (baseline 0.5 at 0) and the first eval (0.6 at 0.25).
        for (got, want) in s.evals.iter().zip([0.55, 0.6, 0.75, 0.8]) {
            assert!((got.accuracy - want).abs() <= bound, "{got:?} vs {want}");
            assert!((got.acc_and_f1 - (got.accuracy + got.f1) / 2.0).abs() < 1e-12);
        }
        // The whole curve moves together: differences between points keep the record's shape up to the jitter.
        let rise = s.evals[3].accuracy - s.evals[0].accuracy;
        assert!((rise - 0.25).abs() <= 2.0 * EVAL_NOISE + 1e-12, "{rise}");
    }

    #[test]
    fn a_wi_seed_shifts_all_its_trials_alike() {
        let f = file(1);
        let p = [1.0];
        let offsets: Vec<f64> = (1..=5)
            .map(|d| serve_curve(&f, 3, d, &p, 0.0).offset - serve_curve(&f, 4, d, &p, 0.0).offset)
            .collect();
        for o in &offsets {
            assert!((o - offsets[0]).abs() < 1e-12, "{offsets:?}");
        }
    }

    #[test]
    fn collapsed_runs_serve_the_majority_baseline() {
        let f = file(2);
        let p = [0.5, 1.0];
        let collapsed: Vec<ServedCurve> = (1..=20)
            .flat_map(|w| (1..=20).map(move |d| (w, d)))
            .map(|(w, d)| serve_curve(&f, w, d, &p, 0.1))
            .filter(|s| s.collapsed)
            .collect();
        assert!((20..=60).contains(&collapsed.len()), "{}", collapsed.len());
        for s in collapsed {
            assert!(s.evals.iter().all(|e| *e == s.majority_baseline));
        }
        assert!(!serve_curve(&f, 1, 1, &p, 0.0).collapsed);
    }

    #[test]
    fn metrics_missing_from_the_record_are_derived_from_the_objective() {
        let mut f = file(1);
        for e in &mut f.curves[0].evals {
            e.metrics = None;
        }
        let d = point_metrics(MetricName::Accuracy, &f.curves[0].evals[1]);
        assert_eq!(d.accuracy, 0.7);
        assert!((d.mcc - 0.4).abs() < 1e-12 && d.f1 == 0.7 && d.acc_and_f1 == 0.7);
        let mut p = f.curves[0].evals[1].clone();
        p.objective = 0.5;
        let d = point_metrics(MetricName::Mcc, &p);
        assert_eq!(d.mcc, 0.5);
        assert_eq!(d.accuracy, 0.75);
    }

    #[test]
    fn bad_files_are_refused_naming_the_field() {
        let mut f = file(1);
        f.curves[0].evals[2].step = 10;
        let (field, msg) = f.validate().unwrap_err();
        assert_eq!(field, "curves[0].evals[2].step");
        assert!(msg.contains("previous evaluation's 10"), "{msg}");

        let mut f = file(1);
        f.curves[0].evals[0].objective = 0.9;
        let (field, _) = f.validate().unwrap_err();
        assert_eq!(field, "curves[0].evals[0].objective");

        let mut f = file(1);
        f.curves[0].majority_baseline.mcc = 2.0;
        assert_eq!(f.validate().unwrap_err().0, "curves[0].majorityBaseline");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        std::fs::write(&path, "{\"formatVersion\": 1}").unwrap();
        let e = CurveFile::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("c.json") && e.contains("is not a curves file"),
            "{e}"
        );
        let e = CurveFile::load(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.json"), "{e}");
    }
}
