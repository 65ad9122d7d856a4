//! The operator on a real v1.20 apiserver with the node simulator, running stand-in trials: the scale benchmark's
//! own driver (`seedsweep_tests::bench`) on a small sweep. It fails unless the sweep succeeds with exactly the
//! offline cut of the curves the stand-ins served, and every discarded trial's Job is deleted after its rung
//! evaluation was served.

mod common;

use common::workspace;
use seedsweep_tests::bench::{Options, run};
use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_keeps_the_offline_cut_of_standin_curves() {
    if let Some(why) = seedsweep_tests::cluster::local_unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_seedsweep"));
    let standin = bin.parent().unwrap().join("seedsweep-standin");
    if !standin.is_file() {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "seedsweep-tests",
                "--bin",
                "seedsweep-standin",
            ])
            .current_dir(workspace())
            .status()
            .unwrap();
        assert!(status.success(), "building seedsweep-standin failed");
    }
    let out = tempfile::tempdir().unwrap();
    let report = run(Options {
        trials: 9,
        parallelism: 4,
        sweeps: 1,
        trial_seconds: 4.0,
        operator: bin.to_path_buf(),
        standin: Some(standin),
        curves: workspace().join("bench/curves/sst2-6x6.json"),
        scrape_interval: Some(0.5),
        out: Some(out.path().to_path_buf()),
        timeout_minutes: 5,
        // The restart of the controller manager with another client rate, as the benchmark's option does.
        controller_manager_qps: Some(100),
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report["phase"], "Succeeded", "{report:#}");
    assert_eq!(report["keptIsOfflineCut"], true);
    assert_eq!(report["counts"]["succeeded"], 3, "{report:#}");
    assert_eq!(report["counts"]["discarded"], 6, "{report:#}");
    // Discarded and paused trials' Jobs are deleted at the rung: at least one decision per discarded trial.
    assert!(report["decisions"].as_u64().unwrap() >= 6, "{report:#}");
    assert!(
        report["statusWrites"].as_f64().unwrap() >= 1.0,
        "{report:#}"
    );
    assert_eq!(report["controllerManagerQps"], 100);
    // Every Job's pod was seen created, bound and running (the first 4 at least; relaunches add more).
    let starts = &report["podStartSeconds"];
    assert!(starts["pods"].as_u64().unwrap() >= 9, "{report:#}");
    for stage in [
        "jobCreatedToPodCreated",
        "podCreatedToBound",
        "boundToRunning",
    ] {
        let median = starts[stage]["quantiles"]["median"].as_f64().unwrap();
        // Two watch streams in no common order: a pod may be seen a moment before its Job.
        assert!((-5.0..60.0).contains(&median), "{stage}: {report:#}");
    }
}
