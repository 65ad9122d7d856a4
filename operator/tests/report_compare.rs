//! `seedsweep report --compare` end to end: synthetic sweeps with known curves compared by the binary — the
//! engine's numbers in compare.json, whose curve is higher from which n on, the weight-init seeds ranked as the
//! engine ranks them, a SeedSweep read from a (fake) apiserver beside a local sweep, a partial comparison, and
//! every bad input.

mod report_support;

use report_support::*;
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec};
use seedsweep_operator::engine::state::SweepState;
use seedsweep_operator::engine::transfer::{SourceSweep, rank_weight_init};
use seedsweep_operator::engine::whatif::lock_step::{self, EVALS};
use seedsweep_operator::local::store::Store;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

const FIGURE: &str = "compare_expected_max";

/// A 3 × 3 MRPC sweep without discarding; `objective` (YAML flow) replaces the task's default acc_and_f1.
fn spec(objective: Option<&str>) -> SeedSweepSpec {
    let objective = objective.map_or(String::new(), |o| format!("  objective: {o}\n"));
    let text = format!(
        "apiVersion: seedsweep.dev/v1alpha1\nkind: SeedSweep\nmetadata: {{name: syn}}\nspec:\n  task: {{name: mrpc, \
         dataDir: /data}}\n  model: {{path: /model}}\n  seeds: {{weightInit: {{values: [11, 12, 13]}}, dataOrder: \
         {{values: [101, 102, 103]}}}}\n  parallelism: 2\n{objective}"
    );
    serde_yaml::from_str::<SeedSweep>(&text).unwrap().spec
}

/// A made-up learning curve whose ranking changes along the way.
fn varied(trial: usize, index: u32) -> f64 {
    let t = trial as f64;
    let k = f64::from(index + 1) / f64::from(EVALS);
    0.6 + 0.02 * ((t * 7.0) % 5.0) * (1.0 - k) + 0.03 * ((t * 3.0) % 4.0) * k + 0.001 * t
}

/// Every trial at 0.8: the expected best of any n is 0.8.
fn steady(_: usize, _: u32) -> f64 {
    0.8
}

/// One trial of nine at 0.95, the others at 0.75: the expected best of n is 0.75 + 0.2 (1 − (8/9)^n), below 0.8
/// for n ≤ 2 (0.772, 0.792) and above it from n = 3 on (0.810).
fn spiky(trial: usize, _: u32) -> f64 {
    if trial == 0 { 0.95 } else { 0.75 }
}

/// A saved sweep: its spec, its state and the state directory.
struct Saved {
    spec: SeedSweepSpec,
    state: SweepState,
    dir: PathBuf,
}

/// A sweep named `name`, run through the engine up to evaluation `last` of each trial ([`EVALS`] finishes them)
/// and saved in `root/name` as `seedsweep run` saves it.
fn saved(
    root: &Path,
    name: &str,
    spec: SeedSweepSpec,
    last: u32,
    score: impl Fn(usize, u32) -> f64,
) -> Saved {
    let state = lock_step::run_sweep(name, &spec, last, score);
    let dir = root.join(name);
    Store::open(&dir).unwrap().save(&spec, &state).unwrap();
    Saved { spec, state, dir }
}

/// `seedsweep report --compare SRC... --out OUT`, then `extra`.
fn compare(sources: &[&str], out: &Path, extra: &[&str]) -> Output {
    let args = [
        &["report", "--compare"][..],
        sources,
        &["--out", path(out)],
        extra,
    ]
    .concat();
    seedsweep(&args)
}

fn compare_json(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("compare.json")).unwrap()).unwrap()
}

fn json_of(x: impl serde::Serialize) -> Value {
    serde_json::to_value(x).unwrap()
}

/// Given four finished sweeps — one, the same curves 0.05 higher, a steady one and a spiky one — when they are
/// compared, then every row is the engine's numbers, the shifted sweep is above at every n, the spiky one overtakes
/// the steady one at n = 3, the seeds are ranked as the engine ranks them, and every page and figure is written.
#[test]
fn four_finished_sweeps_are_compared_with_the_engines_numbers() {
    let root = tempfile::tempdir().unwrap();
    let sweeps = [
        saved(root.path(), "base", spec(None), EVALS, varied),
        saved(root.path(), "shifted", spec(None), EVALS, |t, i| {
            varied(t, i) + 0.05
        }),
        saved(root.path(), "steady", spec(None), EVALS, steady),
        saved(root.path(), "spiky", spec(None), EVALS, spiky),
    ];
    let out = root.path().join("cmp");
    let dirs: Vec<&str> = sweeps.iter().map(|s| path(&s.dir)).collect();
    let run = compare(&dirs, &out, &[]);
    assert_succeeded(&run);
    assert!(stderr(&run).is_empty(), "{}", stderr(&run));

    let json = compare_json(&out);
    assert_eq!(json["metric"], "acc_and_f1");
    assert_eq!(json["missing"], json!([]));
    let rows = json["sweeps"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for (row, sweep) in rows.iter().zip(&sweeps) {
        let statistics = sweep.state.statistics();
        let grid = statistics.grid.as_ref().unwrap();
        let name = &sweep.state.name;
        assert_eq!(row["name"], json!(name));
        assert_eq!(
            row["origin"],
            json!(format!("state directory {}", sweep.dir.display()))
        );
        assert_eq!(row["task"], "mrpc");
        assert_eq!(
            row["objective"],
            json!({"metric": "acc_and_f1", "direction": "maximize"})
        );
        assert_eq!(row["counts"]["total"], 9);
        assert_eq!(row["finishedTrials"], 9);
        assert_eq!(
            row["expectedMax"],
            json_of(&statistics.expected_max),
            "{name}"
        );
        assert_eq!(row["scores"], json_of(&statistics.scores), "{name}");
        let effects = &row["seedEffects"];
        assert_eq!(
            effects["expectedStdDueToWi"],
            json_of(grid.spread.expected_std_due_to_wi)
        );
        assert_eq!(
            effects["expectedStdDueToDo"],
            json_of(grid.spread.expected_std_due_to_do)
        );
        assert_eq!(effects["weightInit"], json_of(&grid.anova.weight_init));
        assert_eq!(effects["dataOrder"], json_of(&grid.anova.data_order));
        assert_eq!(
            effects["weightInitSignificant"],
            json_of(grid.anova.weight_init.p_value.map(|p| p < 0.05))
        );
        assert_eq!(
            row["earliestEarlyVsFinal"],
            json_of(&statistics.early_vs_final[0])
        );
        assert_eq!(
            row["savingFraction"],
            json_of(statistics.compute.saving_fraction)
        );
    }
    // Known numbers: the best trial of the shifted sweep is the base's best plus 0.05; the spiky sweep's is 0.95.
    let best = |i: usize| rows[i]["bestTrial"]["score"].as_f64().unwrap();
    assert!((best(1) - best(0) - 0.05).abs() < 1e-12);
    assert_eq!(best(3), 0.95);
    let spiky_curve: Vec<f64> = (rows[3]["expectedMax"].as_array().unwrap().iter())
        .map(|p| p["mean"].as_f64().unwrap())
        .collect();
    for (n, mean) in (1..).zip(&spiky_curve) {
        let expected = 0.75 + 0.2 * (1.0 - (8.0f64 / 9.0).powi(n));
        assert!((mean - expected).abs() < 1e-12, "n = {n}: {mean}");
    }
    assert_eq!(rows[2]["seedEffects"]["weightInitSignificant"], Value::Null);

    // One statement per pair, in the order given.
    let orders = json["curveOrders"].as_array().unwrap();
    let pairs: Vec<(&str, &str)> = (orders.iter())
        .map(|o| (o["a"].as_str().unwrap(), o["b"].as_str().unwrap()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("base", "shifted"),
            ("base", "steady"),
            ("base", "spiky"),
            ("shifted", "steady"),
            ("shifted", "spiky"),
            ("steady", "spiky")
        ]
    );
    assert_eq!(
        orders[0]["statement"],
        "shifted is above base at every n (1..9)"
    );
    assert_eq!(
        orders[0]["verdict"],
        json!({"kind": "aboveAtEveryN", "higher": "shifted", "lower": "base"})
    );
    assert_eq!(
        orders[5]["statement"],
        "spiky is above steady for every n ≥ 3 (3..9)"
    );
    assert_eq!(
        orders[5]["verdict"],
        json!({"kind": "aboveFrom", "higher": "spiky", "lower": "steady", "from": 3})
    );
    assert_eq!(
        (&orders[5]["commonPoints"], &orders[5]["crossings"]),
        (&json!(9), &json!(1))
    );

    // The seeds, ranked by the engine.
    let sources: Vec<SourceSweep> = (sweeps.iter())
        .map(|s| SourceSweep {
            name: &s.state.name,
            spec: &s.spec,
            state: &s.state,
        })
        .collect();
    let ranking = rank_weight_init(&sources).unwrap();
    let wi = &json["weightInit"];
    assert_eq!(wi["ranking"], json_of(&ranking));
    assert_eq!(wi["bestSeed"], ranking.seeds[0].seed);
    assert_eq!(
        wi["fromSweeps"],
        json!({"sweeps": ["base", "shifted", "steady", "spiky"], "top": 3})
    );
    assert_eq!(json["weightInitUnavailable"], Value::Null);

    assert_figures_well_formed(&out, &[FIGURE]);
    let html = std::fs::read_to_string(out.join("compare.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 1, "the figure inlined");
    for part in [
        "shifted is above base at every n (1..9)",
        "spiky is above steady for every n ≥ 3 (3..9)",
        "Weight-init seeds across the sweeps",
        &format!("<strong>seed {}</strong>", ranking.seeds[0].seed),
        "fromSweeps: {sweeps: [base, shifted, steady, spiky], top: 3}",
        &format!("{:.4}", best(3)),
    ] {
        assert!(html.contains(part), "{part:?} not in compare.html");
    }
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(md.contains(&format!("({FIGURE}.png)")), "{md}");
    assert!(md.contains("| base | state directory"), "{md}");
}

/// Given a local sweep and a SeedSweep in a cluster, both are read and compared; `--format json` writes only the
/// JSON.
#[test]
fn a_seedsweep_in_the_cluster_is_compared_with_a_local_sweep() {
    let root = tempfile::tempdir().unwrap();
    let base = saved(root.path(), "base", spec(None), EVALS, varied);
    let spec = spec(None);
    let shifted = lock_step::run_sweep("shifted", &spec, EVALS, |t, i| varied(t, i) + 0.05);
    let snapshot = json_of(seedsweep_operator::engine::snapshot::Snapshot::of(
        &spec, &shifted,
    ));
    let object = json!({"apiVersion": "seedsweep.dev/v1alpha1", "kind": "SeedSweep",
        "metadata": {"name": "shifted", "namespace": "ml"}, "spec": spec, "status": {"engine": snapshot}});
    let (server, apiserver) = fake_apiserver(Some(object));
    let config = kubeconfig(root.path(), &server);
    let out = root.path().join("cmp");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_seedsweep"))
        .args([
            "report",
            "--compare",
            path(&base.dir),
            "ssw/shifted",
            "-n",
            "ml",
        ])
        .args(["--kubeconfig", path(&config), "--out", path(&out)])
        .args(["--format", "json"])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert_succeeded(&run);
    apiserver.join().unwrap();
    let files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, vec![std::ffi::OsString::from("compare.json")]);
    let json = compare_json(&out);
    assert_eq!(json["sweeps"][1]["origin"], "SeedSweep ml/shifted");
    assert_eq!(
        json["sweeps"][1]["expectedMax"],
        json_of(shifted.statistics().expected_max)
    );
    assert_eq!(
        json["curveOrders"][0]["statement"],
        "shifted is above base at every n (1..9)"
    );
}

/// Given a finished sweep and one whose trials are all half-way, the comparison is partial: written, exit 1,
/// saying which sweep has nothing finished, and without the seed ranking, saying why.
#[test]
fn a_sweep_with_no_finished_trial_gives_a_partial_comparison() {
    let root = tempfile::tempdir().unwrap();
    let base = saved(root.path(), "base", spec(None), EVALS, varied);
    let half = saved(root.path(), "half", spec(None), EVALS / 2, varied);
    let out = root.path().join("cmp");
    let run = compare(&[path(&base.dir), path(&half.dir)], &out, &[]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let why = "sweep half has not finished (9 of its 9 trials have not ended)";
    assert_refused(
        &run,
        &[
            "partial comparison",
            "Sweep half has no trial trained to completion yet",
            why,
        ],
    );
    let json = compare_json(&out);
    assert_eq!(json["weightInit"], Value::Null);
    assert_eq!(json["weightInitUnavailable"], why);
    assert_eq!(json["sweeps"][1]["finishedTrials"], 0);
    assert_eq!(json["sweeps"][1]["expectedMax"], json!([]));
    assert_eq!(
        json["curveOrders"][0]["statement"],
        "base and half cannot be compared: half has no trial trained to completion"
    );
    assert_figures_well_formed(&out, &[FIGURE]);
    let html = std::fs::read_to_string(out.join("compare.html")).unwrap();
    assert!(!html.contains("Weight-init seeds across the sweeps"));
    assert!(
        html.contains(why),
        "the page says why the seeds are not ranked"
    );
}

#[test]
fn bad_sources_are_refused_clearly() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("cmp");
    let base = saved(root.path(), "base", spec(None), EVALS, varied);
    let accuracy = spec(Some("{metric: accuracy, direction: maximize}"));
    let rte_dir = root.path().join("rte");
    Store::open(&rte_dir)
        .unwrap()
        .save(&accuracy, &SweepState::new("rte", &accuracy))
        .unwrap();
    let refused = |sources: &[&str], expected: &[&str]| {
        let run = compare(sources, &out, &[]);
        assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
        assert_refused(&run, expected);
    };

    refused(
        &[path(&base.dir), path(&rte_dir)],
        &["error: --compare needs sweeps on one metric: base uses acc_and_f1, rte uses accuracy\n"],
    );
    let missing = root.path().join("nope");
    refused(
        &[path(&base.dir), path(&missing)],
        &["state directory", "nope does not exist"],
    );
    let again = base.dir.join("..").join("base");
    refused(
        &[path(&base.dir), path(&again)],
        &[&format!(
            "--compare: the same sweep is given twice ({} and {})",
            base.dir.display(),
            again.display()
        )],
    );
    refused(&["ssw/mrpc", "seedsweep/mrpc"], &["given twice"]);
    // Another directory holding a sweep of the same name cannot be told apart from it.
    let copy = root.path().join("copy");
    Store::open(&copy)
        .unwrap()
        .save(&base.spec, &base.state)
        .unwrap();
    refused(
        &[path(&base.dir), path(&copy)],
        &[
            "--compare needs sweeps of different names",
            "both hold sweep base",
        ],
    );
    assert!(!out.exists(), "nothing written for bad input");

    // The command line itself: one source is too few, and --compare is a source of its own.
    refused(&[path(&base.dir)], &["--compare <SRC> <SRC>..."]);
    let run = seedsweep(&[
        "report",
        "--state-dir",
        path(&base.dir),
        "--compare",
        path(&base.dir),
        path(&copy),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert_refused(&run, &["cannot be used with"]);
}
