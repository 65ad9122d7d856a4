//! `--precision bf16`: the same seeds give the same curve, a curve close to fp32's but not equal to it (the flag
//! changes the arithmetic), libtorch's bf16 kernels and fp32 kernels on bf16-rounded values agree closely, and a
//! bf16 checkpoint never continues an fp32 run.

mod common;

use serde_json::Value;
use std::path::Path;

/// Two steps of 4 MRPC pairs of at most 16 tokens, an evaluation of 4 pairs after each, in the given precision;
/// `extra` appended. Tiny, because libtorch's bf16 products are many times slower than fp32 on CPUs without native
/// bf16 (the run with `--bf16-kernels native`).
fn run(dir: &Path, precision: &str, extra: &[&str]) -> Value {
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
            "4",
            "--max-seq-length",
            "16",
            "--batch-size",
            "4",
            "--epochs",
            "1",
            "--evals-per-epoch",
            "2",
            "--precision",
            precision,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string()),
    );
    common::run_to_summary(&args, dir)
}

#[test]
fn bf16_repeats_itself_stays_near_fp32_and_keeps_its_checkpoints_to_itself() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let checkpoints = dirs[0].path().join("checkpoints");
    let checkpoints = checkpoints.to_str().unwrap();
    let bf16 = run(
        dirs[0].path(),
        "bf16",
        &["--checkpoint-dir", checkpoints, "--rungs", "0.5"],
    );
    let again = run(dirs[1].path(), "bf16", &[]);
    // Both ways of computing bf16 products, whichever `auto` picked on this machine.
    let fp32_kernels = run(dirs[3].path(), "bf16", &["--bf16-kernels", "fp32"]);
    let native = run(dirs[4].path(), "bf16", &["--bf16-kernels", "native"]);
    // The fp32 run is pointed at the bf16 run's checkpoint: it must refuse it and start from the beginning.
    let fp32 = run(dirs[2].path(), "fp32", &["--resume-from", checkpoints]);

    assert_eq!(bf16["precision"], "bf16");
    assert_eq!(fp32["precision"], "fp32");
    assert_eq!(bf16["checkpoints"].as_array().unwrap().len(), 1);

    // Same seeds, same precision: bit-identical losses and evaluations.
    assert_eq!(common::losses(&bf16).len(), 2);
    assert_eq!(common::losses(&bf16), common::losses(&again));
    assert_eq!(bf16["evals"], again["evals"]);

    assert_eq!(fp32["compute"], "fp32");
    assert_eq!(fp32_kernels["compute"], "bf16RoundedFp32");
    assert_eq!(native["compute"], "bf16");
    assert!(bf16["compute"] == "bf16" || bf16["compute"] == "bf16RoundedFp32");
    for (step, (n, r)) in common::losses(&native)
        .iter()
        .zip(common::losses(&fp32_kernels))
        .enumerate()
    {
        assert!(
            (n - r).abs() < 0.01,
            "step {step}: bf16 kernels' loss {n}, fp32 kernels on bf16-rounded values' {r}"
        );
    }

    // Another precision: every loss differs, by rounding only.
    let (b, f) = (common::losses(&bf16), common::losses(&fp32));
    for (step, (b, f)) in b.iter().zip(&f).enumerate() {
        assert_ne!(b, f, "step {step}: bf16 computed exactly what fp32 did");
        assert!(
            (b - f).abs() < 0.02,
            "step {step}: bf16 loss {b} is far from fp32's {f}"
        );
    }

    let refused = fp32["resumeRefused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let why = refused[0].as_str().unwrap();
    assert!(
        why.ends_with(r#"it was written for precision "bf16", this run has "fp32""#),
        "{why}"
    );
    assert_eq!(fp32["resumedFrom"], Value::Null);
    assert_eq!(
        common::losses(&fp32).len(),
        2,
        "the fp32 run trained from the beginning"
    );
}
