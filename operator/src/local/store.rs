//! The local executor's state directory: one sweep's engine snapshot as JSON (the same [`Snapshot`] the operator
//! keeps in the resource's status), written atomically after every change, and a lock so that two `seedsweep run`s
//! never drive the same sweep.

use crate::engine::snapshot::Snapshot;
use crate::engine::state::SweepState;
use anyhow::{Context, bail};
use seedsweep_crds::sweep::SeedSweepSpec;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";

/// An open, locked state directory. The lock is released when this is dropped (or the process dies).
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

impl Store {
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir.join("trials"))
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            bail!(
                "another `seedsweep run` (pid {}) is using the state directory {}; wait for it or pass another \
                 --state-dir",
                holder.trim(),
                dir.display()
            );
        }
        lock.set_len(0)?;
        write!(lock, "{}", std::process::id())?;
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn trial_dir(&self, trial: &str) -> PathBuf {
        self.dir.join("trials").join(trial)
    }

    /// Where a trial's trainer keeps its checkpoints (when the sweep has them).
    pub fn checkpoint_dir(&self, trial: &str) -> PathBuf {
        self.trial_dir(trial).join("checkpoints")
    }

    /// Every trial's checkpoint directory, for the status line.
    pub fn checkpoint_location(&self) -> String {
        format!("{}/trials/<trial>/checkpoints", self.dir.display())
    }

    pub fn load(&self) -> anyhow::Result<Option<(SeedSweepSpec, SweepState)>> {
        read(&self.dir)
    }

    pub fn save(&self, spec: &SeedSweepSpec, state: &SweepState) -> anyhow::Result<()> {
        let snapshot = Snapshot::of(spec, state);
        write_atomic(
            &self.dir.join(STATE_FILE),
            serde_json::to_vec_pretty(&snapshot)?.as_slice(),
        )
    }
}

/// Reads a state directory without locking it (for `seedsweep status` while a run is going on): the spec the plan
/// was made from, and the state.
pub fn read(dir: &Path) -> anyhow::Result<Option<(SeedSweepSpec, SweepState)>> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let snapshot: Snapshot = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a SeedSweep state file", path.display()))?;
    let state = snapshot
        .restore()
        .with_context(|| format!("{} cannot be resumed", path.display()))?;
    Ok(Some((snapshot.spec, state)))
}

/// Writes through a temporary file in the same directory, synced, and a rename, so a crash leaves either the old or
/// the new file, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
