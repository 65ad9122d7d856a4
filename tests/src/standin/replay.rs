//! One stand-in trial: the trainer's run (steps, evaluations, a stop between steps) on a clock where the whole run
//! takes `--standin-seconds`, serving the curve `curves::serve_curve` picks for the seed pair.

use super::cli::Cli;
use super::curves::CurveFile;
use super::offline::{Schedule, served_evals};
use seedsweep_crds::Metrics;
use seedsweep_crds::trainer::{EvalPoint, Outcome, TrialSummary};
use seedsweep_crds::trial_metrics::{Identity, TrialMetrics};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the run has produced so far; on any ending, errors included, the summary is built from it.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    #[serde(skip)]
    pub total_steps: u64,
    #[serde(skip)]
    pub steps_done: u64,
    #[serde(skip)]
    pub majority_baseline: Metrics,
    #[serde(skip)]
    pub evals: Vec<EvalPoint>,
    /// Which recorded run was replayed and how: the `--output` file's addition to the trainer's summary.
    pub standin: Option<Replayed>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replayed {
    pub curves: String,
    pub recorded_trial: String,
    pub offset: f64,
    pub collapsed: bool,
    pub trial_seconds: f64,
}

impl RunRecord {
    pub fn summary(&self, id: &Identity, outcome: Outcome, reason: Option<String>) -> TrialSummary {
        TrialSummary {
            sweep: id.sweep.clone(),
            trial: id.trial.clone(),
            wi_seed: id.wi_seed,
            do_seed: id.do_seed,
            outcome,
            reason,
            steps_done: self.steps_done,
            total_steps: self.total_steps,
            majority_baseline: self.majority_baseline,
            final_metrics: match outcome {
                Outcome::Completed => self.evals.last().map(|e| e.metrics),
                _ => None,
            },
            evals: self.evals.clone(),
            dropped_evals: 0,
            resumed_from_step: 0,
        }
    }
}

/// How a run ended when nothing failed.
pub struct Ending {
    pub outcome: Outcome,
    pub reason: Option<String>,
}

/// `--standin-events`: one JSON line per start, evaluation served and end, appended with a single write each so
/// that many stand-ins can share one file.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: Option<PathBuf>,
    trial: String,
    pod: Option<String>,
}

impl EventLog {
    pub fn new(path: Option<PathBuf>, trial: &str) -> Self {
        EventLog {
            path,
            trial: trial.to_string(),
            // Under the node simulator (and the kubelet) HOSTNAME is the pod's name: it tells attempts apart.
            pod: std::env::var("HOSTNAME").ok(),
        }
    }

    pub fn log(&self, event: &str, fields: serde_json::Value) {
        let Some(path) = &self.path else { return };
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut line =
            serde_json::json!({"t": t, "trial": self.trial, "pod": self.pod, "event": event});
        if let (Some(obj), serde_json::Value::Object(extra)) = (line.as_object_mut(), fields) {
            obj.extend(extra);
        }
        let mut text = line.to_string();
        text.push('\n');
        use std::io::Write;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            // Losing a benchmark's event must not end a trial; say so where the pod log shows it.
            eprintln!("warning: cannot append to {}: {e}", path.display());
        }
    }
}

/// Sleeps until `deadline` in short slices; false when a stop was requested first.
fn wait_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// The trainer's linear warmup and decay, for the learning-rate gauge.
fn learning_rate(cli: &Cli, step: u64, total: u64) -> f64 {
    let warmup = (cli.warmup_ratio * total as f64).ceil() as u64;
    let factor = if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        total.saturating_sub(step) as f64 / total.saturating_sub(warmup).max(1) as f64
    };
    cli.learning_rate * factor
}

/// Runs the trial, filling `record` as it goes.
pub fn run(
    cli: &Cli,
    id: &Identity,
    stop: &AtomicBool,
    record: &mut RunRecord,
    events: &EventLog,
) -> Result<Ending, String> {
    let Some(curves_path) = &cli.standin_curves else {
        return Err(format!(
            "no recorded curves: set ${} or --standin-curves",
            super::cli::CURVES_ENV
        ));
    };
    let file = CurveFile::load(curves_path).map_err(|e| e.to_string())?;
    let metrics = TrialMetrics::new(id).map_err(|e| format!("metrics registry: {e}"))?;
    let addr = match cli.metrics_outage() {
        None => metrics.serve(&cli.metrics_addr)?,
        // The server on a private port, and a forwarder that goes away for the window at the requested address.
        Some(w) => {
            let inner = metrics.serve("127.0.0.1:0")?;
            let at = |f: f64| Duration::from_secs_f64(f * cli.standin_seconds);
            super::outage::serve_with_outage(
                &cli.metrics_addr,
                inner,
                Instant::now(),
                (at(w.from), at(w.to)),
                events.clone(),
            )?
        }
    };
    // The local executor reads this line to find the port.
    eprintln!("metrics listening on http://{addr}/metrics");
    let ending = replay(cli, id, stop, record, events, &file, &metrics, curves_path);
    metrics.done.set(1.0);
    Ok(ending)
}

#[allow(clippy::too_many_arguments)]
fn replay(
    cli: &Cli,
    id: &Identity,
    stop: &AtomicBool,
    record: &mut RunRecord,
    events: &EventLog,
    file: &CurveFile,
    metrics: &TrialMetrics,
    curves_path: &std::path::Path,
) -> Ending {
    let plan = Schedule {
        epochs: cli.epochs,
        batch_size: cli.batch_size,
        evals_per_epoch: cli.evals_per_epoch,
        train_subset: cli.train_subset,
    };
    let (per_epoch, total, _) = plan.steps(file);
    let (evals, served) = served_evals(
        file,
        &plan,
        id.wi_seed,
        id.do_seed,
        cli.standin_diverge_fraction,
    );
    record.total_steps = total;
    record.majority_baseline = served.majority_baseline;
    record.standin = Some(Replayed {
        curves: curves_path.display().to_string(),
        recorded_trial: served.recorded_trial.clone(),
        offset: served.offset,
        collapsed: served.collapsed,
        trial_seconds: cli.standin_seconds,
    });
    metrics.total_steps.set(total as f64);
    metrics.set_majority_baseline(&served.majority_baseline);
    if let Some(loss) = served.train_loss.first().copied().flatten() {
        metrics.train_loss.set(loss);
    }
    events.log(
        "start",
        serde_json::json!({
            "totalSteps": total,
            "recordedTrial": served.recorded_trial,
            "wiSeed": id.wi_seed,
            "doSeed": id.do_seed,
        }),
    );

    let step_time = Duration::from_secs_f64(cli.standin_seconds / total as f64);
    let examples_per_second = cli.batch_size as f64 / step_time.as_secs_f64();
    let start = Instant::now();
    let mut next_eval = 0usize;
    for step in 1..=total {
        if !wait_until(start + step_time * step as u32, stop) {
            return Ending {
                outcome: Outcome::Terminated,
                reason: Some(format!(
                    "stopped by a signal after {} steps",
                    record.steps_done
                )),
            };
        }
        record.steps_done = step;
        metrics.step.set(step as f64);
        metrics.progress.set(step as f64 / total as f64);
        metrics.epoch.set(((step - 1) / per_epoch) as f64);
        metrics
            .learning_rate
            .set(learning_rate(cli, step - 1, total));
        metrics.examples_per_second.set(examples_per_second);
        if let Some(point) = evals.get(next_eval).filter(|e| e.step == step) {
            let point = point.clone();
            let m = point.metrics;
            if let Some(loss) = served.train_loss[next_eval] {
                metrics.train_loss.set(loss);
            }
            metrics.record_eval(point.index, point.step, point.progress, &m);
            // The values too: a fault test compares what a retried attempt served with what the killed one did.
            events.log(
                "eval",
                serde_json::json!({
                    "index": point.index,
                    "step": step,
                    "progress": point.progress,
                    "metrics": m,
                }),
            );
            eprintln!(
                "eval {} at step {step}: accuracy {:.4} f1 {:.4} mcc {:.4} acc_and_f1 {:.4}",
                point.index, m.accuracy, m.f1, m.mcc, m.acc_and_f1
            );
            record.evals.push(point);
            next_eval += 1;
        }
    }
    Ending {
        outcome: Outcome::Completed,
        reason: None,
    }
}
