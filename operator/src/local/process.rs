//! One trainer process on this machine: started with its own loopback metrics port, its stderr kept in the state
//! directory, stopped with SIGTERM.

use anyhow::Context;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Lines of stderr kept in memory to show when a trial crashes.
const TAIL_LINES: usize = 20;

pub struct TrainerProcess {
    child: Child,
    /// `http://ADDR/metrics` once the trainer has said where it listens.
    metrics_url: watch::Receiver<Option<String>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    reader: Option<tokio::task::JoinHandle<()>>,
    pub stderr_log: PathBuf,
    pub summary_path: PathBuf,
    terminated: bool,
}

pub struct Launch<'a> {
    pub trainer: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: &'a Path,
}

impl TrainerProcess {
    pub fn spawn(launch: Launch<'_>, summary_path: PathBuf) -> anyhow::Result<TrainerProcess> {
        std::fs::create_dir_all(launch.dir)?;
        let stderr_log = launch.dir.join("stderr.log");
        let stdout_log = std::fs::File::create(launch.dir.join("stdout.log"))?;
        let mut command = Command::new(launch.trainer);
        command
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout_log)
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe, which is all that may run between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start the trainer {}", launch.trainer.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (url_tx, metrics_url) = watch::channel(None);
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let log_path = stderr_log.clone();
        let tail_writer = tail.clone();
        let reader = tokio::spawn(async move {
            let Ok(mut log) = tokio::fs::File::create(&log_path).await else {
                return;
            };
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("metrics listening on ") {
                    let _ = url_tx.send(Some(rest.trim().to_string()));
                }
                let _ = log.write_all(format!("{line}\n").as_bytes()).await;
                let mut tail = tail_writer.lock().expect("tail lock");
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            let _ = log.flush().await;
        });
        Ok(TrainerProcess {
            child,
            metrics_url,
            tail,
            reader: Some(reader),
            stderr_log,
            summary_path,
            terminated: false,
        })
    }

    pub fn metrics_url(&self) -> Option<String> {
        self.metrics_url.borrow().clone()
    }

    /// The process's exit, if it has ended.
    pub fn try_exit(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    pub async fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        Ok(self.child.wait().await?)
    }

    /// Asks the trainer to stop; it writes its summary and exits within a training step.
    pub fn terminate(&mut self) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        if let Some(pid) = self.child.id() {
            // The pid is our own child's and still unreaped, so it cannot have been reused.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    /// Waits until everything the process wrote to stderr is in the log and the tail (after it exited).
    pub async fn drain_stderr(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await;
        }
    }

    pub fn stderr_tail(&self) -> String {
        let tail = self.tail.lock().expect("tail lock");
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}
