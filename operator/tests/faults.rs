//! The operator under faults, reduced for CI (bench/faults.sh runs the full size): a 20-trial SeedSweep of stand-in
//! trials on a real v1.20 apiserver with the node simulator (`seedsweep_tests::faults`), with the operator SIGKILLed
//! and restarted, the leader of two replicas SIGKILLed, trials' metrics endpoints unreachable for a while, trial
//! processes SIGKILLed mid-training, or the apiserver restarted. Each must end as an uninterrupted run of the same
//! seeds does (every trial's phase, rung records, final score and reason), with the offline cut of the served curves,
//! every rung observation recorded, and no trial attempt's Job created twice; each scenario's own checks (takeover,
//! MetricsUnavailable raised and cleared, the retried attempt reproducing the curve, the operator surviving the
//! apiserver) are in the same list of violations. Timings are printed, never asserted.

mod common;

use common::workspace;
use seedsweep_tests::faults::outcome::Outcomes;
use seedsweep_tests::faults::{Fault, Run, Scenario, run};
use seedsweep_tests::standin::outage::OutageWindow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Two chunks of the engine's memory (16 trials, then 4): an operator restarted mid-sweep joins both.
const TRIALS: u32 = 20;

/// The stand-in, (re)built when missing or older than its sources: `cargo test -p seedsweep-operator` does not build
/// another package's binaries, and a stale one would lack the fault settings. (Not built unconditionally: a build
/// with this package's features would rebuild its dependencies under `cargo test --workspace`.)
fn standin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let path = Path::new(env!("CARGO_BIN_EXE_seedsweep"))
                .parent()
                .unwrap()
                .join("seedsweep-standin");
            let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let sources = workspace().join("tests/src");
            if built.is_none_or(|b| newest(&sources).is_some_and(|s| s > b)) {
                let status = Command::new(env!("CARGO"))
                    .args([
                        "build",
                        "--quiet",
                        "-p",
                        "seedsweep-tests",
                        "--bin",
                        "seedsweep-standin",
                    ])
                    .current_dir(workspace())
                    .status()
                    .expect("running cargo build for the stand-in");
                assert!(status.success(), "building seedsweep-standin failed");
            }
            path
        })
        .clone()
}

/// The latest modification time of a file under `dir`.
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            if m.is_dir() {
                newest(&e.path())
            } else {
                m.modified().ok()
            }
        })
        .max()
}

/// Seconds of one stand-in attempt. The leader and apiserver scenarios use 4 s: trials then pass their rung and end
/// while nobody watches, which the termination message's rung evaluations make harmless.
const TRIAL_SECONDS: f64 = 8.0;

fn scenario(fault: Fault, trial_seconds: f64, out: &Path) -> Scenario {
    Scenario {
        trials: TRIALS,
        parallelism: 8,
        trial_seconds,
        scrape_interval: 0.5,
        operator: PathBuf::from(env!("CARGO_BIN_EXE_seedsweep")),
        standin: standin(),
        curves: workspace().join("bench/curves/sst2-6x6.json"),
        out: out.to_path_buf(),
        timeout: Duration::from_secs(240),
        fault,
    }
}

/// Runs `fault` on its own control plane; prints its report and wall time.
async fn run_scenario(fault: Fault, trial_seconds: f64) -> Run {
    let out = tempfile::Builder::new()
        .prefix("seedsweep-faults-")
        .tempdir()
        .unwrap();
    let label = fault.label();
    let started = Instant::now();
    let result = run(&scenario(fault, trial_seconds, out.path())).await;
    // Kept when anything went wrong: the operators' logs and the stand-ins' events are the explanation.
    let keep = |out: tempfile::TempDir| eprintln!("{label}: logs kept in {}", out.keep().display());
    let run = match result {
        Ok(run) if run.violations.is_empty() => run,
        Ok(run) => {
            keep(out);
            run
        }
        Err(e) => {
            keep(out);
            panic!("{label}: {e:#}")
        }
    };
    eprintln!(
        "{label}: {:.1} s wall\n{:#}",
        started.elapsed().as_secs_f64(),
        run.report
    );
    run
}

/// The uninterrupted run every scenario is compared with, made once per test binary on its own thread and runtime
/// (each test has its own runtime; this one must outlive the first that asks).
fn reference() -> &'static Outcomes {
    static REFERENCE: OnceLock<Outcomes> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let run = rt.block_on(run_scenario(Fault::None, TRIAL_SECONDS));
            assert!(
                run.violations.is_empty(),
                "the uninterrupted run itself broke invariants: {:#?}",
                run.violations
            );
            run.outcomes
        })
        .join()
        .expect("the uninterrupted run failed")
    })
}

/// Runs `fault`, compares it with the uninterrupted run, and fails listing every broken invariant. Outcomes do not
/// depend on the stand-in's clock, so a scenario may run slower trials than the reference.
async fn check(fault: Fault, trial_seconds: f64) -> Option<Run> {
    if let Some(why) = seedsweep_tests::cluster::local_unavailable() {
        eprintln!("skipping: {why}");
        return None;
    }
    // The reference first, off this runtime: both take a control plane, and two at once halve each one's CPU.
    let reference = tokio::task::spawn_blocking(reference).await.unwrap();
    let mut run = run_scenario(fault, trial_seconds).await;
    run.compare_with(reference);
    assert!(
        run.violations.is_empty(),
        "{} violations:\n{}\nreport: {:#}",
        run.violations.len(),
        run.violations.join("\n"),
        run.report
    );
    Some(run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_sigkilled_four_times_decides_as_an_uninterrupted_run() {
    check(
        Fault::OperatorKills {
            kills: 4,
            seed: 14,
            gap: (1.0, 4.0),
        },
        TRIAL_SECONDS,
    )
    .await;
}

/// The leader killed 1.5–2.5 s in with a 6 s lease: no operator leads for longer than a 4 s attempt, so trials pass
/// their rung and end unobserved. Their termination messages keep the rung's evaluation (the trainer drops other
/// evaluations first), so they are ranked as in an uninterrupted run; discarded ones trained to their end meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_from_a_sigkilled_leader() {
    let Some(run) = check(
        Fault::LeaderKills {
            kills: 1,
            lease_seconds: 6,
            seed: 14,
            gap: (1.5, 2.5),
        },
        4.0,
    )
    .await
    else {
        return;
    };
    let takeovers = run.report["details"]["takeoverSeconds"].as_array().unwrap();
    assert_eq!(takeovers.len(), 1, "{:#}", run.report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_metrics_are_shown_and_discard_nothing() {
    check(
        Fault::MetricsOutage {
            trials: 3,
            // Across the rung at 25 %: 1.2 s to 8.4 s of a 12 s attempt, longer than the 5 s (10 scrape intervals) a
            // trainer that has not answered yet is given, so the outage shows whether or not the first scrape came
            // before it.
            window: OutageWindow { from: 0.1, to: 0.7 },
        },
        12.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_trial_process_is_retried_with_the_same_curve() {
    check(
        Fault::TrialKills {
            kills: 2,
            at_progress: 0.5,
        },
        TRIAL_SECONDS,
    )
    .await;
}

/// The apiserver down for 13–20 s (stop, 3 s, start-up) from 1.5 s in, longer than a 4 s attempt: the operator
/// reads nothing meanwhile, trials pass their rung and end unobserved, and their termination messages still rank
/// them on their rung's evaluation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_rides_out_an_apiserver_restart() {
    check(
        Fault::ApiserverRestarts {
            restarts: 1,
            first_after: 1.5,
            every: 10.0,
            down: 3.0,
        },
        4.0,
    )
    .await;
}
