//! `seedsweep validate` and the manifest loader: one bad manifest per rule, each with its field-named message.

use proptest::prelude::*;
use seedsweep_operator::manifest::load;
use std::process::Command;

const BASE: &str = r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata:
  name: quick
spec:
  task:
    name: mrpc
    dataDir: data/MRPC
  model:
    path: /models/minilm
  seeds:
    weightInit: {start: 1, count: 4}
    dataOrder: {values: [1, 2, 3]}
  training:
    epochs: 1
    batchSize: 8
    learningRate: 5.0e-5
  earlyDiscard:
    rungs:
      - atFraction: 0.25
        keepFraction: 0.5
  parallelism: 2
"#;

fn errors_of(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "the base manifest has no {from:?}");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_manifest_is_valid() {
    assert_eq!(errors_of(BASE), Vec::<String>::new());
}

/// Each case: a change to the base manifest and the message it must produce (field path first).
#[test]
fn each_rule_rejects_its_bad_manifest_with_the_field_named() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "empty seed list",
            with("{values: [1, 2, 3]}", "{values: []}"),
            "spec.seeds.dataOrder.values: must list at least one seed",
        ),
        (
            "duplicate seed",
            with("{values: [1, 2, 3]}", "{values: [1, 2, 1]}"),
            "spec.seeds.dataOrder.values[2]: duplicate seed 1",
        ),
        (
            "seed count 0",
            with("{start: 1, count: 4}", "{start: 1, count: 0}"),
            "spec.seeds.weightInit.count: must be at least 1, got 0",
        ),
        (
            "both seed forms",
            with("{start: 1, count: 4}", "{start: 1, count: 4, values: [1]}"),
            "spec.seeds.weightInit: give either values or start and count, not both",
        ),
        (
            "count without start",
            with("{start: 1, count: 4}", "{count: 4}"),
            "spec.seeds.weightInit.start: required with count",
        ),
        (
            "missing seeds",
            with("    dataOrder: {values: [1, 2, 3]}\n", ""),
            "spec.seeds.dataOrder: required",
        ),
        (
            "grid too large",
            with("{values: [1, 2, 3]}", "{start: 0, count: 2501}"),
            "spec.seeds: the grid of 4 weightInit × 2501 dataOrder seeds has 10004 trials, more than the maximum 10000",
        ),
        (
            "sample larger than grid",
            with(
                "    dataOrder: {values: [1, 2, 3]}\n",
                "    dataOrder: {values: [1, 2, 3]}\n    sample: {count: 13}\n",
            ),
            "spec.seeds.sample.count: must not exceed the grid's 12 pairs",
        ),
        (
            "fromSweeps with values",
            with(
                "{start: 1, count: 4}",
                "{values: [1], fromSweeps: {sweeps: [mrpc-a], top: 2}}",
            ),
            "spec.seeds.weightInit.values: must be absent with fromSweeps (the seeds come from the sweeps it names)",
        ),
        (
            "fromSweeps naming no sweep",
            with("{start: 1, count: 4}", "{fromSweeps: {sweeps: [], top: 2}}"),
            "spec.seeds.weightInit.fromSweeps.sweeps: must name at least one sweep",
        ),
        (
            "fromSweeps naming a bad name",
            with(
                "{start: 1, count: 4}",
                "{fromSweeps: {sweeps: [Mrpc_A], top: 2}}",
            ),
            "spec.seeds.weightInit.fromSweeps.sweeps[0]: must be a SeedSweep's name (a DNS label), got \"Mrpc_A\"",
        ),
        (
            "fromSweeps naming itself",
            with(
                "{start: 1, count: 4}",
                "{fromSweeps: {sweeps: [rte, quick], top: 2}}",
            ),
            "spec.seeds.weightInit.fromSweeps.sweeps[1]: names this sweep itself (\"quick\")",
        ),
        (
            "fromSweeps naming a sweep twice",
            with(
                "{start: 1, count: 4}",
                "{fromSweeps: {sweeps: [rte, rte], top: 2}}",
            ),
            "spec.seeds.weightInit.fromSweeps.sweeps[1]: duplicate sweep \"rte\"",
        ),
        (
            "fromSweeps top 0",
            with(
                "{start: 1, count: 4}",
                "{fromSweeps: {sweeps: [rte], top: 0}}",
            ),
            "spec.seeds.weightInit.fromSweeps.top: must be at least 1, got 0",
        ),
        (
            "fromSweeps for data order",
            with(
                "{values: [1, 2, 3]}",
                "{fromSweeps: {sweeps: [rte], top: 2}}",
            ),
            "spec.seeds.dataOrder.fromSweeps: only weightInit seeds can come from earlier sweeps",
        ),
        (
            "fromSweeps top beyond the sample",
            with(
                "    weightInit: {start: 1, count: 4}\n    dataOrder: {values: [1, 2, 3]}\n",
                "    weightInit: {fromSweeps: {sweeps: [rte], top: 2}}\n    dataOrder: {values: [1, 2, 3]}\n    sample: {count: 7}\n",
            ),
            "spec.seeds.sample.count: must not exceed the grid's 6 pairs (2 weightInit × 3 dataOrder), got 7",
        ),
        (
            "duplicate pair",
            with(
                "    weightInit: {start: 1, count: 4}\n    dataOrder: {values: [1, 2, 3]}\n",
                "    pairs: [{weightInit: 1, dataOrder: 2}, {weightInit: 1, dataOrder: 2}]\n",
            ),
            "spec.seeds.pairs[1]: duplicate of pairs[0] (weightInit 1, dataOrder 2)",
        ),
        (
            "pairs with a grid",
            with(
                "    dataOrder: {values: [1, 2, 3]}\n",
                "    dataOrder: {values: [1, 2, 3]}\n    pairs: [{weightInit: 1, dataOrder: 2}]\n",
            ),
            "spec.seeds.weightInit: must be absent when spec.seeds.pairs lists the pairs",
        ),
        (
            "rungs not increasing",
            with(
                "      - atFraction: 0.25\n        keepFraction: 0.5\n",
                "      - atFraction: 0.5\n        keepFraction: 0.5\n      - atFraction: 0.3\n        keepFraction: 0.5\n",
            ),
            "spec.earlyDiscard.rungs[1].atFraction: rungs must be strictly increasing, got 0.3 after 0.5",
        ),
        (
            "unknown direction, its path said once",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  objective: {metric: accuracy, direction: sideways}\n",
            ),
            "spec.objective.direction: unknown variant `sideways`, expected `maximize` or `minimize`",
        ),
        (
            "cpu that is not a quantity",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate: {resources: {requests: {cpu: two}}}\n",
            ),
            "spec.trialTemplate.resources.requests.cpu: \"two\" is not a quantity (e.g. 2, 500m, 8Gi)",
        ),
        (
            "half a GPU",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate: {resources: {limits: {nvidia.com/gpu: 0.5}}}\n",
            ),
            "spec.trialTemplate.resources.limits.nvidia.com/gpu: must be a whole number, got \"0.5\"",
        ),
        (
            "requests above limits",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate: {resources: {requests: {memory: 16Gi}, limits: {memory: 8Gi}}}\n",
            ),
            "spec.trialTemplate.resources.requests.memory: must not exceed limits.memory",
        ),
        (
            "a GPU request without its limit",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate: {resources: {requests: {nvidia.com/gpu: 1}}}\n",
            ),
            "spec.trialTemplate.resources.limits.nvidia.com/gpu: is required for an extended resource (set limits; requests default to them)",
        ),
        (
            "a service account name with capitals",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate: {serviceAccountName: Trainer}\n",
            ),
            "spec.trialTemplate.serviceAccountName: must be a DNS subdomain (lowercase letters, digits, '-', '.'), got \"Trainer\"",
        ),
        (
            "a node selector value with a space",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate: {nodeSelector: {gpu: a b}}\n",
            ),
            "spec.trialTemplate.nodeSelector.gpu: \"a b\" is not a valid label value",
        ),
        (
            "a toleration operator",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate: {tolerations: [{key: gpu, operator: In}]}\n",
            ),
            "spec.trialTemplate.tolerations[0].operator: must be Equal or Exists, got \"In\"",
        ),
        (
            "an env name starting with a digit",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate: {env: [{name: 1X, value: y}]}\n",
            ),
            "spec.trialTemplate.env[0].name: must consist of letters, digits, '_', '-' or '.' and not start with a digit, got \"1X\"",
        ),
        (
            "rung at 1",
            with("atFraction: 0.25", "atFraction: 1.0"),
            "spec.earlyDiscard.rungs[0].atFraction: must be in (0, 1), got 1",
        ),
        (
            "rung at 0",
            with("atFraction: 0.25", "atFraction: 0"),
            "spec.earlyDiscard.rungs[0].atFraction: must be in (0, 1), got 0",
        ),
        (
            "keep fraction above 1",
            with("keepFraction: 0.5", "keepFraction: 1.5"),
            "spec.earlyDiscard.rungs[0].keepFraction: must be in (0, 1], got 1.5",
        ),
        (
            "keep count above trials",
            with("keepFraction: 0.5", "keepCount: 13"),
            "spec.earlyDiscard.rungs[0].keepCount: must not exceed the 12 trials in the sweep, got 13",
        ),
        (
            "keep count above previous rung",
            with(
                "      - atFraction: 0.25\n        keepFraction: 0.5\n",
                "      - atFraction: 0.25\n        keepCount: 5\n      - atFraction: 0.5\n        keepCount: 6\n",
            ),
            "spec.earlyDiscard.rungs[1].keepCount: must not exceed the 5 trials kept by rungs[0], got 6",
        ),
        (
            "both keep forms",
            with(
                "keepFraction: 0.5",
                "keepFraction: 0.5\n        keepCount: 2",
            ),
            "spec.earlyDiscard.rungs[0]: give either keepFraction or keepCount, not both",
        ),
        (
            "no keep",
            with("        keepFraction: 0.5\n", ""),
            "spec.earlyDiscard.rungs[0]: give keepFraction or keepCount",
        ),
        (
            "no rungs",
            with(
                "    rungs:\n      - atFraction: 0.25\n        keepFraction: 0.5\n",
                "    rungs: []\n",
            ),
            "spec.earlyDiscard.rungs: must list at least one rung",
        ),
        (
            "metric not of the task",
            with(
                "  earlyDiscard:",
                "  objective:\n    metric: mcc\n  earlyDiscard:",
            ),
            "spec.objective.metric: mcc is not a GLUE metric of task mrpc; use acc_and_f1 or accuracy or f1",
        ),
        (
            "unknown metric",
            with(
                "  earlyDiscard:",
                "  objective:\n    metric: bleu\n  earlyDiscard:",
            ),
            "spec.objective.metric: unknown variant `bleu`",
        ),
        (
            "parallelism 0",
            with("parallelism: 2", "parallelism: 0"),
            "spec.parallelism: must be at least 1, got 0",
        ),
        (
            "epochs 0",
            with("epochs: 1", "epochs: 0"),
            "spec.training.epochs: must be at least 1, got 0",
        ),
        (
            "evals per epoch 0",
            with("epochs: 1", "epochs: 1\n    evalsPerEpoch: 0"),
            "spec.training.evalsPerEpoch: must be at least 1, got 0",
        ),
        (
            "batch size 0",
            with("batchSize: 8", "batchSize: 0"),
            "spec.training.batchSize: must be at least 1, got 0",
        ),
        (
            "learning rate 0",
            with("learningRate: 5.0e-5", "learningRate: 0"),
            "spec.training.learningRate: must be in (0, 1], got 0",
        ),
        (
            "negative learning rate",
            with("learningRate: 5.0e-5", "learningRate: -1.0e-5"),
            "spec.training.learningRate: must be in (0, 1], got -0.00001",
        ),
        (
            "more evaluations than the operator records",
            with("epochs: 1", "epochs: 11\n    evalsPerEpoch: 500"),
            "spec.training.evalsPerEpoch: 11 epochs × 500 evaluations = 5500 evaluations per trial; at most 5000 \
             are recorded (the operator keeps every one in ConfigMaps of 1 MiB)",
        ),
        (
            "warmup above 1",
            with("epochs: 1", "epochs: 1\n    warmupRatio: 1.5"),
            "spec.training.warmupRatio: must be in [0, 1], got 1.5",
        ),
        (
            "unknown task",
            with("name: mrpc", "name: qqp"),
            "spec.task.name: unknown variant `qqp`, expected one of `mrpc`, `rte`, `cola`, `sst2`",
        ),
        (
            "unknown field",
            with("    epochs: 1\n", "    epochs: 1\n    epoch: 3\n"),
            "spec.training.epoch: unknown field \"epoch\"",
        ),
        (
            "hostPath volume",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate:\n    volumes:\n      - name: host\n        hostPath: {path: /}\n",
            ),
            "spec.trialTemplate.volumes[0].hostPath: volume kind \"hostPath\" is not allowed",
        ),
        (
            "volume without source",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate:\n    volumes:\n      - name: data\n",
            ),
            "spec.trialTemplate.volumes[0]: needs exactly one source",
        ),
        (
            "the operator's scratch volume",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate:\n    volumes:\n      - {name: scratch, emptyDir: {}}\n",
            ),
            "spec.trialTemplate.volumes[0].name: \"scratch\" is reserved for the trainer's scratch space",
        ),
        (
            "a mount over the scratch directory",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate:\n    volumes:\n      - {name: data, emptyDir: {}}\n    volumeMounts:\n      - {name: data, mountPath: /scratch}\n",
            ),
            "spec.trialTemplate.volumeMounts[0].mountPath: \"/scratch\" is reserved for the trainer's scratch space",
        ),
        (
            "mount of a missing volume",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate:\n    volumeMounts:\n      - {name: models, mountPath: /models}\n",
            ),
            "spec.trialTemplate.volumeMounts[0].name: no volume named \"models\"",
        ),
        (
            "a checkpoint volume that is not there",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  checkpoints: {volume: ckpt}\n",
            ),
            "spec.checkpoints.volume: no volume named \"ckpt\" in spec.trialTemplate.volumes",
        ),
        (
            "an emptyDir checkpoint volume",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  checkpoints: {volume: ckpt}\n  trialTemplate:\n    volumes:\n      - {name: ckpt, emptyDir: {}}\n    volumeMounts:\n      - {name: ckpt, mountPath: /ckpt}\n",
            ),
            "spec.checkpoints.volume: volume \"ckpt\" must be a persistentVolumeClaim",
        ),
        (
            "a read-only checkpoint mount",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  checkpoints: {volume: ckpt}\n  trialTemplate:\n    volumes:\n      - {name: ckpt, persistentVolumeClaim: {claimName: c}}\n    volumeMounts:\n      - {name: ckpt, mountPath: /ckpt, readOnly: true}\n",
            ),
            "spec.checkpoints.volume: volume \"ckpt\" must be mounted read-write, without subPath",
        ),
        (
            "privileged field",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  trialTemplate:\n    securityContext: {privileged: true}\n",
            ),
            "spec.trialTemplate.securityContext: unknown field \"securityContext\"",
        ),
        (
            "bad name",
            with("name: quick", "name: Quick_Sweep"),
            "metadata.name: must be a DNS label",
        ),
        (
            "name too long for trials",
            with(
                "name: quick",
                "name: a-very-long-sweep-name-that-leaves-no-room-for-the-seed-values",
            ),
            "metadata.name: too long: trial names such as",
        ),
        (
            "wrong kind",
            with("kind: SeedSweep", "kind: Job"),
            "kind: must be SeedSweep, got \"Job\"",
        ),
        (
            "wrong apiVersion",
            with("seedsweep.dev/v1alpha1", "seedsweep.dev/v1"),
            "apiVersion: must be seedsweep.dev/v1alpha1",
        ),
        (
            "wrong type",
            with("epochs: 1", "epochs: three"),
            "spec.training.epochs: invalid type: string \"three\", expected u32",
        ),
        (
            "missing model",
            with("  model:\n    path: /models/minilm\n", ""),
            "spec: missing field `model`",
        ),
        (
            "yaml syntax",
            with("    epochs: 1\n", "    epochs: [1\n"),
            "line",
        ),
        (
            "divergence margin",
            with(
                "  parallelism: 2\n",
                "  parallelism: 2\n  divergence: {afterFraction: 0.3, margin: 1.0}\n",
            ),
            "spec.divergence.margin: must be in [0, 1), got 1",
        ),
    ];
    let mut failures = Vec::new();
    for (rule, yaml, expected) in &cases {
        let errors = errors_of(yaml);
        if !errors.iter().any(|e| e.contains(expected)) {
            failures.push(format!(
                "{rule}: expected an error containing {expected:?}, got {errors:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = with("epochs: 1", "epochs: 0")
        .replacen("parallelism: 2", "parallelism: 0", 1)
        .replacen("keepFraction: 0.5", "keepFraction: 2", 1)
        .replacen(
            "    batchSize: 8\n",
            "    batchSize: 8\n    colour: blue\n    flavour: mint\n",
            1,
        );
    let errors = errors_of(&yaml);
    for expected in [
        "spec.training.epochs",
        "spec.parallelism",
        "spec.earlyDiscard.rungs[0].keepFraction",
        "spec.training.colour",
        "spec.training.flavour",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "no error for {expected} in {errors:?}"
        );
    }
}

#[test]
fn syntax_errors_name_line_and_column() {
    let errors = errors_of(
        "apiVersion: seedsweep.dev/v1alpha1\nkind: SeedSweep\nspec:\n  task: {name: mrpc\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("line 5 column 1") || errors[0].contains("line 4"),
        "{errors:?}"
    );
}

#[test]
fn cli_accepts_the_example_and_rejects_bad_files_with_exit_1() {
    let bin = env!("CARGO_BIN_EXE_seedsweep");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/mrpc-sweep.yaml");
    let ok = Command::new(bin)
        .args(["validate", example])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("valid (625 trials, 1 rung)"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        with("epochs: 1", "epochs: 0").replacen("parallelism: 2", "parallelism: 0", 1),
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["validate", example])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bad.yaml: spec.training.epochs: must be at least 1, got 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad.yaml: spec.parallelism: must be at least 1, got 0"),
        "{stdout}"
    );

    let missing = Command::new(bin)
        .args(["validate", "/nonexistent/sweep.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stdout).contains("/nonexistent/sweep.yaml: cannot read")
    );
}

#[test]
fn cli_prints_the_crd_and_a_json_plan() {
    let bin = env!("CARGO_BIN_EXE_seedsweep");
    let crd = Command::new(bin).arg("crd").output().unwrap();
    assert!(crd.status.success());
    assert_eq!(
        String::from_utf8(crd.stdout).unwrap(),
        seedsweep_crds::crd_yaml()
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("quick.yaml");
    std::fs::write(&file, BASE).unwrap();
    let out = Command::new(bin)
        .args(["plan", "--output", "json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trials = plan["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 12);
    assert_eq!(trials[0]["name"], "quick-w1-d1");
    assert_eq!(plan["rungs"][0]["keep"], 6);

    let table = Command::new(bin).arg("plan").arg(&file).output().unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("12 trials, early discard: exact mode, keep 6 at 25%"),
        "{text}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// No input makes the loader panic: arbitrary text, and the base manifest with a byte range replaced.
    #[test]
    fn loader_never_panics_on_arbitrary_text(text in ".{0,400}") {
        let _ = load(&text);
    }

    #[test]
    fn loader_never_panics_on_mangled_manifests(start in 0usize..400, len in 0usize..40, junk in "[ -~\n\t]{0,20}") {
        let mut bytes = BASE.as_bytes().to_vec();
        let start = start.min(bytes.len());
        let end = (start + len).min(bytes.len());
        bytes.splice(start..end, junk.bytes());
        let _ = load(&String::from_utf8_lossy(&bytes));
    }
}

/// The YAML library's own message names the field too; the error says the path once.
#[test]
fn a_type_error_names_its_path_once() {
    let errors = errors_of(&with(
        "  parallelism: 2\n",
        "  parallelism: 2\n  objective: {metric: accuracy, direction: sideways}\n",
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("spec.objective.direction: unknown variant `sideways`"),
        "{errors:?}"
    );
    assert_eq!(
        errors[0].matches("spec.objective.direction").count(),
        1,
        "{errors:?}"
    );
}

/// `spec.training.precision`: fp32 when absent, bf16 as written and back, and anything else refused by name.
#[test]
fn training_precision_round_trips_and_a_bad_value_names_the_field() {
    use seedsweep_crds::sweep::{Precision, SeedSweepSpec};
    assert_eq!(load(BASE).unwrap().spec.training.precision, Precision::Fp32);
    let spec = load(&with(
        "    learningRate: 5.0e-5\n",
        "    learningRate: 5.0e-5\n    precision: bf16\n",
    ))
    .expect("bf16 is a precision")
    .spec;
    assert_eq!(spec.training.precision, Precision::Bf16);
    let written = serde_yaml::to_string(&spec).unwrap();
    assert!(written.contains("precision: bf16"), "{written}");
    let back: SeedSweepSpec = serde_yaml::from_str(&written).unwrap();
    assert_eq!(back, spec);

    let errors = errors_of(&with(
        "    learningRate: 5.0e-5\n",
        "    learningRate: 5.0e-5\n    precision: fp16\n",
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "spec.training.precision: unknown variant `fp16`, expected `fp32` or `bf16`"
        ),
        "{errors:?}"
    );
}
