//! `bench/faults.sh` (binary `seedsweep-faults-bench`): an uninterrupted stand-in sweep, then the same sweep under
//! each fault at full size, each on its own control plane, each compared with the uninterrupted run. Prints one line
//! of figures per scenario and every broken invariant; writes every report to `<out>/summary.json`.

use super::{Fault, Run, Scenario, run as run_scenario};
use crate::standin::outage::OutageWindow;
use anyhow::{Result, bail};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

const SCENARIOS: [&str; 5] = [
    "operator-kills",
    "leader-kills",
    "metrics-outage",
    "trial-kills",
    "apiserver-restarts",
];

/// Runs a stand-in sweep uninterrupted and under each fault, and compares.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "seedsweep-faults-bench")]
pub struct Options {
    #[arg(long, default_value_t = 64)]
    pub trials: u32,
    #[arg(long, default_value_t = 16)]
    pub parallelism: u32,
    /// Wall-clock seconds of one stand-in attempt.
    #[arg(long, default_value_t = 20.0)]
    pub trial_seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    pub scrape_interval: f64,
    /// The `seedsweep` binary to run as the operator.
    #[arg(long)]
    pub operator: PathBuf,
    /// The `seedsweep-standin` binary (default: beside this one).
    #[arg(long)]
    pub standin: Option<PathBuf>,
    #[arg(long, default_value = "bench/curves/sst2-6x6.json")]
    pub curves: PathBuf,
    /// Operator SIGKILLs in the operator-kills scenario, each 1.5–6 s (seeded) after the last restart.
    #[arg(long, default_value_t = 10)]
    pub kills: u32,
    /// Leader SIGKILLs in the leader-kills scenario.
    #[arg(long, default_value_t = 3)]
    pub leader_kills: u32,
    /// The leader lease's duration, seconds: a takeover should come within it (plus a standby's retry, a fifth).
    #[arg(long, default_value_t = 5)]
    pub lease_seconds: u64,
    /// Seeds the kill moments.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Which scenarios, comma-separated (default: all): operator-kills, leader-kills, metrics-outage, trial-kills,
    /// apiserver-restarts.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Where the reports and logs go (default: a new directory under $TMPDIR).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 30)]
    pub timeout_minutes: u64,
}

fn fault(o: &Options, name: &str) -> Result<Fault> {
    Ok(match name {
        "operator-kills" => Fault::OperatorKills {
            kills: o.kills,
            seed: o.seed,
            gap: (1.5, 6.0),
        },
        "leader-kills" => Fault::LeaderKills {
            kills: o.leader_kills,
            lease_seconds: o.lease_seconds,
            seed: o.seed,
            gap: (3.0, 8.0),
        },
        "metrics-outage" => Fault::MetricsOutage {
            trials: (o.trials / 8).max(1),
            window: OutageWindow { from: 0.1, to: 0.7 },
        },
        "trial-kills" => Fault::TrialKills {
            kills: (o.trials / 8).max(1),
            at_progress: 0.5,
        },
        "apiserver-restarts" => Fault::ApiserverRestarts {
            restarts: 2,
            first_after: 10.0,
            every: 25.0,
            down: 3.0,
        },
        other => bail!(
            "unknown scenario {other:?}; the scenarios: {}",
            SCENARIOS.join(", ")
        ),
    })
}

/// One line of what matters in a scenario's report.
fn line(run: &Run) -> String {
    let r = &run.report;
    let d = &r["details"];
    let extra = match r["scenario"].as_str().unwrap_or_default() {
        "leader-kills" => format!(
            "takeover s {} (lease {} s)",
            d["takeoverSeconds"], d["leaseSeconds"]
        ),
        "metrics-outage" => format!(
            "outage trials {}, outages that counted and recovered before their decision {} (did not count: {}), MetricsUnavailable changes {}",
            d["outageTrials"].as_array().map_or(0, Vec::len),
            d["recoveredBeforeDecision"],
            d["outagesThatDidNotCount"].as_array().map_or(0, Vec::len),
            d["metricsUnavailable"].as_array().map_or(0, Vec::len)
        ),
        "trial-kills" => format!("curves reproduced by the retry {}", d["reproducedCurves"]),
        "apiserver-restarts" => format!(
            "apiserver unavailable s {}",
            d["apiserverUnavailableSeconds"]
        ),
        _ => String::new(),
    };
    format!(
        "{:<19} wall {:>6.1} s  faults {:>2}  phase {}  kept {} (offline cut: {})  rung observations {}/{}  Jobs {} names / {} created by the apiserver, duplicates {}  identical to uninterrupted: {}  {extra}",
        r["scenario"].as_str().unwrap_or_default(),
        r["wallSeconds"].as_f64().unwrap_or(f64::NAN),
        r["faultsInjected"],
        r["phase"].as_str().unwrap_or_default(),
        r["kept"],
        r["keptIsOfflineCut"],
        r["rungObservations"],
        r["trials"],
        r["jobNames"],
        r["jobsCreatedByApiserver"],
        r["duplicateJobs"].as_array().map_or(0, Vec::len),
        r.get("identicalToUninterrupted").unwrap_or(&json!("-")),
    )
}

/// True when every scenario kept every invariant.
pub async fn run(o: Options) -> Result<bool> {
    let names: Vec<String> = if o.scenarios.is_empty() {
        SCENARIOS.iter().map(|s| s.to_string()).collect()
    } else {
        o.scenarios.clone()
    };
    let faults: Vec<Fault> = names.iter().map(|n| fault(&o, n)).collect::<Result<_>>()?;
    let standin = crate::bench::standin_binary(o.standin.as_ref())?;
    let out = crate::bench::output_dir(
        o.out.as_ref(),
        "seedsweep-faults",
        std::process::id().into(),
    )?;
    eprintln!("output in {}", out.display());
    let scenario = |fault: Fault| Scenario {
        trials: o.trials,
        parallelism: o.parallelism,
        trial_seconds: o.trial_seconds,
        scrape_interval: o.scrape_interval,
        operator: o.operator.clone(),
        standin: standin.clone(),
        curves: o.curves.clone(),
        out: out.join(fault.label()),
        timeout: Duration::from_secs(o.timeout_minutes * 60),
        fault,
    };
    eprintln!(
        "{} trials, parallelism {}, {} s per attempt, scrape interval {} s",
        o.trials, o.parallelism, o.trial_seconds, o.scrape_interval
    );
    let reference = run_scenario(&scenario(Fault::None)).await?;
    println!("{}", line(&reference));
    let mut all_kept = reference.violations.is_empty();
    for v in &reference.violations {
        println!("  violation: {v}");
    }
    let mut reports = vec![reference.report.clone()];
    for fault in faults {
        let label = fault.label();
        let mut run = match run_scenario(&scenario(fault)).await {
            Ok(run) => run,
            Err(e) => {
                println!("{label:<19} could not be judged: {e:#}");
                reports.push(json!({"scenario": label, "error": format!("{e:#}")}));
                all_kept = false;
                continue;
            }
        };
        run.compare_with(&reference.outcomes);
        println!("{}", line(&run));
        for v in &run.violations {
            println!("  violation: {v}");
        }
        all_kept &= run.violations.is_empty();
        reports.push(run.report);
    }
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&reports)?,
    )?;
    println!("reports: {}", out.join("summary.json").display());
    Ok(all_kept)
}
