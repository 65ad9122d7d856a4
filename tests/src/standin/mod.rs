//! `seedsweep-standin`: a trial stand-in for scale tests. It takes the trainer's command line and honours its
//! contract — the `/metrics` series, the `TrialSummary` in `--termination-log` (compacted) and `--output`, the exit
//! codes, stopping on SIGTERM with a summary — but instead of training it replays a recorded real learning curve
//! (`curves`) on an accelerated clock, so hundreds of trials fit on one machine. See docs/benchmarks.md.

pub mod cli;
pub mod curves;
pub mod extract;
pub mod offline;
pub mod outage;
pub mod replay;

use clap::Parser;
use seedsweep_crds::trainer::{Outcome, TERMINATION_LOG_LIMIT, exit_code};
use seedsweep_crds::trial_output::{
    termination_log_from_args, write_atomically, write_termination_log,
};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Runs the stand-in with the process's arguments; returns its exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            if code == exit_code::USAGE {
                // No identity yet, so no summary: the plain message, as the trainer leaves it.
                let _ = write_termination_log(&termination_log_from_args(&args), &e.to_string());
            }
            return code;
        }
    };
    let id = seedsweep_crds::trial_metrics::Identity {
        sweep: cli.sweep.clone(),
        trial: cli.trial_name(),
        wi_seed: cli.wi_seed,
        do_seed: cli.do_seed,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("error: cannot install the handler for signal {signal}: {e}");
            return exit_code::ERROR;
        }
    }
    let events = replay::EventLog::new(cli.standin_events.clone(), &id.trial);
    let mut record = replay::RunRecord::default();
    let (outcome, reason, mut code) = match replay::run(&cli, &id, &stop, &mut record, &events) {
        Ok(ending) => {
            let code = ending.outcome.exit_code();
            if let Some(reason) = &ending.reason {
                eprintln!("{reason}");
            }
            (ending.outcome, ending.reason, code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            (Outcome::Failed, Some(e), exit_code::ERROR)
        }
    };
    let summary = record.summary(&id, outcome, reason);
    if let Err(e) = write_termination_log(
        &cli.termination_log,
        &summary.to_compact_json(TERMINATION_LOG_LIMIT, &cli.rungs),
    ) {
        eprintln!("error: {e}");
        code = exit_code::ERROR;
    }
    if let Some(output) = &cli.output {
        let mut full = serde_json::to_value(&summary).expect("the summary serializes");
        if let (Some(obj), Ok(serde_json::Value::Object(extra))) =
            (full.as_object_mut(), serde_json::to_value(&record))
        {
            obj.extend(extra);
        }
        let text = serde_json::to_string_pretty(&full).expect("the summary serializes");
        if let Err(e) = write_atomically(output, &text) {
            eprintln!("error: {e}");
            code = exit_code::ERROR;
        }
    }
    events.log(
        "end",
        serde_json::json!({"outcome": summary.outcome, "stepsDone": summary.steps_done, "exitCode": code}),
    );
    code
}
