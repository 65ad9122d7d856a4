//! The local executor: a SeedSweep manifest run as trainer processes on this machine. It scrapes each trainer's
//! `/metrics` as the operator scrapes pods, records what it sees in the state directory before acting, and does what
//! the engine decides. No discard logic lives here.

mod console;
pub mod process;
pub mod store;

use crate::engine::policy::{Decisions, RunState};
use crate::engine::state::{SweepState, plan_changes};
use crate::seed_sources::{self, Source};
use crate::trainer_args::{TrialPaths, trainer_args};
use crate::{manifest, report, scrape};
use anyhow::{Context, bail};
use console::Console;
use process::{Launch, TrainerProcess};
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec};
use seedsweep_crds::trainer::TrialSummary;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub manifest: PathBuf,
    pub parallel: Option<usize>,
    pub state_dir: Option<PathBuf>,
    pub trainer: Option<PathBuf>,
    pub device: Device,
    pub scrape_interval: Duration,
}

/// How a local sweep ended.
pub enum RunEnd {
    /// Every trial has ended; the summary, and whether any trial was kept.
    Complete {
        summary: String,
        succeeded: bool,
    },
    Interrupted,
}

/// The state directory a manifest's sweep uses unless `--state-dir` says otherwise.
pub fn default_state_dir(sweep: &str) -> PathBuf {
    PathBuf::from("seedsweep-state").join(sweep)
}

pub async fn run(opts: RunOptions) -> anyhow::Result<RunEnd> {
    let sweep = manifest::load_file(&opts.manifest)?;
    let name = sweep.metadata.name.clone().unwrap_or_default();
    let base = opts
        .manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let data_dir = resolve(&base, &sweep.spec.task.data_dir, "spec.task.dataDir")?;
    let model_dir = resolve(&base, &sweep.spec.model.path, "spec.model.path")?;
    let trainer = find_trainer(opts.trainer.as_deref())?;
    let gpus = match opts.device {
        Device::Cpu => 0,
        Device::Cuda | Device::Auto => nvidia_gpus(),
    };
    if opts.device == Device::Cuda && gpus == 0 {
        bail!("--device cuda: no NVIDIA GPU found (/proc/driver/nvidia/gpus is empty)");
    }
    // The manifest's parallelism bounds the sweep, as in a cluster; with GPUs, one trial per GPU at most.
    let (parallel, why) = match opts.parallel {
        Some(n) => (n, "--parallel".to_string()),
        None if gpus > 0 => (
            (sweep.spec.parallelism as usize).min(gpus),
            format!(
                "spec.parallelism {}, one per GPU ({gpus})",
                sweep.spec.parallelism
            ),
        ),
        None => (
            sweep.spec.parallelism as usize,
            "spec.parallelism".to_string(),
        ),
    };
    if parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = (cores / parallel).max(1);

    let state_dir = opts
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(&name));
    let store = Store::open(&state_dir)?;
    let (spec, mut state) = resume_or_start(&store, &sweep)?;
    let rules = state.rules(&spec, parallel);

    let mut console = Console::new(&state);
    console.log(format!(
        "running up to {parallel} trial(s) at once ({why}), {threads} thread(s) each"
    ));
    let requeued: Vec<usize> = state.requeue_running();
    for i in requeued {
        let from = if spec.checkpoints.is_some() {
            "continuing from its checkpoint if it wrote one"
        } else {
            "restarting from the beginning"
        };
        console.log(format!(
            "{}: {from} (it was running when the last run stopped)",
            state.plan.trials[i].name
        ));
    }
    store.save(&spec, &state)?;
    console.log(format!("checkpoints: {}", checkpoints_note(&spec, &store)));

    let client = crate::scrape::client()?;
    // Trials whose checkpoints are gone (or never were); the rest are checked each turn.
    let mut pruned = std::collections::BTreeSet::new();
    let mut running: BTreeMap<usize, TrainerProcess> = BTreeMap::new();
    let mut interrupt = std::pin::pin!(interrupted());
    let mut tick = tokio::time::interval(opts.scrape_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let step = state.step(&rules);
        stop_trials(&state, &step.actions, &mut running, &mut console);
        prune_checkpoints(&store, &state, &step.outlook, &running, &mut pruned);
        if step.outlook.complete && running.is_empty() {
            store.save(&spec, &state)?;
            let mut status = report::status(&state, &step.outlook);
            status.checkpoints = Some(checkpoints_note(&spec, &store));
            console.update(&state, &step.outlook);
            console.finish();
            let succeeded = status.counts.succeeded > 0;
            return Ok(RunEnd::Complete {
                summary: report::summary(&state, &status),
                succeeded,
            });
        }
        for &i in &step.actions.to_start {
            let t = &state.plan.trials[i];
            let dir = store.trial_dir(&t.name);
            std::fs::create_dir_all(&dir)?;
            let summary_path = dir.join("summary.json");
            let _ = std::fs::remove_file(&summary_path);
            let paths = TrialPaths {
                data_dir: data_dir.display().to_string(),
                model_dir: model_dir.display().to_string(),
                metrics_addr: "127.0.0.1:0".into(),
                termination_log: dir.join("termination-log").display().to_string(),
                output: Some(summary_path.display().to_string()),
                checkpoint_dir: spec
                    .checkpoints
                    .is_some()
                    .then(|| store.checkpoint_dir(&t.name).display().to_string()),
            };
            let mut args = trainer_args(&name, &spec, t, &paths);
            let device = if gpus > 0 { "cuda" } else { "cpu" };
            args.extend([
                "--device".into(),
                device.into(),
                "--threads".into(),
                threads.to_string(),
            ]);
            let mut env = Vec::new();
            if gpus > 0 {
                // One GPU per trial, round-robin over the machine's GPUs.
                env.push(("CUDA_VISIBLE_DEVICES".to_string(), (i % gpus).to_string()));
            }
            let proc = TrainerProcess::spawn(
                Launch {
                    trainer: &trainer,
                    args,
                    env,
                    dir: &dir,
                },
                summary_path,
            )?;
            console.started(&state, i);
            running.insert(i, proc);
        }
        // Decisions change the state; quiet ticks do not rewrite it.
        if step.actions.acts() {
            store.save(&spec, &state)?;
        }
        console.update(&state, &step.outlook);

        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut interrupt => {
                console.log("interrupted: stopping the running trials; `seedsweep run` again resumes the sweep".into());
                for proc in running.values_mut() {
                    proc.terminate();
                }
                for proc in running.values_mut() {
                    let _ = tokio::time::timeout(Duration::from_secs(30), proc.wait()).await;
                }
                // Running trials stay `Running` in the state: the next run restarts them.
                store.save(&spec, &state)?;
                console.finish();
                return Ok(RunEnd::Interrupted);
            }
        }

        // Scrape every running trainer, then collect the ones that ended.
        let mut changed = false;
        for (&i, proc) in running.iter() {
            let Some(url) = proc.metrics_url() else {
                continue;
            };
            match scrape::scrape(&client, &url, Duration::from_secs(5)).await {
                Ok(snap) => match state.observe(i, &snap) {
                    Ok(new) => changed |= new,
                    Err(refused) => console.debug(refused.to_string()),
                },
                // A trainer between its last scrape and its exit stops answering; its summary covers the rest.
                Err(e) => console.debug(format!("{}: {e}", state.plan.trials[i].name)),
            }
        }
        let ended: Vec<usize> = running
            .iter_mut()
            .filter_map(|(&i, p)| p.try_exit().ok().flatten().map(|_| i))
            .collect();
        for i in ended {
            let mut proc = running.remove(&i).expect("ended trials are running");
            let status = proc.wait().await?;
            proc.drain_stderr().await;
            let (summary, exit) = match read_summary(&proc.summary_path) {
                Ok(summary) => (summary, describe_exit(status, &proc)),
                Err(why) => (None, format!("{}, but {why}", describe_exit(status, &proc))),
            };
            let name = state.plan.trials[i].name.clone();
            state.finish(i, summary.as_ref(), &exit);
            let trained_any = state
                .trials
                .iter()
                .any(|t| t.steps_done + t.steps_abandoned > 0 || !t.evals.is_empty());
            if matches!(state.trials[i].run, RunState::Failed { .. }) && !trained_any {
                // Nothing has trained yet: the same fault would fail every trial, so stop here and say why.
                store.save(&spec, &state)?;
                for other in running.values_mut() {
                    other.terminate();
                }
                console.finish();
                bail!(
                    "trial {name} failed at start ({exit}); its stderr is kept in {}:\n{}",
                    proc.stderr_log.display(),
                    proc.stderr_tail()
                );
            }
            console.ended(&state, i);
            changed = true;
        }
        if changed {
            store.save(&spec, &state)?;
        }
    }
}

fn checkpoints_note(spec: &SeedSweepSpec, store: &Store) -> String {
    report::checkpoints(
        spec.checkpoints
            .is_some()
            .then(|| store.checkpoint_location())
            .as_deref(),
    )
}

/// Removes the checkpoints of trials that have ended for good (finished, discarded, diverged, failed): only a
/// trial that may still train (paused at a rung, interrupted) needs its checkpoint.
fn prune_checkpoints(
    store: &Store,
    state: &SweepState,
    outlook: &Decisions,
    running: &BTreeMap<usize, TrainerProcess>,
    pruned: &mut std::collections::BTreeSet<usize>,
) {
    for (i, verdict) in outlook.verdicts.iter().enumerate() {
        if !verdict.phase.is_terminal() || running.contains_key(&i) || pruned.contains(&i) {
            continue;
        }
        let dir = store.checkpoint_dir(&state.plan.trials[i].name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Disk space only; say so and try again next turn.
            Err(e) => {
                eprintln!("warning: cannot remove {}: {e}", dir.display());
                continue;
            }
        }
        pruned.insert(i);
    }
}

/// SIGTERM to the trainers the decisions stop or pause (already recorded in the state).
fn stop_trials(
    state: &SweepState,
    decisions: &Decisions,
    running: &mut BTreeMap<usize, TrainerProcess>,
    console: &mut Console,
) {
    for (i, reason) in &decisions.to_stop {
        if let Some(proc) = running.get_mut(i) {
            proc.terminate();
        }
        console.stopping(state, *i, reason);
    }
    for &i in &decisions.to_pause {
        if let Some(proc) = running.get_mut(&i) {
            proc.terminate();
        }
        console.log(format!(
            "{}: paused at the rung: in the top so far, but trials still to come may beat it",
            state.plan.trials[i].name
        ));
    }
}

/// Loads the sweep's state, or starts it; returns the spec its plan is made from, and the state. A state directory
/// that holds another plan (or settings that would change its decisions) is refused, so a changed manifest never
/// mixes with old results; parallelism may change.
fn resume_or_start(
    store: &Store,
    sweep: &SeedSweep,
) -> anyhow::Result<(SeedSweepSpec, SweepState)> {
    let name = sweep.metadata.name.clone().unwrap_or_default();
    let Some((spec, state)) = store.load()? else {
        let spec = planned_spec(store, sweep)?;
        let fresh = SweepState::new(&name, &spec);
        return Ok((spec, fresh));
    };
    let mut changes = plan_changes(&spec, &sweep.spec);
    // Seeds from earlier sweeps were chosen once, when the sweep started: the plan keeps them.
    let replanned = SweepState::new(&name, &spec);
    if state.plan != replanned.plan && changes.is_empty() {
        changes.push("the plan".into());
    }
    if changes.is_empty() {
        return Ok((spec, state));
    }
    bail!(
        "the state directory {} holds sweep {:?} started with other settings ({} changed); pass another \
         --state-dir (or delete that one) to start afresh",
        store.dir().display(),
        state.name,
        changes.join(", ")
    )
}

/// The spec a new sweep's plan is made from: the manifest's, with `weightInit.fromSweeps` resolved from the state
/// directories of the sweeps it names, beside this sweep's. Locally nothing waits: a sweep that is missing or still
/// running is an error.
fn planned_spec(store: &Store, sweep: &SeedSweep) -> anyhow::Result<SeedSweepSpec> {
    let names = seed_sources::named(&sweep.spec);
    if names.is_empty() {
        return Ok(sweep.spec.clone());
    }
    let root = store.dir().parent().unwrap_or(Path::new("."));
    let sources = names
        .into_iter()
        .map(|name| {
            let dir = root.join(&name);
            let source = match store::read(&dir) {
                Ok(Some((spec, state))) => Source::Found {
                    spec: Box::new(spec),
                    state,
                },
                Ok(None) => Source::Absent(format!(
                    "sweep {name} has no state directory {} (run it first with `seedsweep run`;                      the state directories of the sweeps fromSweeps names must be beside this sweep's)",
                    dir.display()
                )),
                Err(e) => Source::Unreadable(format!("sweep {name}: {e:#}")),
            };
            (name, source)
        })
        .collect();
    seed_sources::resolve(sweep, sources).map_err(|unresolved| {
        anyhow::anyhow!(
            "cannot choose the weight-init seeds of sweep {}:\n  {}",
            sweep.metadata.name.as_deref().unwrap_or_default(),
            unresolved.reasons().join("\n  ")
        )
    })
}

fn resolve(base: &Path, path: &str, field: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(path);
    let resolved = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    if !resolved.exists() {
        bail!(
            "{field}: {} does not exist (relative paths are relative to the manifest)",
            resolved.display()
        );
    }
    Ok(resolved)
}

/// `--trainer`, else `seedsweep-trainer` beside this binary, else on PATH.
fn find_trainer(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("--trainer {}: no such file", path.display());
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("seedsweep-trainer")));
    if let Some(p) = beside.filter(|p| p.is_file()) {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("seedsweep-trainer"))
        .find(|p| p.is_file())
    {
        return Ok(p);
    }
    bail!(
        "the trainer binary seedsweep-trainer was not found beside seedsweep or on PATH; build it with \
         `cargo build --release -p seedsweep-trainer` or pass --trainer PATH"
    )
}

fn nvidia_gpus() -> usize {
    std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The trainer's summary file: none when it wrote none, an error saying so when the file is not a summary.
fn read_summary(path: &Path) -> Result<Option<TrialSummary>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{} is not a trainer summary ({e})", path.display()))
}

fn describe_exit(status: std::process::ExitStatus, proc: &TrainerProcess) -> String {
    let code = match status.code() {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_string(),
    };
    let tail = proc.stderr_tail();
    let last = tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if last.is_empty() {
        code
    } else {
        format!("{code}: {last}")
    }
}

async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `seedsweep status`: the summary of a local sweep, running or finished.
pub fn status(
    state_dir: &Path,
) -> anyhow::Result<(SweepState, seedsweep_crds::sweep::SeedSweepStatus)> {
    let (spec, state) = store::read(state_dir)?.with_context(|| {
        format!(
            "no sweep state in {} (run `seedsweep run` first)",
            state_dir.display()
        )
    })?;
    let rules = state.rules(&spec, spec.parallelism as usize);
    let decisions = state.decide(&rules);
    let mut status = report::status(&state, &decisions);
    status.checkpoints = Some(report::checkpoints(
        spec.checkpoints
            .is_some()
            .then(|| format!("{}/trials/<trial>/checkpoints", state_dir.display()))
            .as_deref(),
    ));
    Ok((state, status))
}
