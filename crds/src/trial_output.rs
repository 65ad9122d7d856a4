//! Where a trainer (and its stand-in) leaves its summary: the termination log Kubernetes reads, and the full summary
//! file. One implementation, so both programs keep the contract the same way.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Where Kubernetes reads a container's termination message unless the pod says otherwise.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// The `--termination-log` of a command line clap rejected, found by hand so a usage error can still be reported
/// there.
pub fn termination_log_from_args(args: &[String]) -> PathBuf {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--termination-log" {
            if let Some(p) = it.next() {
                return PathBuf::from(p);
            }
        } else if let Some(p) = a.strip_prefix("--termination-log=") {
            return PathBuf::from(p);
        }
    }
    PathBuf::from(DEFAULT_TERMINATION_LOG)
}

/// Writes the termination log. Kubernetes provides /dev/termination-log only inside a pod, so failing to write the
/// default path elsewhere is expected and only worth a warning; an explicitly requested path must work.
pub fn write_termination_log(path: &Path, text: &str) -> Result<(), String> {
    match std::fs::write(path, text) {
        Ok(()) => Ok(()),
        Err(e) if path == Path::new(DEFAULT_TERMINATION_LOG) => {
            eprintln!(
                "warning: cannot write the termination log {}: {e}",
                path.display()
            );
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot write the termination log {}: {e}",
            path.display()
        )),
    }
}

/// Through a temporary file in the same directory and a rename, so a reader never sees half a summary.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| format!("cannot write the summary to {}: {e}", path.display());
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_termination_log_of_a_rejected_line_is_found() {
        let args = ["x", "--bad", "--termination-log=/t/l"].map(String::from);
        assert_eq!(termination_log_from_args(&args), PathBuf::from("/t/l"));
        let args = ["x", "--termination-log", "/t/m", "--bad"].map(String::from);
        assert_eq!(termination_log_from_args(&args), PathBuf::from("/t/m"));
        let args = ["x", "--bad"].map(String::from);
        assert_eq!(
            termination_log_from_args(&args),
            PathBuf::from(DEFAULT_TERMINATION_LOG)
        );
    }
}
