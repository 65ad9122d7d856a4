//! The local executor's state directory: one sweep's state as JSON, written atomically after every change, and a
//! lock so that two `seedsweep run`s never drive the same sweep.

use crate::engine::state::SweepState;
use anyhow::{Context, bail};
use seedsweep_crds::sweep::SeedSweepSpec;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Persisted {
    pub format_version: u32,
    pub spec: SeedSweepSpec,
    pub state: SweepState,
}

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

    pub fn load(&self) -> anyhow::Result<Option<Persisted>> {
        read(&self.dir)
    }

    pub fn save(&self, spec: &SeedSweepSpec, state: &SweepState) -> anyhow::Result<()> {
        let persisted = Persisted {
            format_version: FORMAT_VERSION,
            spec: spec.clone(),
            state: state.clone(),
        };
        write_atomic(
            &self.dir.join(STATE_FILE),
            serde_json::to_vec_pretty(&persisted)?.as_slice(),
        )
    }
}

/// Reads a state directory without locking it (for `seedsweep status` while a run is going on).
pub fn read(dir: &Path) -> anyhow::Result<Option<Persisted>> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let persisted: Persisted = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a SeedSweep state file", path.display()))?;
    if persisted.format_version != FORMAT_VERSION {
        bail!(
            "{} has format version {}, this seedsweep reads {FORMAT_VERSION}",
            path.display(),
            persisted.format_version
        );
    }
    Ok(Some(persisted))
}

/// Writes through a temporary file and a rename, so a crash leaves either the old or the new file, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
