//! Checkpoints: everything a run needs to continue exactly where it was — the model's parameters, AdamW's moment
//! estimates and step count, the evaluations and losses so far — in one safetensors file whose metadata says which
//! run it belongs to. The learning rate, the data order and dropout are functions of the step (see
//! [`crate::seeds`]), so the step restores them.
//!
//! A checkpoint is written to a temporary file and renamed into place, so a reader sees a whole file or none. A file
//! that is cut short or damaged fails its SHA-256 and is never loaded; one from another model, task, seed pair,
//! setting or format version is refused, naming the difference. Either way the run starts from the beginning.

use anyhow::{Context, Result, bail};
use safetensors::tensor::{Dtype, SafeTensors, View};
use seedsweep_crds::sweep::Precision;
use seedsweep_crds::trainer::EvalPoint;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Bumped whenever what a checkpoint holds or means changes; other versions are refused. 2: on the CPU, dropout
/// masks come from [`crate::dropout`] (version 1's came from torch's generator), so a version-1 checkpoint would
/// continue its run with other masks than it started with.
pub const FORMAT_VERSION: u32 = 2;
/// The safetensors metadata key holding [`Meta`] as JSON.
const META_KEY: &str = "seedsweep.checkpoint";
const PREFIX: &str = "step-";
const SUFFIX: &str = ".ckpt";

/// What must be equal for a checkpoint to continue this run: the inputs (by content), the seeds and every setting
/// that changes the trajectory. Two runs with equal keys train identically step by step.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunKey {
    pub model_sha256: String,
    pub train_sha256: String,
    pub dev_sha256: String,
    pub task: String,
    pub wi_seed: u64,
    pub do_seed: u64,
    pub dropout_seed: Option<u64>,
    pub epochs: u64,
    pub batch_size: u64,
    pub learning_rate: f64,
    pub max_seq_length: u64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub adam_epsilon: f64,
    pub max_grad_norm: f64,
    pub evals_per_epoch: u64,
    pub train_subset: Option<u64>,
    pub dev_subset: Option<u64>,
    pub pad_to_max: bool,
    /// Absent from checkpoints written before precision existed, which were all fp32.
    #[serde(default)]
    pub precision: Precision,
    pub total_steps: u64,
}

/// A checkpoint's own record: which run, how far, and what the run had produced by then.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub format_version: u32,
    pub key: RunKey,
    /// Optimizer steps done.
    pub step: u64,
    /// The seed dropout masks derive from (the clock's when the run has no dropout seed).
    pub dropout_base_seed: u64,
    pub evals: Vec<EvalPoint>,
    pub train_loss: Vec<f32>,
    pub step_widths: Vec<usize>,
    pub epoch_order_digests: Vec<String>,
    pub examples_trained: usize,
    /// SHA-256 of the file's tensor data, in file order.
    pub data_sha256: String,
}

/// A checkpoint read back whole and checked: its record and its tensors by name.
pub struct Loaded {
    pub path: PathBuf,
    pub meta: Meta,
    pub tensors: HashMap<String, Tensor>,
}

/// SHA-256 of a file's content, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Holds a checkpoint directory for one process: a Job may start a trial's next pod while the deleted one still
/// writes the checkpoint it was stopped for, and the new one must read that, not the one before it, nor write beside
/// it. Released when dropped (or when the process dies).
pub struct DirLock {
    _file: std::fs::File,
}

/// Takes `dir`'s lock, waiting up to `timeout` for another process to release it. After that it goes on with a
/// warning: a holder that never lets go (a lost node's process on a network filesystem) must not stall the trial.
pub fn lock_dir(dir: &Path, timeout: std::time::Duration) -> Result<DirLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(".lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                if !said {
                    eprintln!(
                        "waiting for another process (the trial's previous pod?) to release {}",
                        dir.display()
                    );
                    said = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "warning: {} is still locked after {} s; going on without the lock",
                    dir.display(),
                    timeout.as_secs()
                );
                break;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
    Ok(DirLock { _file: file })
}

/// The file name of the checkpoint after `step` steps.
pub fn file_name(step: u64) -> String {
    format!("{PREFIX}{step:08}{SUFFIX}")
}

/// The checkpoints in `dir`, newest (most steps) first. A missing directory has none.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let step = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(step) = step {
            found.push((step, entry.path()));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Ok(found)
}

/// A float tensor's bytes, as safetensors writes them.
struct Bytes {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_bytes(name: &str, t: &Tensor) -> Result<Bytes> {
    if t.kind() != Kind::Float {
        bail!("tensor {name} is {:?}; checkpoints hold f32", t.kind());
    }
    let t = t.to_device(tch::Device::Cpu).contiguous();
    let numel = t.numel();
    let mut data = vec![0u8; numel * 4];
    t.copy_data_u8(&mut data, numel);
    Ok(Bytes {
        shape: t.size().iter().map(|&d| d as usize).collect(),
        data,
    })
}

/// Writes `tensors` with `meta` (its checksum filled in here) as `dir/step-<step>.ckpt`, atomically, then removes
/// the older checkpoints of `dir`: a run needs only its newest. Returns the new file's path.
pub fn save(dir: &Path, mut meta: Meta, tensors: &[(String, &Tensor)]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Sorted by name: the order safetensors writes tensors of one dtype in, so the checksum covers the file's bytes.
    let mut named: BTreeMap<&str, Bytes> = BTreeMap::new();
    for (name, t) in tensors {
        named.insert(name.as_str(), to_bytes(name, t)?);
    }
    let mut hasher = Sha256::new();
    for bytes in named.values() {
        hasher.update(&bytes.data);
    }
    meta.data_sha256 = hex(&hasher.finalize());
    let info = HashMap::from([(
        META_KEY.to_string(),
        serde_json::to_string(&meta).expect("the checkpoint record serializes"),
    )]);
    let bytes = safetensors::tensor::serialize(named.iter().map(|(k, v)| (*k, v)), &Some(info))
        .context("serializing the checkpoint")?;
    let path = dir.join(file_name(meta.step));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(&bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write a checkpoint in {}", dir.display()))?;
    tmp.persist(&path)
        .with_context(|| format!("cannot rename the checkpoint to {}", path.display()))?;
    for (step, older) in list(dir)? {
        if step < meta.step {
            // A leftover only costs disk; the new checkpoint is in place either way.
            if let Err(e) = std::fs::remove_file(&older) {
                eprintln!("warning: cannot remove {}: {e}", older.display());
            }
        }
    }
    Ok(path)
}

/// Reads and checks the checkpoint at `path` for the run `key`: why it cannot continue this run, if it cannot.
pub fn load(path: &Path, key: &RunKey) -> Result<Loaded> {
    let buf = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (header_len, header) = SafeTensors::read_metadata(&buf).map_err(unreadable)?;
    let Some(meta_json) = header.metadata().as_ref().and_then(|m| m.get(META_KEY)) else {
        bail!("not a SeedSweep checkpoint: no {META_KEY} in its metadata");
    };
    let meta: Meta = serde_json::from_str(meta_json)
        .map_err(|e| anyhow::anyhow!("its {META_KEY} record is not readable: {e}"))?;
    if meta.format_version != FORMAT_VERSION {
        bail!(
            "it has format version {}, this trainer reads version {FORMAT_VERSION}",
            meta.format_version
        );
    }
    let data = &buf[(8 + header_len).min(buf.len())..];
    let sha = hex(&Sha256::digest(data));
    if sha != meta.data_sha256 {
        bail!(
            "its tensor data fails the checksum (SHA-256 {sha}, recorded {}): the file is truncated or damaged",
            meta.data_sha256
        );
    }
    if let Some(field) = first_difference(&meta.key, key) {
        bail!("{field}");
    }
    let file = SafeTensors::deserialize(&buf).map_err(unreadable)?;
    let mut tensors = HashMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!("tensor {name} is {:?}; checkpoints hold f32", view.dtype());
        }
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        tensors.insert(
            name,
            Tensor::from_data_size(view.data(), &shape, Kind::Float),
        );
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        meta,
        tensors,
    })
}

fn unreadable(e: safetensors::SafeTensorError) -> anyhow::Error {
    match e {
        safetensors::SafeTensorError::MetadataIncompleteBuffer => {
            anyhow::anyhow!("the file is truncated: its length differs from what its header says")
        }
        e => anyhow::anyhow!("not a checkpoint ({e:?})"),
    }
}

/// The first setting in which a checkpoint's run differs from this one, said as a reason.
fn first_difference(theirs: &RunKey, ours: &RunKey) -> Option<String> {
    let as_map = |k: &RunKey| match serde_json::to_value(k).expect("a run key serializes") {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("a run key is a JSON object"),
    };
    let (theirs, ours) = (as_map(theirs), as_map(ours));
    ours.iter().find_map(|(field, value)| {
        let other = theirs.get(field).unwrap_or(&serde_json::Value::Null);
        (other != value)
            .then(|| format!("it was written for {field} {other}, this run has {value}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RunKey {
        RunKey {
            model_sha256: "m".into(),
            train_sha256: "t".into(),
            dev_sha256: "d".into(),
            task: "mrpc".into(),
            wi_seed: 1,
            do_seed: 2,
            dropout_seed: Some(2),
            epochs: 3,
            batch_size: 32,
            learning_rate: 2e-5,
            max_seq_length: 128,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            evals_per_epoch: 10,
            train_subset: None,
            dev_subset: None,
            pad_to_max: false,
            precision: Precision::Fp32,
            total_steps: 345,
        }
    }

    fn meta(step: u64) -> Meta {
        Meta {
            format_version: FORMAT_VERSION,
            key: key(),
            step,
            dropout_base_seed: 2,
            evals: Vec::new(),
            train_loss: vec![0.7; step as usize],
            step_widths: vec![40; step as usize],
            epoch_order_digests: vec!["abc".into()],
            examples_trained: 32 * step as usize,
            data_sha256: String::new(),
        }
    }

    #[test]
    fn a_checkpoint_reads_back_exactly_and_replaces_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tensor::randn([3, 5], (Kind::Float, tch::Device::Cpu));
        let b = Tensor::randn([7], (Kind::Float, tch::Device::Cpu));
        let tensors = [("a".to_string(), &a), ("b".to_string(), &b)];
        save(dir.path(), meta(4), &tensors).unwrap();
        let path = save(dir.path(), meta(9), &tensors).unwrap();
        assert_eq!(path.file_name().unwrap(), "step-00000009.ckpt");
        let listed = list(dir.path()).unwrap();
        assert_eq!(
            listed,
            vec![(9, path.clone())],
            "the older checkpoint is removed"
        );
        let loaded = load(&path, &key()).unwrap();
        assert_eq!(loaded.meta.step, 9);
        assert_eq!(loaded.meta.train_loss.len(), 9);
        assert!(loaded.tensors["a"].equal(&a) && loaded.tensors["b"].equal(&b));
    }

    /// Checkpoints written before `precision` was part of the key were fp32 ones, and still continue fp32 runs.
    #[test]
    fn a_run_key_without_precision_is_fp32() {
        let mut old = serde_json::to_value(key()).unwrap();
        old.as_object_mut().unwrap().remove("precision").unwrap();
        let old: RunKey = serde_json::from_value(old).unwrap();
        assert_eq!(old, key());
        assert_eq!(first_difference(&old, &key()), None);
    }

    #[test]
    fn a_checkpoint_directory_has_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path(), std::time::Duration::from_secs(1)).unwrap();
        let file = std::fs::File::open(dir.path().join(".lock")).unwrap();
        assert!(matches!(
            file.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        assert!(file.try_lock().is_ok());
    }

    #[test]
    fn damaged_truncated_and_foreign_checkpoints_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tensor::randn([64], (Kind::Float, tch::Device::Cpu));
        let path = save(dir.path(), meta(3), &[("a".to_string(), &a)]).unwrap();
        let whole = std::fs::read(&path).unwrap();
        let err = |bytes: &[u8], key: &RunKey| {
            std::fs::write(&path, bytes).unwrap();
            format!("{:#}", load(&path, key).err().expect("refused"))
        };

        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(err(&flipped, &key()).contains("fails the checksum"));
        let cut = &whole[..whole.len() - 10];
        assert!(err(cut, &key()).contains("truncated"));
        assert!(err(&whole[..5], &key()).contains("not a checkpoint"));
        assert!(err(b"", &key()).contains("not a checkpoint"));

        let other = RunKey {
            wi_seed: 7,
            ..key()
        };
        assert_eq!(
            err(&whole, &other),
            "it was written for wiSeed 1, this run has 7"
        );
        let other = RunKey {
            model_sha256: "x".into(),
            ..key()
        };
        assert!(err(&whole, &other).contains("modelSha256"));
        let other = RunKey {
            precision: Precision::Bf16,
            ..key()
        };
        assert_eq!(
            err(&whole, &other),
            r#"it was written for precision "fp32", this run has "bf16""#
        );

        let mut old = meta(3);
        old.format_version = 0;
        save(dir.path(), old, &[("a".to_string(), &a)]).unwrap();
        let e = format!("{:#}", load(&path, &key()).err().unwrap());
        assert!(e.contains("format version 0"), "{e}");
    }
}
