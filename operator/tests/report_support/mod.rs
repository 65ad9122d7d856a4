//! Shared by the report test binaries (`report.rs`, `report_compare.rs`): running the `seedsweep` binary, checking
//! its exit and messages and the figures it writes, and a stand-in apiserver with a kubeconfig pointing at it.

#![allow(dead_code)] // each test binary uses its own subset

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `seedsweep` binary run with `args`.
pub fn seedsweep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seedsweep"))
        .args(args)
        .output()
        .unwrap()
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn assert_succeeded(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// A clear message, a non-zero exit, no panic.
pub fn assert_refused(out: &Output, expected: &[&str]) {
    let e = stderr(out);
    assert!(!out.status.success(), "succeeded: {e}");
    assert!(!e.contains("panicked"), "{e}");
    for part in expected {
        assert!(e.contains(part), "{part:?} not in: {e}");
    }
}

/// Each named figure's PNG decodes to the figures' size and is not blank; its SVG parses and has text.
pub fn assert_figures_well_formed(out: &Path, names: &[&str]) {
    for &name in names {
        let png = std::fs::File::open(out.join(format!("{name}.png"))).unwrap();
        let mut reader = png::Decoder::new(std::io::BufReader::new(png))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (900, 500), "{name}.png");
        // Something was drawn: not every pixel is the white background.
        assert!(pixels.iter().any(|&b| b < 200), "{name}.png is blank");
        let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}.svg: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{name}.svg");
        assert!(
            doc.descendants().any(|n| n.has_tag_name("text")),
            "{name}.svg has no text"
        );
    }
}

/// A stand-in for the apiserver: answers every GET of a SeedSweep with `sweep` (404 when `None`).
pub fn fake_apiserver(sweep: Option<Value>) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        // One request is all a report makes; a command that fails before making it must fail the test, not hang it.
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no request reached the fake apiserver in 60 s"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("fake apiserver: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("GET /apis/seedsweep.dev/v1alpha1/namespaces/ml/seedsweeps/"),
            "{line}"
        );
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
        }
        let (code, body) = match &sweep {
            Some(s) => ("200 OK", s.to_string()),
            None => (
                "404 Not Found",
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "seedsweeps.seedsweep.dev \"gone\" not found", "reason": "NotFound", "code": 404})
                .to_string(),
            ),
        };
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    (format!("http://127.0.0.1:{port}"), handle)
}

pub fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{server}\"}}}}]\nusers: \
             [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: fake, user: u, namespace: \
             default}}}}]\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path
}
