//! Local processes standing in for containers: spawn in their own process group, signal the whole group, and
//! record the group id on disk so a harness watchdog can kill leftovers if the simulator itself dies.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use anyhow::{Context, Result};
use tokio::process::{Child, Command};

use super::failures::{exec_error, start_error_message};
use super::plan::ProcessPlan;

/// A started container process. The process is the leader of its own process group (pgid == pid), so signals
/// reach `sh -c` children too, like signals sent to a container's pid namespace.
#[derive(Debug)]
pub struct Process {
    pub pid: u32,
    pgid_file: PathBuf,
}

/// Variables of the simulator's environment a pod must not inherit.
const INHERITED_CREDENTIALS: [&str; 5] = [
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "KUBERNETES_SERVICE_PORT_HTTPS",
    "KUBERNETES_PORT",
];

/// A container that could not be started, with the message a containerd/runc runtime reports for it
/// (`state.terminated` exit code 128, reason `StartError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure(pub String);

/// Prepares the container's directories and files and starts its process. Failing to exec the program is
/// reported in runc's words; other failures keep the simulator's explanation behind the same prefix.
pub fn spawn(plan: &ProcessPlan) -> std::result::Result<(Process, Child), StartFailure> {
    prepare(plan).map_err(|e| StartFailure(start_error_message(&format!("{e:#}"))))?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&plan.log_file)
        .and_then(|log| Ok((log.try_clone()?, log)))
        .map_err(|e| {
            StartFailure(start_error_message(&format!(
                "opening log {}: {e}",
                plan.log_file.display()
            )))
        })?;
    let (log_err, log) = log;
    let mut cmd = Command::new(&plan.program);
    // The simulator's own credentials and in-cluster settings are not the pod's: a pod gets KUBECONFIG and
    // KUBERNETES_SERVICE_* only from its plan (its service account, the apiserver's address).
    for var in INHERITED_CREDENTIALS {
        cmd.env_remove(var);
    }
    cmd.args(&plan.args)
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&plan.working_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(false);
    let child = cmd
        .spawn()
        .map_err(|e| StartFailure(start_error_message(&exec_error(&plan.program, &e))))?;
    let Some(pid) = child.id() else {
        return Err(StartFailure(start_error_message(
            "spawned process has no pid",
        )));
    };
    let pgid_file = plan.log_file.with_extension("pgid");
    if let Err(e) = fs::write(&pgid_file, pid.to_string()) {
        // The process runs; only the watchdog's record of it is missing.
        tracing::warn!(file = %pgid_file.display(), error = %e, "cannot record process group");
    }
    Ok((Process { pid, pgid_file }, child))
}

fn prepare(plan: &ProcessPlan) -> Result<()> {
    for dir in &plan.dirs {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (path, bytes) in &plan.files {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    if !plan.working_dir.is_dir() {
        // runc's words when it cannot enter the working directory.
        anyhow::bail!(
            "chdir to cwd ({:?}) set in config.json failed: no such file or directory",
            plan.working_dir.display().to_string()
        );
    }
    // A stale message from a previous run of the same container must not be reported for this run.
    match fs::remove_file(&plan.termination_log) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("clearing {}", plan.termination_log.display()));
        }
    }
    Ok(())
}

impl Process {
    /// Sends `signal` to the whole process group; a group that is already gone is not an error.
    pub fn signal_group(&self, signal: i32) {
        let Ok(pgid) = i32::try_from(self.pid) else {
            return;
        };
        // SAFETY: kill(2) with a negative pid only sends a signal; no memory is touched.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }

    /// Called once the leader has exited: kill stragglers left in the group and forget the group file.
    pub fn reap(&self) {
        self.signal_group(libc::SIGKILL);
        let _ = fs::remove_file(&self.pgid_file);
    }
}

/// Exit code as container runtimes report it: the code, or 128 + signal for a killed process.
pub fn exit_code(status: ExitStatus) -> (i32, Option<i32>) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        (None, None) => (255, None),
    }
}

/// Reads at most the last `max` bytes of a file; a missing file reads as empty.
pub fn read_tail(path: &Path, max: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max as u64);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(max as u64).read_to_end(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_exit_codes() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), (0, None));
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), (3, None));
        assert_eq!(
            exit_code(ExitStatus::from_raw(libc::SIGKILL)),
            (137, Some(9))
        );
        assert_eq!(
            exit_code(ExitStatus::from_raw(libc::SIGTERM)),
            (143, Some(15))
        );
    }

    #[test]
    fn tail_of_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_tail(&p, 4), b"6789");
        assert_eq!(read_tail(&p, 100), b"0123456789");
        assert!(read_tail(&dir.path().join("missing"), 4).is_empty());
    }
}
