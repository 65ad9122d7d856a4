//! End-to-end tests of `seedsweep run`: real trainer processes fine-tuning MiniLM on a tiny MRPC subset, scraped
//! over HTTP, decided by the engine.

mod common;

use common::{model_dir, trainer, workspace};
use seedsweep_operator::engine::policy::RunState;
use seedsweep_operator::engine::state::SweepState;
use seedsweep_operator::engine::whatif::lock_step;
use seedsweep_operator::local::store;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A 2 × 2 sweep, one rung at 50 % keeping 2, trained for a handful of steps on 32 MRPC examples.
fn manifest(dir: &Path, name: &str) -> PathBuf {
    let data = workspace().join("examples/local/data/MRPC");
    let text = format!(
        r#"apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata:
  name: {name}
spec:
  task: {{name: mrpc, dataDir: {data}, trainSubset: 32, devSubset: 48}}
  model: {{path: {model}}}
  seeds:
    weightInit: {{values: [1, 2]}}
    dataOrder: {{values: [1, 2]}}
  training: {{epochs: 1, batchSize: 4, learningRate: 1.0e-4, maxSeqLength: 32, evalsPerEpoch: 4}}
  earlyDiscard:
    rungs: [{{atFraction: 0.5, keepCount: 2}}]
  parallelism: 2
"#,
        data = data.display(),
        model = model_dir().display()
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn seedsweep(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seedsweep"));
    cmd.args(args);
    cmd
}

fn run_sweep(manifest: &Path, state: &Path) -> Output {
    let out = seedsweep(&["run", "--parallel", "2", "--scrape-interval", "0.2"])
        .arg(manifest)
        .arg("--state-dir")
        .arg(state)
        .arg("--trainer")
        .arg(trainer())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "seedsweep run failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The engine state recorded in a state directory.
fn saved_state(state: &Path) -> SweepState {
    store::read(state).unwrap().expect("a state file").1
}

fn status_json(state: &Path) -> Value {
    let out = seedsweep(&["status", "--output", "json", "--state-dir"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The paper's offline algorithm over the recorded rung scores: the trials it keeps.
fn offline_top(state: &SweepState) -> BTreeSet<String> {
    let plan = &state.plan;
    let rung = plan.rungs[0];
    let mut ranked: Vec<(f64, usize)> = state
        .trials
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let e = t
                .evals
                .iter()
                .find(|e| t.progress(e) + 1e-9 >= rung.at_fraction)
                .expect("every trial reached the rung");
            (e.score, i)
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked
        .iter()
        .take(rung.keep)
        .map(|&(_, i)| plan.trials[i].name.clone())
        .collect()
}

fn phases(status: &Value) -> Vec<(String, String)> {
    status["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["phase"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// One uninterrupted run of the small sweep, `fs-a`: its manifest, state directory (`<dir>/states/fs-a`) and output,
/// shared by the tests that check it, compare an interrupted run with it, and choose seeds from it (`fromSweeps`
/// finds it beside the choosing sweep's state directory): two real sweeps fewer to train. A static is never
/// dropped: its directory (a few MB) stays in $TMPDIR after the tests.
struct Reference {
    dir: tempfile::TempDir,
    manifest: PathBuf,
    state: PathBuf,
    stdout: String,
}

fn reference() -> &'static Reference {
    static REFERENCE: std::sync::OnceLock<Reference> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest(dir.path(), "fs-a");
        let state = dir.path().join("states/fs-a");
        let out = run_sweep(&manifest, &state);
        Reference {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            dir,
            manifest,
            state,
        }
    })
}

#[test]
fn a_local_sweep_discards_exactly_the_offline_cut() {
    let Reference {
        dir, state, stdout, ..
    } = reference();
    assert!(stdout.contains("sweep fs-a: Succeeded"), "{stdout}");

    let saved = saved_state(state);
    let status = status_json(state);
    let kept = offline_top(&saved);
    assert_eq!(kept.len(), 2);
    for (t, record) in saved
        .trials
        .iter()
        .zip(status["trials"].as_array().unwrap())
    {
        let name = record["name"].as_str().unwrap();
        let phase = record["phase"].as_str().unwrap();
        let steps = t.steps_done;
        let total = t.total_steps.unwrap();
        assert_eq!(total, 8, "32 examples at batch 4 for one epoch");
        if kept.contains(name) {
            assert_eq!(phase, "Succeeded", "{name}");
            assert_eq!(steps, total, "{name} trained to completion");
            assert!(
                record["finalScore"].as_f64().is_some(),
                "{name} has a final score"
            );
            assert_eq!(t.evals.len(), 4, "{name}: four evaluations");
        } else {
            assert_eq!(phase, "Discarded", "{name}");
            assert!(
                steps < total,
                "{name} was stopped early ({steps} of {total} steps)"
            );
            assert!(
                record["reason"].as_str().unwrap().contains("rung 0"),
                "{record}"
            );
        }
    }

    // The expected-max curve comes from the finished trials' final scores.
    let finals: Vec<f64> = status["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["finalScore"].as_f64())
        .collect();
    assert_eq!(finals.len(), 2);
    let curve = status["statistics"]["expectedMax"].as_array().unwrap();
    assert_eq!(curve.len(), 2);
    let mean1 = (finals[0] + finals[1]) / 2.0;
    assert!((curve[0]["mean"].as_f64().unwrap() - mean1).abs() < 1e-12);
    // Of two draws with replacement, the max is the larger value unless both draws hit the smaller: 3/4 vs 1/4.
    let (lo, hi) = (finals[0].min(finals[1]), finals[0].max(finals[1]));
    assert!((curve[1]["mean"].as_f64().unwrap() - (0.75 * hi + 0.25 * lo)).abs() < 1e-12);
    assert_eq!(status["bestTrial"]["score"].as_f64().unwrap(), hi);
    assert!(
        stdout.contains("expected best acc_and_f1 of n finished trials"),
        "{stdout}"
    );

    // `seedsweep report` on this real sweep: the pages, the figures, and the same best trial.
    let report = dir.path().join("report");
    let out = seedsweep(&["report", "--state-dir"])
        .arg(state)
        .arg("--out")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in [
        "report.html",
        "report.md",
        "expected_max.png",
        "learning_curves.svg",
    ] {
        assert!(report.join(file).is_file(), "{file}");
    }
    let json: Value =
        serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["status"]["bestTrial"], status["bestTrial"]);
}

#[test]
fn an_interrupted_sweep_resumes_without_rerunning_finished_trials() {
    let Reference {
        manifest,
        state: reference,
        ..
    } = reference();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut child = seedsweep(&["run", "--parallel", "2", "--scrape-interval", "0.2"])
        .arg(manifest)
        .arg("--state-dir")
        .arg(&state)
        .arg("--trainer")
        .arg(trainer())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it hard once one trial has finished and another is running.
    let deadline = Instant::now() + Duration::from_secs(300);
    let finished_before = loop {
        assert!(Instant::now() < deadline, "no trial finished in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it could be interrupted"
        );
        if let Ok(Some((_, v))) = store::read(&state) {
            let done: Vec<String> = v
                .trials
                .iter()
                .enumerate()
                .filter(|(_, t)| t.run == RunState::Completed)
                .map(|(i, _)| v.plan.trials[i].name.clone())
                .collect();
            let running = v.trials.iter().any(|t| t.run == RunState::Running);
            if !done.is_empty() && running {
                break done;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();

    // A second run on the same directory while none holds it resumes and completes.
    run_sweep(manifest, &state);
    let resumed = saved_state(&state);
    for (planned, t) in resumed.plan.trials.iter().zip(&resumed.trials) {
        let name = &planned.name;
        if finished_before.contains(name) {
            assert_eq!(
                t.attempts, 1,
                "{name} finished before the interruption and must not run again"
            );
        }
    }
    assert_eq!(
        phases(&status_json(&state)),
        phases(&status_json(reference))
    );
    let scores = |v: &Value| -> Vec<Value> {
        v["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["rungs"].clone())
            .collect()
    };
    assert_eq!(
        scores(&status_json(&state)),
        scores(&status_json(reference)),
        "rung scores differ from an uninterrupted run"
    );
}

#[test]
fn two_runs_on_one_state_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = seedsweep_operator::local::store::Store::open(&state).unwrap();
    let out = seedsweep(&["run", "--trainer"])
        .arg(trainer())
        .arg(manifest(dir.path(), "locked"))
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    drop(store);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another `seedsweep run`")
            && stderr.contains("is using the state directory"),
        "{stderr}"
    );
}

#[test]
fn user_errors_get_one_clear_message_each() {
    let dir = tempfile::tempdir().unwrap();
    let good = manifest(dir.path(), "errors");
    let text = std::fs::read_to_string(&good).unwrap();
    let run = |manifest: &Path, extra: &[&str]| {
        let out = seedsweep(&["run"])
            .arg(manifest)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let trainer = trainer();
    let trainer = trainer.to_str().unwrap();

    let e = run(&good, &["--trainer", "/nonexistent/seedsweep-trainer"]);
    assert!(
        e.contains("--trainer /nonexistent/seedsweep-trainer: no such file"),
        "{e}"
    );

    let no_model = dir.path().join("no-model.yaml");
    std::fs::write(
        &no_model,
        text.replace(model_dir().to_str().unwrap(), "/nonexistent/model"),
    )
    .unwrap();
    let e = run(&no_model, &["--trainer", trainer]);
    assert!(
        e.contains("spec.model.path: /nonexistent/model does not exist"),
        "{e}"
    );

    let no_data = dir.path().join("no-data.yaml");
    std::fs::write(
        &no_data,
        text.replace("examples/local/data/MRPC", "examples/local/data/NOPE"),
    )
    .unwrap();
    let e = run(&no_data, &["--trainer", trainer]);
    assert!(
        e.contains("spec.task.dataDir:") && e.contains("NOPE does not exist"),
        "{e}"
    );

    // A model directory the trainer cannot load: the first trial fails at start and its stderr is shown and kept.
    let bad_model = dir.path().join("bad-model");
    std::fs::create_dir_all(&bad_model).unwrap();
    std::fs::write(bad_model.join("pytorch_model.bin"), b"not a checkpoint").unwrap();
    let crash = dir.path().join("crash.yaml");
    std::fs::write(
        &crash,
        text.replace(model_dir().to_str().unwrap(), bad_model.to_str().unwrap()),
    )
    .unwrap();
    let e = run(&crash, &["--trainer", trainer]);
    assert!(
        e.contains("failed at start") && e.contains("stderr is kept in"),
        "{e}"
    );
    assert!(
        e.contains("safetensors"),
        "the trainer's own message is shown: {e}"
    );
}

/// The README's main command runs this manifest; run it here the same way (debug build, same flags) so CI proves it.
#[test]
fn the_quick_start_manifest_runs_to_completion() {
    let quick = workspace().join("examples/local/mrpc-quick.yaml");
    assert!(
        workspace().join(".minilm/config.json").is_file(),
        "scripts/setup-libtorch.sh links .minilm"
    );
    let dir = tempfile::tempdir().unwrap();
    // As scripts/quickstart.sh runs it: no --parallel, so the manifest's parallelism (2) bounds the sweep.
    let out = seedsweep(&["run", "--scrape-interval", "0.2"])
        .arg(&quick)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--trainer")
        .arg(trainer())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("running up to 2 trial(s) at once (spec.parallelism)"),
        "{stdout}"
    );
    assert!(stdout.contains("sweep mrpc-quick: Succeeded"), "{stdout}");
    assert!(
        stdout.contains("trials: 4 total, 1 finished, 3 discarded"),
        "{stdout}"
    );

    // It shows what it is about: the seeds alone separate the trials at the rung (no ties at the majority class),
    // the rung ranks trials that learned, and the kept one beats the majority class.
    let state = dir.path().join("state");
    let status = status_json(&state);
    let trials = status["trials"].as_array().unwrap();
    let mut rung: Vec<f64> = trials
        .iter()
        .map(|t| t["rungs"][0]["score"].as_f64().expect("a rung score"))
        .collect();
    rung.sort_by(f64::total_cmp);
    assert!(
        rung.windows(2).all(|w| w[1] - w[0] > 1e-6),
        "rung scores tie: {rung:?}"
    );
    let kept = status["bestTrial"]["name"].as_str().unwrap();
    let summary: Value = serde_json::from_slice(
        &std::fs::read(state.join("trials").join(kept).join("summary.json")).unwrap(),
    )
    .unwrap();
    let majority = summary["majorityBaseline"]["acc_and_f1"].as_f64().unwrap();
    assert!(
        rung[3] > majority + 0.005,
        "the best rung score {} is the majority class's {majority}",
        rung[3]
    );
    let mcc = summary["finalMetrics"]["mcc"].as_f64().unwrap();
    assert!(mcc > 0.1, "the kept trial's final MCC is {mcc}");
    let compute = &status["statistics"]["compute"];
    assert!(
        compute["stepsSpent"].as_u64() < compute["stepsWithoutDiscarding"].as_u64(),
        "{compute}"
    );
}

/// `weightInit.fromSweeps` locally: the seeds come from the state directories beside the new sweep's. A sweep that
/// is missing or unfinished is refused with its name; once both are there and finished, the new sweep trains the
/// top seeds by mean relative rank (computed here by hand from the real sweep's scores), and a rerun of the same
/// manifest resumes rather than calling the resolved seeds a change.
#[test]
fn weight_init_seeds_come_from_earlier_sweeps() {
    // fs-a is the shared real 2 × 2 sweep; fs-b and fs-c go beside it.
    let fs_a = &reference().state;
    let root = fs_a.parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(manifest(dir.path(), "fs-c")).unwrap();
    let chosen = dir.path().join("fs-c.yaml");
    std::fs::write(
        &chosen,
        text.replace(
            "weightInit: {values: [1, 2]}",
            "weightInit: {fromSweeps: {sweeps: [fs-a, fs-b], top: 2}}",
        )
        .replace("dataOrder: {values: [1, 2]}", "dataOrder: {values: [1]}"),
    )
    .unwrap();
    let run_chosen = || {
        seedsweep(&["run", "--parallel", "2", "--scrape-interval", "0.2"])
            .arg(&chosen)
            .arg("--state-dir")
            .arg(root.join("fs-c"))
            .arg("--trainer")
            .arg(trainer())
            .output()
            .unwrap()
    };
    let refused = |why: &str| {
        let out = run_chosen();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("cannot choose the weight-init seeds of sweep fs-c")
                && stderr.contains(why),
            "{stderr}"
        );
        assert!(
            !root.join("fs-c/state.json").exists(),
            "a refused sweep must not start"
        );
    };
    refused("sweep fs-b has no state directory");

    // fs-b: a synthetic sweep over weight-init seeds 1, 2, 3 that ranks 2 first, then 3, then 1; first unfinished.
    let b_spec = seedsweep_operator::manifest::load(
        &text
            .replace("name: fs-c", "name: fs-b")
            .replace(
                "weightInit: {values: [1, 2]}",
                "weightInit: {values: [1, 2, 3]}",
            )
            .replace(
                "  earlyDiscard:\n    rungs: [{atFraction: 0.5, keepCount: 2}]\n",
                "",
            ),
    )
    .unwrap()
    .spec;
    let b_plan = seedsweep_operator::engine::plan::plan("fs-b", &b_spec);
    let b_score = |i: usize, _| [0.0, 0.5, 0.9, 0.7][b_plan.trials[i].weight_init as usize];
    let save_b = |evals| {
        let state = lock_step::run_sweep("fs-b", &b_spec, evals, b_score);
        store::Store::open(&root.join("fs-b"))
            .unwrap()
            .save(&b_spec, &state)
            .unwrap();
    };
    save_b(lock_step::EVALS - 1);
    refused("sweep fs-b has not finished (6 of its 6 trials have not ended)");
    save_b(lock_step::EVALS);

    // By hand: fs-a's weight-init seeds by the mean of their trials' latest scores (final, else last evaluation).
    let a = saved_state(fs_a);
    let mean_latest = |seed: u64| {
        let scores: Vec<f64> = (a.plan.trials.iter().zip(&a.trials))
            .filter(|(p, _)| p.weight_init == seed)
            .map(|(_, t)| {
                (t.final_metrics.map(|m| m.acc_and_f1))
                    .unwrap_or_else(|| t.evals.last().unwrap().score)
            })
            .collect();
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    // fs-b ranks 2 (0), 3 (0.5), 1 (1). With fs-a ranking 1 first, seeds 1 and 2 tie at 0.5 (the lower wins);
    // with fs-a ranking 2 first, 2 leads (0) and 1 follows (1). Seed 3 is ranked in one sweep only: last.
    let expected: Vec<u64> = if mean_latest(2) > mean_latest(1) {
        vec![2, 1]
    } else {
        vec![1, 2]
    };

    let out = run_chosen();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (spec, state) = store::read(&root.join("fs-c")).unwrap().unwrap();
    let list = spec.seeds.weight_init.as_ref().unwrap();
    assert_eq!(list.values.as_ref(), Some(&expected));
    assert!(
        list.from_sweeps.is_some(),
        "the plan's spec keeps fromSweeps as written"
    );
    let names: BTreeSet<String> = state.plan.trials.iter().map(|t| t.name.clone()).collect();
    let wanted: BTreeSet<String> = expected.iter().map(|w| format!("fs-c-w{w}-d1")).collect();
    assert_eq!(names, wanted);
    assert!(
        state.trials.iter().all(|t| t.run == RunState::Completed),
        "{:?}",
        state.trials
    );
    // Run again with the same manifest: the finished sweep's summary, not a refused change.
    let again = run_chosen();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(stdout.contains("sweep fs-c: Succeeded"), "{stdout}");
}

/// The manifest of [`manifest`] in exact mode, with or without checkpoints.
fn exact_manifest(dir: &Path, name: &str, checkpoints: bool) -> PathBuf {
    let path = manifest(dir, name);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "  earlyDiscard:\n",
        &format!(
            "{}  earlyDiscard:\n    mode: exact\n",
            if checkpoints {
                "  checkpoints: {}\n"
            } else {
                ""
            }
        ),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn exact_mode_with_checkpoints_spends_the_papers_compute_and_keeps_the_same_scores() {
    let dir = tempfile::tempdir().unwrap();
    let with = dir.path().join("with");
    let out = run_sweep(&exact_manifest(dir.path(), "ckpt", true), &with);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("sweep ckpt: Succeeded"), "{stdout}");
    let without = dir.path().join("without");
    run_sweep(&exact_manifest(dir.path(), "ckpt", false), &without);

    // t = 4 trials of s = 8 steps, a rung at f = 1/2 keeping p = 2: (t·f + p·(1 − f))·s = 16 + 8.
    let saved = saved_state(&with);
    let spent: u64 = saved.trials.iter().map(|t| t.steps_spent()).sum();
    assert_eq!(spent, 24, "{:#?}", saved.trials);
    let status = status_json(&with);
    assert_eq!(status["statistics"]["compute"]["stepsSpent"], 24);
    assert!(
        status["checkpoints"]
            .as_str()
            .unwrap()
            .starts_with("on, in "),
        "{status}"
    );
    let reference = status_json(&without);
    assert!(
        reference["checkpoints"]
            .as_str()
            .unwrap()
            .starts_with("off"),
        "{reference}"
    );
    // Without checkpoints a kept trial trains its first half again.
    let spent_without: u64 = saved_state(&without)
        .trials
        .iter()
        .map(|t| t.steps_spent())
        .sum();
    assert!(spent_without > 24, "{spent_without}");

    // Resuming changes nothing a trial computes: the same phases, rung scores and final scores.
    assert_eq!(phases(&status), phases(&reference));
    let scores = |v: &Value| -> Vec<(Value, Value)> {
        v["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["rungs"].clone(), t["finalScore"].clone()))
            .collect()
    };
    assert_eq!(scores(&status), scores(&reference));
    // Every kept trial resumed from its rung; every trial has ended, so no checkpoint is left.
    for t in &saved.trials {
        if t.run == RunState::Completed {
            assert_eq!(t.resumed_from_step, 4);
            assert_eq!(t.attempts, 2);
        }
    }
    for entry in std::fs::read_dir(with.join("trials")).unwrap() {
        let ckpt = entry.unwrap().path().join("checkpoints");
        assert!(!ckpt.exists(), "{} is left", ckpt.display());
    }
}
