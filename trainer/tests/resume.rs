//! Checkpoints end to end with the binary: a run paused at rungs (one mid-epoch in each epoch) or stopped by SIGTERM
//! at an arbitrary step, then resumed, produces bit for bit the loss and evaluation curve of a run that never
//! stopped; a checkpoint of another run or a damaged one is refused and the run starts from the beginning.

mod common;

use seedsweep_crds::trainer::{Outcome, TrialSummary, exit_code};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// 64 examples in batches of 8: 8 steps per epoch, 2 epochs, evaluations every 2 steps (4 per epoch).
fn args(dir: &Path, wi: u64, extra: &[&str]) -> Vec<String> {
    let mut args = common::small_mrpc_args(dir);
    args.extend(
        [
            "--wi-seed",
            &wi.to_string(),
            "--do-seed",
            "5",
            "--train-subset",
            "64",
            "--dev-subset",
            "16",
            "--max-seq-length",
            "32",
            "--batch-size",
            "8",
            "--epochs",
            "2",
            "--evals-per-epoch",
            "4",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string()),
    );
    args
}

/// Runs the trainer to its end; its exit code and full summary.
fn run(dir: &Path, wi: u64, extra: &[&str]) -> (i32, Value) {
    let out = common::trainer()
        .args(args(dir, wi, extra))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let code = out.status.code().expect("the trainer exits");
    (code, common::read_json(&dir.join("summary.json")))
}

/// What must be identical: every step's loss and every evaluation.
fn curve(summary: &Value) -> (Value, Value) {
    (summary["trainLoss"].clone(), summary["evals"].clone())
}

#[test]
fn a_run_paused_at_rungs_and_resumed_trains_exactly_as_one_that_never_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (code, straight) = run(dir.path(), 1, &[]);
    assert_eq!(code, exit_code::COMPLETED);
    assert_eq!(straight["trainLoss"].as_array().unwrap().len(), 16);

    let ckpt = dir.path().join("ckpt");
    let ckpt = ckpt.to_str().unwrap();
    // Rungs at 37.5 % and 75 %: the evaluations after steps 6 (mid first epoch) and 12 (mid second).
    let paused = [
        "--checkpoint-dir",
        ckpt,
        "--rungs",
        "0.375,0.75",
        "--pause-at-rungs",
        "--resume-from",
        ckpt,
    ];
    let (code, first) = run(dir.path(), 1, &paused);
    assert_eq!(code, exit_code::COMPLETED);
    assert_eq!(first["outcome"], "paused");
    assert_eq!(first["stepsDone"], 6);
    assert!(first.get("resumedFromStep").is_none());
    assert_eq!(
        first["trainLoss"].as_array().unwrap()[..],
        straight["trainLoss"].as_array().unwrap()[..6]
    );
    let (code, second) = run(dir.path(), 1, &paused);
    assert_eq!(code, exit_code::COMPLETED);
    assert_eq!(second["resumedFromStep"], 6);
    assert_eq!(second["stepsDone"], 12);
    let (code, last) = run(dir.path(), 1, &paused);
    assert_eq!(code, exit_code::COMPLETED, "{last:#}");
    assert_eq!(last["resumedFromStep"], 12);
    assert_eq!(
        last["stepSeconds"].as_array().unwrap().len(),
        4,
        "only 4 steps trained"
    );
    assert_eq!(curve(&last), curve(&straight));
    assert_eq!(last["finalMetrics"], straight["finalMetrics"]);
    assert_eq!(last["epochOrderDigests"], straight["epochOrderDigests"]);
    let files: Vec<_> = std::fs::read_dir(ckpt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".ckpt"))
        .collect();
    assert_eq!(
        files,
        ["step-00000012.ckpt"],
        "only the newest checkpoint is kept"
    );
    let log: TrialSummary =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("termination-log")).unwrap())
            .unwrap();
    assert_eq!(log.resumed_from_step, 12);
    assert_eq!(log.outcome, Outcome::Completed);
}

#[test]
fn a_run_stopped_by_sigterm_checkpoints_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (_, straight) = run(dir.path(), 2, &[]);
    let ckpt = dir.path().join("ckpt");
    let ckpt = ckpt.to_str().unwrap();
    let flags = [
        "--checkpoint-dir",
        ckpt,
        "--checkpoint-on-stop",
        "--resume-from",
        ckpt,
    ];
    let mut running = common::spawn(&args(dir.path(), 2, &flags));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "step 3 was never logged");
        if let Ok(line) = running.lines.recv_timeout(Duration::from_secs(1))
            && line.starts_with("step 3/")
        {
            break;
        }
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = running.child.wait().unwrap();
    assert_eq!(status.code(), Some(exit_code::TERMINATED));
    let stopped = common::read_json(&dir.path().join("summary.json"));
    let at = stopped["stepsDone"].as_u64().unwrap();
    assert!((3..16).contains(&at), "stopped after {at} steps");
    assert_eq!(
        stopped["checkpoints"].as_array().unwrap().len(),
        1,
        "{stopped:#}"
    );

    let (code, resumed) = run(dir.path(), 2, &flags);
    assert_eq!(code, exit_code::COMPLETED);
    assert_eq!(resumed["resumedFromStep"], at);
    assert_eq!(curve(&resumed), curve(&straight));
}

#[test]
fn another_runs_or_a_damaged_checkpoint_is_refused_and_the_run_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let ckpt_s = ckpt.to_str().unwrap();
    let (code, _) = run(
        dir.path(),
        3,
        &[
            "--checkpoint-dir",
            ckpt_s,
            "--rungs",
            "0.25",
            "--pause-at-rungs",
        ],
    );
    assert_eq!(code, exit_code::COMPLETED);
    let file = ckpt.join("step-00000004.ckpt");
    assert!(file.is_file());

    // Another WI seed: refused, trained from the beginning.
    let file_s = file.to_str().unwrap();
    let (code, other) = run(dir.path(), 4, &["--resume-from", file_s]);
    assert_eq!(code, exit_code::COMPLETED);
    assert!(other.get("resumedFromStep").is_none());
    assert_eq!(other["stepSeconds"].as_array().unwrap().len(), 16);
    let refused = other["resumeRefused"][0].as_str().unwrap();
    assert!(
        refused.contains("it was written for wiSeed 3, this run has 4"),
        "{refused}"
    );

    // A damaged byte in the tensor data: detected by the checksum, never loaded.
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let (code, damaged) = run(dir.path(), 3, &["--resume-from", file_s]);
    assert_eq!(code, exit_code::COMPLETED);
    assert!(damaged.get("resumedFromStep").is_none());
    let refused = damaged["resumeRefused"][0].as_str().unwrap();
    assert!(refused.contains("fails the checksum"), "{refused}");

    // Cut short, as by a full disk.
    std::fs::write(&file, &bytes[..n / 2]).unwrap();
    let (_, cut) = run(dir.path(), 3, &["--resume-from", file_s]);
    let refused = cut["resumeRefused"][0].as_str().unwrap();
    assert!(refused.contains("truncated"), "{refused}");
    assert_eq!(
        curve(&cut),
        curve(&damaged),
        "both trained from the beginning"
    );
}

#[test]
fn checkpoint_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, expect) in [
        (
            vec!["--rungs", "0.5", "--pause-at-rungs"],
            "--checkpoint-dir",
        ),
        (vec!["--rungs", "1.5"], "not a fraction"),
        (vec!["--checkpoint-dir", "x", "--pause-at-rungs"], "--rungs"),
        (vec!["--checkpoint-on-stop"], "--checkpoint-dir"),
    ] {
        let out = common::trainer()
            .args(args(dir.path(), 1, &extra))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(exit_code::USAGE), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{extra:?}: {stderr}");
    }
}
