//! The stand-in's command line: every flag of `seedsweep-trainer` (trainer/src/cli.rs), so the command lines the
//! operator and the local executor build (operator/src/trainer_args.rs) run it unchanged, plus its own settings,
//! which also come from the environment because those executors pass trainer flags only.

use clap::Parser;
use std::path::PathBuf;

pub use seedsweep_crds::trial_output::DEFAULT_TERMINATION_LOG;
pub const CURVES_ENV: &str = "SEEDSWEEP_STANDIN_CURVES";
pub const SECONDS_ENV: &str = "SEEDSWEEP_STANDIN_SECONDS";
pub const DIVERGE_ENV: &str = "SEEDSWEEP_STANDIN_DIVERGE_FRACTION";
pub const EVENTS_ENV: &str = "SEEDSWEEP_STANDIN_EVENTS";
pub const OUTAGE_ENV: &str = "SEEDSWEEP_STANDIN_METRICS_OUTAGE";
pub const OUTAGE_TRIALS_ENV: &str = "SEEDSWEEP_STANDIN_OUTAGE_TRIALS";

/// Replays a recorded learning curve through the trainer's interface (metrics, summary, exit codes, SIGTERM) on
/// an accelerated clock. Takes every seedsweep-trainer flag; the training-only ones are accepted and ignored.
///
/// Exit codes: 0 completed, 1 error, 2 usage error, 143 stopped by SIGTERM/SIGINT.
#[derive(Parser, Debug, Clone)]
#[command(name = "seedsweep-standin", version)]
pub struct Cli {
    // What the replay uses.
    #[arg(long)]
    pub task: seedsweep_crds::Task,
    #[arg(long)]
    pub wi_seed: u64,
    #[arg(long)]
    pub do_seed: u64,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    #[arg(long, default_value_t = 10)]
    pub evals_per_epoch: u64,
    /// With it, steps per epoch are ceil(K / batch size) as for the trainer; without, the recorded runs' own.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub train_subset: Option<u64>,
    #[arg(long, default_value_t = 2e-5)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,
    #[arg(long, default_value = "0.0.0.0:9090")]
    pub metrics_addr: String,
    #[arg(long, default_value = "local")]
    pub sweep: String,
    #[arg(long)]
    pub trial: Option<String>,
    #[arg(long, default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The sweep's rungs: their evaluations stay in the termination message, as the trainer's do.
    #[arg(long, value_delimiter = ',')]
    pub rungs: Vec<f64>,

    // Training-only: accepted so the trainer's command line parses, and ignored.
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub model_dir: PathBuf,
    #[arg(long, value_parser = ["do", "wi", "none"], default_value = "do")]
    pub dropout_seed_from: String,
    #[arg(long)]
    pub dropout_seed: Option<u64>,
    #[arg(long, default_value_t = 128)]
    pub max_seq_length: u64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1e-8)]
    pub adam_epsilon: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub dev_subset: Option<u64>,
    #[arg(long)]
    pub pad_to_max: bool,
    #[arg(long, value_parser = ["auto", "cpu", "cuda"], default_value = "auto")]
    pub device: String,
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub threads: Option<i32>,
    /// Accepted like the trainer's; the recorded curves do not depend on it.
    #[arg(long, default_value = "fp32")]
    pub precision: seedsweep_crds::sweep::Precision,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub log_every: u64,

    // The stand-in's own.
    /// The recorded curves (bench/curves/*.json).
    #[arg(long, env = CURVES_ENV)]
    pub standin_curves: Option<PathBuf>,
    /// Wall-clock seconds a whole trial takes.
    #[arg(long, env = SECONDS_ENV, default_value_t = 20.0, value_parser = positive_seconds)]
    pub standin_seconds: f64,
    /// Fraction of seed pairs whose run collapses to the majority class.
    #[arg(long, env = DIVERGE_ENV, default_value_t = 0.0, value_parser = fraction)]
    pub standin_diverge_fraction: f64,
    /// Append one JSON line per start, evaluation served and end to this file (for benchmarks).
    #[arg(long, env = EVENTS_ENV)]
    pub standin_events: Option<PathBuf>,
    /// FROM:TO, fractions of the run: the metrics endpoint refuses connections in that part of every attempt (a
    /// fault test's unreachable pod).
    #[arg(long, env = OUTAGE_ENV)]
    pub standin_metrics_outage: Option<super::outage::OutageWindow>,
    /// Comma-separated trial names the outage applies to (default: every trial).
    #[arg(long, env = OUTAGE_TRIALS_ENV, value_delimiter = ',')]
    pub standin_outage_trials: Vec<String>,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a positive number of seconds (--standin-seconds or ${SECONDS_ENV})"
        )),
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a fraction in [0, 1] (--standin-diverge-fraction or ${DIVERGE_ENV})"
        )),
    }
}

impl Cli {
    /// The outage this trial's metrics endpoint has, if any.
    pub fn metrics_outage(&self) -> Option<super::outage::OutageWindow> {
        let trial = self.trial_name();
        self.standin_metrics_outage.filter(|_| {
            self.standin_outage_trials.is_empty()
                || self.standin_outage_trials.iter().any(|t| t.trim() == trial)
        })
    }

    pub fn trial_name(&self) -> String {
        self.trial.clone().unwrap_or_else(|| {
            seedsweep_crds::sweep::trial_name(self.task.as_str(), self.wi_seed, self.do_seed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What operator/src/trainer_args.rs builds for a trial pod (with a subset and extra args), plus the local
    /// executor's --device and --threads.
    pub(crate) fn trainer_command_line() -> Vec<String> {
        [
            "seedsweep-standin",
            "--task",
            "sst2",
            "--data-dir",
            "/data",
            "--model-dir",
            "/models/m",
            "--sweep",
            "s",
            "--trial",
            "s-w3-d4",
            "--wi-seed",
            "3",
            "--do-seed",
            "4",
            "--dropout-seed-from",
            "do",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--learning-rate",
            "0.00002",
            "--max-seq-length",
            "128",
            "--warmup-ratio",
            "0.1",
            "--weight-decay",
            "0.01",
            "--evals-per-epoch",
            "10",
            "--precision",
            "bf16",
            "--metrics-addr",
            "127.0.0.1:0",
            "--termination-log",
            "/dev/termination-log",
            "--train-subset",
            "1000",
            "--dev-subset",
            "500",
            "--output",
            "/scratch/history.json",
            "--log-every",
            "50",
            "--device",
            "cpu",
            "--threads",
            "1",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn the_trainers_command_line_parses() {
        let cli = Cli::try_parse_from(trainer_command_line()).unwrap();
        assert_eq!((cli.wi_seed, cli.do_seed, cli.epochs), (3, 4, 3));
        assert_eq!(cli.train_subset, Some(1000));
        assert_eq!(cli.trial_name(), "s-w3-d4");
        assert_eq!(cli.precision, seedsweep_crds::sweep::Precision::Bf16);
    }

    #[test]
    fn unknown_flags_and_bad_settings_are_usage_errors_naming_them() {
        let mut args = trainer_command_line();
        args.push("--frobnicate".into());
        let e = Cli::try_parse_from(&args).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--frobnicate"), "{e}");

        let mut args = trainer_command_line();
        args.extend(["--standin-seconds".into(), "0".into()]);
        let e = Cli::try_parse_from(&args).unwrap_err().to_string();
        assert!(e.contains(SECONDS_ENV), "{e}");

        let mut args = trainer_command_line();
        args.extend(["--standin-diverge-fraction".into(), "1.5".into()]);
        let e = Cli::try_parse_from(&args).unwrap_err().to_string();
        assert!(e.contains(DIVERGE_ENV), "{e}");
    }

    #[test]
    fn an_outage_applies_to_the_trials_it_names() {
        let mut args = trainer_command_line();
        args.extend(["--standin-metrics-outage".into(), "0.1:0.5".into()]);
        let all = Cli::try_parse_from(&args).unwrap();
        assert!(all.metrics_outage().is_some());
        args.extend(["--standin-outage-trials".into(), "s-w1-d1,s-w3-d4".into()]);
        assert!(
            Cli::try_parse_from(&args)
                .unwrap()
                .metrics_outage()
                .is_some()
        );
        args.pop();
        args.push("s-w1-d1".into());
        assert!(
            Cli::try_parse_from(&args)
                .unwrap()
                .metrics_outage()
                .is_none()
        );
    }
}
