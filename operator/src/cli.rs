//! The `seedsweep` command line.

use crate::engine::plan::{Plan, plan};
use crate::local::{self, Device, RunEnd, RunOptions};
use crate::manifest;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "seedsweep",
    version,
    about = "Seed sweeps for fine-tuning: weight-init × data-order grids with early discarding"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check SeedSweep manifests; prints every problem. Exit status 0 when all are valid, 1 otherwise.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the SeedSweep CustomResourceDefinition (YAML).
    Crd,
    /// Print a sweep's trials in launch order and its rungs.
    Plan {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Run a sweep on this machine: trainer processes, early discarding, a summary at the end. Interrupted, it
    /// resumes where it stopped when run again with the same state directory.
    Run {
        file: PathBuf,
        /// Trials at once (default: 1 on CPU, one per GPU with CUDA).
        #[arg(long)]
        parallel: Option<usize>,
        /// Where the sweep's state, logs and trial summaries live (default: seedsweep-state/<sweep name>).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The seedsweep-trainer binary (default: beside seedsweep, else on PATH).
        #[arg(long)]
        trainer: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Device::Auto)]
        device: Device,
        /// Seconds between scrapes of the trainers' metrics.
        #[arg(long, default_value = "1", value_parser = crate::flags::seconds)]
        scrape_interval: Duration,
    },
    /// Run the Kubernetes operator: every SeedSweep in the cluster (or one namespace) becomes trial Jobs, scraped
    /// and early-discarded. Needs the CRD installed (`seedsweep crd | kubectl apply -f -`).
    Operator(crate::controller::OperatorArgs),
    /// Write a sweep's report (local or in a cluster): figures as SVG and PNG, an HTML page, Markdown and JSON; with
    /// --compare, a comparison of several sweeps. Exit status 1 when a sweep has no trial trained to completion yet
    /// (the report is then partial).
    Report(crate::sweep_report::ReportArgs),
    /// Summarize a local sweep, running or finished.
    Status {
        /// The sweep's state directory (default: the only one under seedsweep-state/).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Validate { files } => validate(&files, &mut out),
        Command::Crd => {
            out.write_all(seedsweep_crds::crd_yaml().as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { file, output } => {
            let sweep = manifest::load_file(&file)?;
            let name = sweep.metadata.name.clone().unwrap_or_default();
            let plan = plan(&name, &sweep.spec);
            match output {
                Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&plan)?)?,
                Output::Table => print_plan(&plan, &mut out)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            file,
            parallel,
            state_dir,
            trainer,
            device,
            scrape_interval,
        } => {
            let opts = RunOptions {
                manifest: file,
                parallel,
                state_dir,
                trainer,
                device,
                scrape_interval,
            };
            // One thread: trainers are children of this thread, and PR_SET_PDEATHSIG follows the thread.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match runtime.block_on(local::run(opts))? {
                RunEnd::Complete { summary, succeeded } => {
                    write!(out, "{summary}")?;
                    Ok(if succeeded {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                RunEnd::Interrupted => Ok(ExitCode::from(130)),
            }
        }
        Command::Operator(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(crate::controller::serve(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => crate::sweep_report::run(args, &mut out),
        Command::Status { state_dir, output } => {
            let dir = match state_dir {
                Some(dir) => dir,
                None => only_state_dir()?,
            };
            let (state, status) = local::status(&dir)?;
            match output {
                Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&status)?)?,
                Output::Table => {
                    write!(out, "{}", crate::report::summary(&state, &status))?;
                    if let Some(statistics) = &status.statistics {
                        let rungs: Vec<f64> =
                            state.plan.rungs.iter().map(|r| r.at_fraction).collect();
                        for line in crate::sweep_report::findings::headline(statistics, &rungs) {
                            writeln!(out, "  {line}")?;
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn only_state_dir() -> anyhow::Result<PathBuf> {
    let root = Path::new("seedsweep-state");
    let dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("state.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    match dirs.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("no sweep under seedsweep-state/; pass --state-dir"),
        _ => anyhow::bail!("several sweeps under seedsweep-state/; pass --state-dir"),
    }
}

fn validate(files: &[PathBuf], out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let mut all_valid = true;
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                writeln!(out, "{}: cannot read: {e}", file.display())?;
                all_valid = false;
                continue;
            }
        };
        match manifest::load(&text) {
            Ok(sweep) => {
                let name = sweep.metadata.name.clone().unwrap_or_default();
                let plan = plan(&name, &sweep.spec);
                writeln!(
                    out,
                    "{}: valid ({} trials, {} rung{})",
                    file.display(),
                    plan.trials.len(),
                    plan.rungs.len(),
                    if plan.rungs.len() == 1 { "" } else { "s" }
                )?;
            }
            Err(errors) => {
                all_valid = false;
                for e in &errors.0 {
                    writeln!(out, "{}: {e}", file.display())?;
                }
            }
        }
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_plan(plan: &Plan, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{} trials, early discard: {}",
        plan.trials.len(),
        describe_rungs(plan)
    )?;
    let width = plan
        .trials
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(5);
    writeln!(
        out,
        "{:>5}  {:<width$}  {:>12}  {:>12}",
        "ORDER", "TRIAL", "WEIGHT-INIT", "DATA-ORDER"
    )?;
    for t in &plan.trials {
        writeln!(
            out,
            "{:>5}  {:<width$}  {:>12}  {:>12}",
            t.index, t.name, t.weight_init, t.data_order
        )?;
    }
    Ok(())
}

fn describe_rungs(plan: &Plan) -> String {
    if plan.rungs.is_empty() {
        return "none (every trial trains to completion)".into();
    }
    let rungs: Vec<String> = plan
        .rungs
        .iter()
        .map(|r| format!("keep {} at {:.0}%", r.keep, r.at_fraction * 100.0))
        .collect();
    format!(
        "{} mode, {}",
        format!("{:?}", plan.mode).to_lowercase(),
        rungs.join(", then ")
    )
}
