//! `seedsweep run` with `seedsweep-standin` as the trainer: the recorded SST-2 curves replayed on a fast clock, so a
//! 16-trial exact-mode sweep with a rung runs in seconds. Given the curves the stand-in serves (computed offline
//! with its own code), the engine must keep exactly their offline top at the rung and record what was served.

mod common;

use common::workspace;
use seedsweep_crds::MetricName;
use seedsweep_tests::standin::curves::CurveFile;
use seedsweep_tests::standin::offline::{Schedule, offline_top, rung_score, served_evals};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The stand-in built beside `seedsweep` in this profile, building it if only this package was built.
fn standin() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_seedsweep")).parent().unwrap();
    let path = dir.join("seedsweep-standin");
    if !path.is_file() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-p",
            "seedsweep-tests",
            "--bin",
            "seedsweep-standin",
        ])
        .current_dir(workspace());
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "building seedsweep-standin failed"
        );
    }
    path
}

fn curves_path() -> PathBuf {
    workspace().join("bench/curves/sst2-6x6.json")
}

const WI: [u64; 4] = [1, 2, 3, 4];
const DO: [u64; 4] = [11, 12, 13, 14];
const KEEP: usize = 4;
const RUNG_AT: f64 = 0.25;
const SCHEDULE: Schedule = Schedule {
    epochs: 3,
    batch_size: 16,
    evals_per_epoch: 10,
    train_subset: Some(1000),
};

fn manifest(dir: &Path) -> PathBuf {
    // The stand-in ignores the data and model; the local executor only checks that the paths exist.
    let text = format!(
        r#"apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata:
  name: standin
spec:
  task: {{name: sst2, dataDir: ".", trainSubset: 1000}}
  model: {{path: "."}}
  seeds:
    weightInit: {{values: {WI:?}}}
    dataOrder: {{values: {DO:?}}}
  training: {{epochs: 3, batchSize: 16, evalsPerEpoch: 10}}
  earlyDiscard:
    mode: exact
    rungs: [{{atFraction: {RUNG_AT}, keepCount: {KEEP}}}]
  parallelism: 4
"#
    );
    let path = dir.join("standin.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_local_sweep_of_standins_keeps_the_offline_cut_of_the_served_curves() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_seedsweep"))
        .args(["run", "--parallel", "4", "--scrape-interval", "0.2"])
        .arg(manifest(dir.path()))
        .arg("--state-dir")
        .arg(&state)
        .arg("--trainer")
        .arg(standin())
        .env("SEEDSWEEP_STANDIN_CURVES", curves_path())
        .env("SEEDSWEEP_STANDIN_SECONDS", "3")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "seedsweep run failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What each trial is served, in the plan's launch order (the status lists trials in that order).
    let status_out = Command::new(env!("CARGO_BIN_EXE_seedsweep"))
        .args(["status", "--output", "json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(status_out.status.success());
    let status: Value = serde_json::from_slice(&status_out.stdout).unwrap();
    let trials = status["trials"].as_array().unwrap();
    assert_eq!(trials.len(), WI.len() * DO.len());
    let file = CurveFile::load(&curves_path()).unwrap();
    let mut scored = Vec::new();
    for t in trials {
        let (wi, do_) = (
            t["weightInit"].as_u64().unwrap(),
            t["dataOrder"].as_u64().unwrap(),
        );
        let (evals, _) = served_evals(&file, &SCHEDULE, wi, do_, 0.0);
        let name = t["name"].as_str().unwrap().to_string();
        let served = rung_score(&evals, RUNG_AT, MetricName::Accuracy).unwrap();
        // The engine ranked the trial on exactly the value served at the rung.
        let recorded = t["rungs"][0]["score"].as_f64().unwrap();
        assert_eq!(recorded, served, "{name}: rung score");
        if t["phase"] == "Succeeded" {
            let last = evals.last().unwrap().metrics.accuracy;
            assert_eq!(
                t["finalScore"].as_f64().unwrap(),
                last,
                "{name}: final score"
            );
        }
        scored.push((name, served));
    }
    let kept = offline_top(&scored, KEEP);
    let phase_of = |phase: &str| -> BTreeSet<String> {
        trials
            .iter()
            .filter(|t| t["phase"] == phase)
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(phase_of("Succeeded"), kept, "{stdout}");
    let all: BTreeSet<String> = scored.iter().map(|s| s.0.clone()).collect();
    assert_eq!(
        phase_of("Discarded"),
        all.difference(&kept).cloned().collect(),
        "{stdout}"
    );

    // The stand-in's full summary says which recorded run it replayed.
    let name = kept.iter().next().unwrap();
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("trials").join(name).join("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["outcome"], "completed");
    assert!(
        summary["standin"]["recordedTrial"]
            .as_str()
            .unwrap()
            .starts_with("sst2-6x6-w"),
        "{summary}"
    );
}
