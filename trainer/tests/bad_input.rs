//! One clear error per kind of bad input, from the real binary.

mod common;

use std::path::Path;
use std::process::Output;

fn run(args: &[String]) -> Output {
    common::trainer()
        .args(args)
        .output()
        .expect("the trainer binary runs")
}

fn base_args(dir: &Path) -> Vec<String> {
    let mut args = common::small_mrpc_args(dir);
    args.extend(
        [
            "--wi-seed",
            "1",
            "--do-seed",
            "1",
            "--train-subset",
            "8",
            "--dev-subset",
            "8",
        ]
        .map(String::from),
    );
    args
}

fn set(args: &mut [String], flag: &str, value: &str) {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} in the base args"));
    args[i + 1] = value.to_string();
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The failure is also in the termination log, as a summary with outcome `failed` and the message as reason.
fn assert_failed_summary(dir: &Path, needle: &str) {
    let log = common::read_json(&dir.join("termination-log"));
    assert_eq!(log["outcome"], "failed");
    assert!(log["reason"].as_str().unwrap().contains(needle), "{log}");
}

#[test]
fn missing_model_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args(dir.path());
    set(&mut args, "--model-dir", "/nonexistent/model");
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("model directory /nonexistent/model does not exist"),
        "{}",
        stderr(&out)
    );
    assert_failed_summary(dir.path(), "does not exist");
}

#[test]
fn pytorch_bin_only_model_dir() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::copy(
        common::model_dir().join("config.json"),
        model.join("config.json"),
    )
    .unwrap();
    std::fs::write(model.join("pytorch_model.bin"), b"not read").unwrap();
    let mut args = base_args(dir.path());
    set(&mut args, "--model-dir", model.to_str().unwrap());
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("has pytorch_model.bin but no model.safetensors"),
        "{err}"
    );
    assert!(
        err.contains("safe_serialization=True"),
        "the error says how to convert: {err}"
    );
}

#[test]
fn malformed_tsv_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("MRPC");
    std::fs::create_dir(&data).unwrap();
    let header = "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n";
    std::fs::write(
        data.join("train.tsv"),
        format!("{header}1\t1\t2\ta\tb\n0\t3\t4\tonly four fields\n"),
    )
    .unwrap();
    std::fs::write(data.join("dev.tsv"), format!("{header}1\t1\t2\ta\tb\n")).unwrap();
    let mut args = base_args(dir.path());
    set(&mut args, "--data-dir", data.to_str().unwrap());
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1));
    let expected = format!(
        "{}:3: expected 5 tab-separated fields for MRPC, found 4",
        data.join("train.tsv").display()
    );
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert_failed_summary(dir.path(), "train.tsv:3");
}

#[test]
fn unknown_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args(dir.path());
    set(&mut args, "--task", "qnli");
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&out).contains("unknown task \"qnli\"; expected one of mrpc, rte, cola, sst2"),
        "{}",
        stderr(&out)
    );
    let log = std::fs::read_to_string(dir.path().join("termination-log")).unwrap();
    assert!(
        log.contains("unknown task"),
        "plain message in the termination log: {log}"
    );
}

#[test]
fn unknown_precision() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args(dir.path());
    args.extend(["--precision".to_string(), "fp16".to_string()]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&out).contains(
            "invalid value 'fp16' for '--precision <PRECISION>': \"fp16\" is not a precision; use fp32 or bf16"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn seq_length_above_the_models_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = base_args(dir.path());
    args.extend(["--max-seq-length".to_string(), "1024".to_string()]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("--max-seq-length 1024 exceeds the model's max_position_embeddings 512"),
        "{}",
        stderr(&out)
    );
}
