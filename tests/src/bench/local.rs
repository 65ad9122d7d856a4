//! The local executor at scale (`bench/local-scale.sh`, binary `seedsweep-local-bench`): the scale benchmark's sweep
//! (the same seeds, training settings, rung and parallelism) run by `seedsweep run` on this machine with
//! `seedsweep-standin` as the trainer. It measures what the executor costs and how full it keeps its slots: wall
//! time, its peak memory and CPU, the stand-ins' own time, the latency from a rung evaluation to the stopped
//! stand-in's end, and that the trials kept are the offline cut. docs/benchmarks.md explains each figure.

use super::{
    KEEP_FRACTION, RUNG_AT, SCHEDULE, cpu_model, events, fraction_report, load_curves, mean, now,
    output_dir, procstat, quantiles_json, slots, standin_binary, sweep_head_yaml,
};
use crate::standin::cli::{CURVES_ENV, EVENTS_ENV, SECONDS_ENV};
use crate::standin::offline::{offline_top, rung_score, served_evals};
use anyhow::{Context, Result, bail, ensure};
use seedsweep_crds::MetricName;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the scale benchmark's sweep through `seedsweep run` with stand-in trials and reports what it cost.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "seedsweep-local-bench")]
pub struct Options {
    /// Trials: a square number gives a √n × √n grid; otherwise the first n pairs of the next larger grid.
    #[arg(long, default_value_t = 625, value_parser = clap::value_parser!(u32).range(1..))]
    pub trials: u32,
    /// The sweep's spec.parallelism, which `seedsweep run` uses on a machine without GPUs.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub parallelism: u32,
    /// Wall-clock seconds of one whole stand-in trial.
    #[arg(long, default_value_t = 20.0)]
    pub trial_seconds: f64,
    /// The `seedsweep` binary (a release build).
    #[arg(long)]
    pub seedsweep: PathBuf,
    /// The `seedsweep-standin` binary (default: beside this one).
    #[arg(long)]
    pub standin: Option<PathBuf>,
    #[arg(long, default_value = "bench/curves/sst2-6x6.json")]
    pub curves: PathBuf,
    /// Passed to `seedsweep run` when given; else its default (1 s).
    #[arg(long)]
    pub scrape_interval: Option<f64>,
    /// Where the manifest, the state directory, the stand-ins' events, `seedsweep run`'s output and the report go
    /// (default: a new directory under $TMPDIR). Its state directory must not hold an earlier run.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 60)]
    pub timeout_minutes: u64,
}

const SWEEP: &str = "local-scale";

/// Whether the child `pid` has exited, leaving it unreaped (a zombie whose /proc/<pid>/stat still holds its CPU
/// times and its waited-for children's).
fn exited_unreaped(pid: u32) -> Result<bool> {
    // SAFETY: waitid on our own child with WNOWAIT only reads its state; the siginfo is ours to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    ensure!(rc == 0, "waitid: {}", std::io::Error::last_os_error());
    // SAFETY: si_pid is set by waitid (0 when no child has changed state).
    Ok(unsafe { info.si_pid() } != 0)
}

pub fn run(o: Options) -> Result<serde_json::Value> {
    ensure!(
        o.trial_seconds.is_finite() && o.trial_seconds > 0.0,
        "--trial-seconds must be a positive number, got {}",
        o.trial_seconds
    );
    if let Some(s) = o.scrape_interval {
        ensure!(
            s.is_finite() && s > 0.0,
            "--scrape-interval must be a positive number of seconds, got {s}"
        );
    }
    let (curves, file) = load_curves(&o.curves)?;
    let standin = standin_binary(o.standin.as_ref())?;
    ensure!(
        o.seedsweep.is_file(),
        "--seedsweep {}: not a file",
        o.seedsweep.display()
    );
    let out = output_dir(o.out.as_ref(), "seedsweep-local-scale", now() as u64)?.canonicalize()?;
    let state = out.join("state");
    ensure!(
        !state.exists(),
        "{} exists: a new run needs an empty --out (seedsweep run would resume the old one)",
        state.display()
    );
    let events_path = out.join("events.jsonl");
    let _ = std::fs::remove_file(&events_path);
    // The stand-in ignores the data and model; the local executor only checks that the paths exist.
    let manifest = out.join("sweep.yaml");
    std::fs::write(
        &manifest,
        sweep_head_yaml(SWEEP, o.trials, o.parallelism, 0, ".", ".") + "\n",
    )?;
    eprintln!("output in {}", out.display());
    eprintln!(
        "{} trials, parallelism {}, {} s per trial, through seedsweep run",
        o.trials, o.parallelism, o.trial_seconds
    );

    let mut cmd = Command::new(&o.seedsweep);
    cmd.arg("run")
        .arg(&manifest)
        .arg("--state-dir")
        .arg(&state)
        .arg("--trainer")
        .arg(&standin)
        .args(["--device", "cpu"]);
    if let Some(s) = o.scrape_interval {
        cmd.args(["--scrape-interval", &s.to_string()]);
    }
    // The stand-ins' settings come from seedsweep run's environment, which its trainers inherit. Without HOSTNAME
    // the event log tells attempts apart by their order (one trial's attempts never overlap locally).
    let started = now();
    let mut child = cmd
        .env(CURVES_ENV, &curves)
        .env(SECONDS_ENV, o.trial_seconds.to_string())
        .env(EVENTS_ENV, &events_path)
        .env_remove("HOSTNAME")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out.join("run.stdout"))?)
        .stderr(std::fs::File::create(out.join("run.stderr"))?)
        .spawn()
        .with_context(|| format!("starting {}", o.seedsweep.display()))?;
    let pid = child.id();

    // Its memory every 200 ms (VmHWM only grows, so the last reading is the peak but for the last 200 ms); at its
    // exit, before reaping it, its CPU and that of the stand-ins it waited for.
    let deadline = Instant::now() + Duration::from_secs(o.timeout_minutes * 60);
    let mut peak_rss = 0u64;
    let mut last_print = Instant::now();
    let cpu = loop {
        if let Ok(p) = procstat::read(pid) {
            peak_rss = peak_rss.max(p.peak_rss_bytes);
        }
        if exited_unreaped(pid)? {
            break procstat::cpu_times(pid).map_err(anyhow::Error::msg)?;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "seedsweep run did not finish in {} minutes; see {}",
                o.timeout_minutes,
                out.display()
            );
        }
        if last_print.elapsed() >= Duration::from_secs(15) {
            eprintln!(
                "{:>5.0} s: peak RSS {:.1} MiB",
                now() - started,
                peak_rss as f64 / 1048576.0
            );
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let exit = child.wait()?;
    let finished = now();
    ensure!(
        exit.success(),
        "seedsweep run exited with {exit}; see {}",
        out.join("run.stderr").display()
    );

    let status_out = Command::new(&o.seedsweep)
        .args(["status", "--output", "json", "--state-dir"])
        .arg(&state)
        .output()?;
    ensure!(
        status_out.status.success(),
        "seedsweep status: {}",
        String::from_utf8_lossy(&status_out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status_out.stdout)?;
    let trials = status["trials"]
        .as_array()
        .context("seedsweep status: no trials")?;

    // The engine's decisions against the offline cut of the curves the stand-ins served.
    let mut scored = Vec::new();
    let mut rung_as_served = 0;
    for t in trials {
        let (wi, do_) = (
            t["weightInit"].as_u64().context("weightInit")?,
            t["dataOrder"].as_u64().context("dataOrder")?,
        );
        let (evals, _) = served_evals(&file, &SCHEDULE, wi, do_, 0.0);
        let served = rung_score(&evals, RUNG_AT, MetricName::Accuracy).unwrap_or(f64::NAN);
        if t["rungs"][0]["score"].as_f64() == Some(served) {
            rung_as_served += 1;
        }
        scored.push((t["name"].as_str().unwrap_or_default().to_string(), served));
    }
    let keep = (KEEP_FRACTION * f64::from(o.trials)).ceil() as usize;
    let offline = offline_top(&scored, keep);
    let phase_of = |phase: &str| -> BTreeSet<String> {
        trials
            .iter()
            .filter(|t| t["phase"] == phase)
            .filter_map(|t| t["name"].as_str().map(String::from))
            .collect()
    };
    let kept = phase_of("Succeeded");

    let events = events::parse(
        &std::fs::read_to_string(&events_path)
            .with_context(|| format!("the stand-ins' events {}", events_path.display()))?,
    )
    .map_err(anyhow::Error::msg)?;
    let spans = events::attempt_spans(&events);
    let attempts = events::attempt_seconds(&events);
    let standin_total: f64 = attempts.iter().sum();
    let latencies = events::stop_latencies(&events, RUNG_AT);
    // Trials left to start at t: those whose first attempt had not started yet.
    let mut first_start: BTreeMap<&str, f64> = BTreeMap::new();
    for (trial, start, _) in &spans {
        let e = first_start.entry(trial.as_str()).or_insert(*start);
        *e = e.min(*start);
    }
    let mut firsts: Vec<f64> = first_start.values().copied().collect();
    firsts.sort_by(f64::total_cmp);
    let remaining_at = |t: f64| o.trials as usize > firsts.partition_point(|s| *s <= t);
    let slot_attempts: Vec<slots::Attempt> = spans
        .iter()
        .map(|(_, start, end)| slots::Attempt {
            start: *start,
            end: *end,
            ended_while_remaining: end.is_some_and(remaining_at),
        })
        .collect();
    let refills = slots::refill_delays(o.parallelism.min(o.trials) as usize, &slot_attempts);
    let fill: Vec<f64> = (0..)
        .map(|i| started + f64::from(i))
        .take_while(|t| *t < finished)
        .filter(|t| remaining_at(*t))
        .map(|t| slots::running_at(&slot_attempts, t) as f64 / f64::from(o.parallelism))
        .collect();
    let state_bytes = std::fs::metadata(state.join("state.json")).map_or(0, |m| m.len());

    let wall = finished - started;
    let report = json!({
        "machine": {"cpus": std::thread::available_parallelism().map_or(0, |n| n.get()), "cpuModel": cpu_model()},
        "executor": "seedsweep run",
        "trials": o.trials,
        "parallelism": o.parallelism,
        "trialSeconds": o.trial_seconds,
        "scrapeInterval": o.scrape_interval,
        "counts": status["counts"],
        "keptIsOfflineCut": kept == offline,
        "keptInCut": kept.intersection(&offline).count(),
        "keep": keep,
        "rungScoresAsServed": rung_as_served,
        "wallSeconds": wall,
        "attempts": attempts.len(),
        "standinSecondsTotal": standin_total,
        "standinSecondsPerParallelism": standin_total / f64::from(o.parallelism),
        "decisionLatencySeconds": quantiles_json(&latencies),
        "decisions": latencies.len(),
        "seedsweepRun": {
            "peakRssBytes": peak_rss,
            "cpuSeconds": cpu.own,
            "standinsCpuSeconds": cpu.children,
        },
        "finalStateBytes": state_bytes,
        "slotRefillSeconds": {
            "refills": refills.len(),
            "quantiles": quantiles_json(&refills),
            "mean": mean(&refills),
            "negative": refills.iter().filter(|d| **d < 0.0).count(),
        },
        "runningStandinsFractionWhileTrialsRemain": fraction_report(&fill),
    });
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    if kept != offline {
        bail!(
            "the kept trials are not the offline cut of the served curves: kept {} of which {} in the cut; report in {}",
            kept.len(),
            kept.intersection(&offline).count(),
            out.display()
        );
    }
    Ok(report)
}
