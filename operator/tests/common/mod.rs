//! Shared by the end-to-end test binaries: the workspace, the trainer binary and the MiniLM model.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The trainer built in this profile, building it if `cargo test -p seedsweep-operator` ran alone.
pub fn trainer() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_seedsweep"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = dir.join("seedsweep-trainer");
    if !path.is_file() {
        let release = dir.ends_with("release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", "seedsweep-trainer"])
            .current_dir(workspace());
        if release {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "building seedsweep-trainer failed"
        );
    }
    path
}

pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEEDSWEEP_MODEL_DIR") {
        return dir.into();
    }
    // scripts/setup-libtorch.sh links the installed MiniLM here, whatever the Python version.
    let dir = workspace().join(".minilm");
    assert!(
        dir.join("config.json").is_file(),
        "{}: run scripts/setup-libtorch.sh",
        dir.display()
    );
    dir.canonicalize().unwrap()
}
