//! `seedsweep report` end to end: reports of synthetic sweeps with known numbers, every figure well-formed, the
//! what-if replay of the sweep's own setting, a sweep read from a (fake) apiserver, and every bad input.

mod report_support;

use report_support::*;
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec};
use seedsweep_operator::engine::policy::RunState;
use seedsweep_operator::engine::snapshot::Snapshot;
use seedsweep_operator::engine::state::SweepState;
use seedsweep_operator::engine::whatif::lock_step::{self, EVALS};
use seedsweep_operator::local::store::Store;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIGURES: [&str; 5] = [
    "expected_max",
    "heatmap",
    "seed_effects",
    "learning_curves",
    "what_if",
];

/// A 3 × 3 MRPC sweep with the given early discarding (YAML flow, or none).
fn spec(early_discard: Option<&str>) -> SeedSweepSpec {
    let discard = early_discard.map_or(String::new(), |d| format!("  earlyDiscard: {d}\n"));
    let text = format!(
        "apiVersion: seedsweep.dev/v1alpha1\nkind: SeedSweep\nmetadata: {{name: syn}}\nspec:\n  task: {{name: mrpc, \
         dataDir: /data}}\n  model: {{path: /model}}\n  seeds: {{weightInit: {{values: [11, 12, 13]}}, dataOrder: \
         {{values: [101, 102, 103]}}}}\n  parallelism: 2\n{discard}"
    );
    serde_yaml::from_str::<SeedSweep>(&text).unwrap().spec
}

/// A made-up learning curve whose ranking changes along the way.
fn score(trial: usize, index: u32) -> f64 {
    let t = trial as f64;
    let k = f64::from(index + 1) / f64::from(EVALS);
    0.6 + 0.02 * ((t * 7.0) % 5.0) * (1.0 - k) + 0.03 * ((t * 3.0) % 4.0) * k + 0.001 * t
}

/// A synthetic sweep run through the engine as an executor would (the engine's own what-if fixture), saved in
/// `dir` as `seedsweep run` saves it. `finish_trials` false leaves every trial short of its last evaluation (nothing
/// finished). Returns its state and the state directory.
fn saved_sweep(
    dir: &Path,
    early_discard: Option<&str>,
    finish_trials: bool,
) -> (SweepState, PathBuf) {
    let spec = spec(early_discard);
    let last = if finish_trials { EVALS } else { EVALS / 2 };
    let state = lock_step::run_sweep("syn", &spec, last, score);
    let state_dir = dir.join("state");
    Store::open(&state_dir)
        .unwrap()
        .save(&spec, &state)
        .unwrap();
    (state, state_dir)
}

fn report_json(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

/// `seedsweep report --state-dir STATE_DIR --out OUT`, then `extra`.
fn report(state_dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = ["report", "--state-dir", path(state_dir), "--out", path(out)];
    seedsweep(&[&args[..], extra].concat())
}

/// Given a sweep where every trial trained to completion, when its report is built, then every number in
/// report.json is the engine's, every figure is well-formed, and the pages show them.
#[test]
fn a_complete_sweep_reports_the_engines_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (state, state_dir) = saved_sweep(dir.path(), None, true);
    let out = dir.path().join("report");
    assert_succeeded(&report(&state_dir, &out, &[]));

    let json = report_json(&out);
    let statistics = state.statistics();
    assert_eq!(
        json["status"]["statistics"],
        serde_json::to_value(&statistics).unwrap()
    );
    // Known numbers: nine finished trials; the expected best of one trial is their mean, of nine close to the max.
    let finals: Vec<f64> = (0..9).map(|i| score(i, EVALS - 1)).collect();
    assert_eq!(json["status"]["statistics"]["finishedTrials"], 9);
    let mean1 = json["status"]["statistics"]["expectedMax"][0]["mean"]
        .as_f64()
        .unwrap();
    assert!((mean1 - finals.iter().sum::<f64>() / 9.0).abs() < 1e-12);
    let best = finals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(json["status"]["bestTrial"]["score"].as_f64().unwrap(), best);
    let grid = &json["status"]["statistics"]["grid"];
    assert_eq!(grid["wiSeeds"], serde_json::json!([11, 12, 13]));
    assert_eq!(grid["doSeeds"], serde_json::json!([101, 102, 103]));
    assert_eq!(
        grid["spread"]["expectedStdDueToWi"].as_f64().unwrap(),
        statistics
            .grid
            .as_ref()
            .unwrap()
            .spread
            .expected_std_due_to_wi
    );
    assert_eq!(json["compute"]["accounting"]["stepsSpent"], 9 * 80);
    assert_eq!(json["compute"]["fullRunSteps"], 80);
    assert_eq!(json["compute"]["fullRunsSpent"], 9.0);
    assert_eq!(
        json["compute"]["expectedBestAtSameCompute"],
        json["status"]["statistics"]["expectedMax"][8]
    );
    // Every trial's curve, and the heat map's cells, are the recorded ones.
    let curves = json["curves"].as_array().unwrap();
    assert_eq!(curves.len(), 9);
    for (c, t) in curves.iter().zip(&state.trials) {
        let recorded: Vec<Value> = t
            .evals
            .iter()
            .map(|e| serde_json::json!([t.progress(e), e.score]))
            .collect();
        assert_eq!(c["points"].as_array().unwrap(), &recorded);
    }
    assert!(
        json["grid"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["isFinal"] == true)
    );
    // What-if: the own setting (no discarding) and the grid, every one exact on complete curves.
    let settings = json["whatIf"]["settings"].as_array().unwrap();
    assert!(settings.len() > 3, "{settings:?}");
    assert_eq!(settings[0]["ownSetting"], true);
    assert_eq!(settings[0]["kept"].as_array().unwrap().len(), 9);
    for s in settings {
        assert!(s["beyondRecord"].as_array().unwrap().is_empty(), "{s}");
        assert!(s["bestLost"].is_boolean(), "{s}");
    }
    assert!(
        json["missing"].as_array().unwrap().is_empty(),
        "{}",
        json["missing"]
    );

    assert_figures_well_formed(&out, &FIGURES);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(
        html.matches("<svg").count(),
        FIGURES.len(),
        "every figure inlined"
    );
    assert!(html.contains("Two-way ANOVA") && html.contains("Best vs worst seed"));
    assert!(html.contains(&format!("{best:.4}")));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for name in FIGURES {
        assert!(md.contains(&format!("({name}.png)")), "{name} in report.md");
    }

    // `seedsweep status` prints the headline findings.
    let status = seedsweep(&["status", "--state-dir", path(&state_dir)]);
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert_succeeded(&status);
    for part in [
        "expected std due to WI",
        "two-way ANOVA: weight init",
        "best vs worst seed: WI",
        "early vs final score: rho",
    ] {
        assert!(stdout.contains(part), "{part:?} not in:\n{stdout}");
    }
}

/// Given a sweep that discarded trials at a rung, its report marks them, replays its own setting to the same
/// decisions, and says the best trial's fate cannot be known.
#[test]
fn a_discarding_sweep_replays_its_own_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let (_, state_dir) = saved_sweep(
        dir.path(),
        Some("{rungs: [{atFraction: 0.25, keepCount: 3}]}"),
        true,
    );
    let out = dir.path().join("report");
    assert_succeeded(&report(&state_dir, &out, &[]));
    let json = report_json(&out);
    let names = |phase: &str| -> Vec<Value> {
        (json["status"]["trials"].as_array().unwrap().iter())
            .filter(|t| t["phase"] == phase)
            .map(|t| t["name"].clone())
            .collect()
    };
    assert_eq!(names("Discarded").len(), 6);
    let own = (json["whatIf"]["settings"].as_array().unwrap().iter())
        .find(|s| s["ownSetting"] == true)
        .unwrap();
    assert_eq!(own["discarded"].as_array().unwrap(), &names("Discarded"));
    assert_eq!(own["kept"].as_array().unwrap(), &names("Succeeded"));
    assert_eq!(
        own["stepsSpent"],
        json["compute"]["accounting"]["stepsSpent"]
    );
    assert!(json["compute"]["bestLostByCut"].is_null());
    assert!(
        json["compute"]["bestLostExplanation"]
            .as_str()
            .unwrap()
            .starts_with("cannot be known")
    );
    // Training everything would continue the discarded trials past their record: named, not guessed.
    let everything = (json["whatIf"]["settings"].as_array().unwrap().iter())
        .find(|s| s["earlyDiscard"].is_null())
        .unwrap();
    assert_eq!(everything["beyondRecord"].as_array().unwrap().len(), 6);
    let cells = json["grid"]["cells"].as_array().unwrap();
    assert_eq!(
        cells.iter().filter(|c| c["phase"] == "Discarded").count(),
        6
    );
    assert_figures_well_formed(&out, &FIGURES);

    // --format json writes report.json alone.
    let only = dir.path().join("json-only");
    assert_succeeded(&report(&state_dir, &only, &["--format", "json"]));
    let files: Vec<_> = std::fs::read_dir(&only)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("report.json")]);
}

/// Given a sweep where no trial has finished, the report is partial: written, saying what is missing, exit 1.
#[test]
fn a_sweep_with_no_finished_trial_gets_a_partial_report() {
    let dir = tempfile::tempdir().unwrap();
    let (state, state_dir) = saved_sweep(dir.path(), None, false);
    assert!(state.trials.iter().all(|t| t.run != RunState::Completed));
    let out = dir.path().join("report");
    let run = report(&state_dir, &out, &[]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert_refused(
        &run,
        &[
            "partial report of sweep syn",
            "No trial has trained to completion yet",
        ],
    );
    let json = report_json(&out);
    assert!(
        json["missing"][0]
            .as_str()
            .unwrap()
            .contains("still running"),
        "{}",
        json["missing"]
    );
    assert_figures_well_formed(&out, &FIGURES);
    assert!(out.join("report.html").is_file() && out.join("report.md").is_file());
}

#[test]
fn bad_state_directories_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let missing = dir.path().join("nope");
    let run = report(&missing, &out, &[]);
    assert_refused(&run, &["state directory", "nope does not exist"]);

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = seedsweep(&["report", "--state-dir", path(&empty)]);
    assert_refused(&run, &["no sweep state in", "empty"]);

    let (_, state_dir) = saved_sweep(dir.path(), None, true);
    let file = state_dir.join("state.json");
    let whole = std::fs::read(&file).unwrap();
    std::fs::write(&file, &whole[..whole.len() / 2]).unwrap();
    let run = report(&state_dir, &out, &[]);
    assert_refused(&run, &["state.json is not a SeedSweep state file", "EOF"]);

    let mut old: Value = serde_json::from_slice(&whole).unwrap();
    old["formatVersion"] = 1.into();
    std::fs::write(&file, serde_json::to_vec(&old).unwrap()).unwrap();
    let run = report(&state_dir, &out, &[]);
    assert_refused(
        &run,
        &["state.json", "format version 1, this seedsweep reads 2"],
    );
    assert!(!out.exists(), "nothing written for bad input");

    let run = seedsweep(&["report", "--out", path(&out)]);
    assert_refused(&run, &["--state-dir", "--sweep"]);
}

fn cluster_report(dir: &Path, sweep: Option<Value>, name: &str) -> Output {
    let (server, handle) = fake_apiserver(sweep);
    let config = kubeconfig(dir, &server);
    let out = dir.join(format!("report-{name}"));
    let run = Command::new(env!("CARGO_BIN_EXE_seedsweep"))
        .args([
            "report",
            "--sweep",
            name,
            "-n",
            "ml",
            "--kubeconfig",
            path(&config),
            "--out",
            path(&out),
        ])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    handle.join().unwrap();
    run
}

#[test]
fn a_sweep_in_a_cluster_is_read_from_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let run = cluster_report(dir.path(), None, "gone");
    assert_refused(&run, &["SeedSweep ml/gone does not exist"]);

    let spec = spec(None);
    let object = |status: Value| {
        serde_json::json!({"apiVersion": "seedsweep.dev/v1alpha1", "kind": "SeedSweep",
            "metadata": {"name": "syn", "namespace": "ml"}, "spec": spec, "status": status})
    };
    let run = cluster_report(dir.path(), Some(object(serde_json::json!({}))), "syn");
    assert_refused(&run, &["SeedSweep ml/syn has no recorded state yet"]);

    let state = lock_step::run_sweep("syn", &spec, EVALS, score);
    let snapshot = serde_json::to_value(Snapshot::of(&spec, &state)).unwrap();
    let run = cluster_report(
        dir.path(),
        Some(object(serde_json::json!({"engine": snapshot}))),
        "syn",
    );
    assert_succeeded(&run);
    let json = report_json(&dir.path().join("report-syn"));
    assert_eq!(json["origin"], "SeedSweep ml/syn");
    assert_eq!(
        json["status"]["statistics"],
        serde_json::to_value(state.statistics()).unwrap()
    );
}
