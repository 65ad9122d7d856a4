use clap::Parser;
use seedsweep_crds::trainer::{Outcome, TERMINATION_LOG_LIMIT, exit_code};
use seedsweep_crds::trial_metrics::Identity;
use seedsweep_crds::trial_output::{
    termination_log_from_args, write_atomically, write_termination_log,
};
use seedsweep_trainer::cli::Cli;
use seedsweep_trainer::run::{self, FullSummary, RunRecord};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            if code == exit_code::USAGE {
                // No identity yet, so no summary: leave the plain message for whoever reads the pod's status.
                let _ = write_termination_log(&termination_log_from_args(&args), &e.to_string());
            }
            return code;
        }
    };
    let id = Identity {
        sweep: cli.sweep.clone(),
        trial: cli.trial_name(),
        wi_seed: cli.wi_seed,
        do_seed: cli.do_seed,
    };

    // Checked between training steps: the run stops within one step and still writes its summary.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("error: cannot install the handler for signal {signal}: {e}");
            return exit_code::ERROR;
        }
    }

    let mut state = RunRecord::default();
    let (outcome, reason, mut code) = match run::run(&cli, &id, &stop, &mut state) {
        Ok(ending) => {
            let code = ending.outcome.exit_code();
            if let Some(reason) = &ending.reason {
                eprintln!("{reason}");
            }
            (ending.outcome, ending.reason, code)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            (Outcome::Failed, Some(format!("{e:#}")), exit_code::ERROR)
        }
    };
    let summary = state.summary(&id, outcome, reason);
    let compact = summary.to_compact_json(TERMINATION_LOG_LIMIT, &cli.rungs);
    if let Err(e) = write_termination_log(&cli.termination_log, &compact) {
        eprintln!("error: {e}");
        code = exit_code::ERROR;
    }
    if let Some(output) = &cli.output {
        let full = FullSummary {
            summary: &summary,
            details: &state,
        };
        let text = serde_json::to_string_pretty(&full).expect("the summary serializes");
        if let Err(e) = write_atomically(output, &text) {
            eprintln!("error: {e}");
            code = exit_code::ERROR;
        }
    }
    if let Some(m) = summary.final_metrics {
        eprintln!(
            "done: accuracy {:.4} f1 {:.4} mcc {:.4} acc_and_f1 {:.4} (majority baseline accuracy {:.4})",
            m.accuracy, m.f1, m.mcc, m.acc_and_f1, summary.majority_baseline.accuracy
        );
    }
    code
}
