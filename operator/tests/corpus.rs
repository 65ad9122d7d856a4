//! What a trainer may send, well-formed or not: a corpus of `/metrics` answers and termination messages kept in
//! `tests/corpus/` (each file says on its first line what must happen to it), and property tests that feed the
//! parsers and the engine arbitrary and mutated input. Nothing may panic; a bad answer is an error naming what is
//! wrong, or an observation the engine refuses, never a wrong record.
//!
//! The property tests run `PROPTEST_CASES` cases each (proptest's default 256 in CI); for a longer fuzzing run:
//! `PROPTEST_CASES=200000 cargo test --release -p seedsweep-operator --test corpus`.

use proptest::prelude::*;
use seedsweep_crds::sweep::SeedSweepSpec;
use seedsweep_crds::trainer::TrialSummary;
use seedsweep_operator::controller::observe::read_summary;
use seedsweep_operator::engine::snapshot::Snapshot;
use seedsweep_operator::engine::state::SweepState;
use seedsweep_operator::manifest;
use seedsweep_operator::scrape::parse_metrics;
use std::path::{Path, PathBuf};

/// The trial the recorded answers belong to (see `tests/corpus/metrics/real.prom`).
const SWEEP: &str = "sst2-6x6";
const WI: u64 = 2;
const DO: u64 = 3;

fn corpus(kind: &str) -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind);
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            (p, text)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{}: the corpus is missing", dir.display());
    files
}

/// What a corpus file expects: its first line, `# expect: <outcome> <detail>`. A termination message is JSON and
/// cannot carry it: its expectation is the first line of the `.expect` file beside it.
fn expectation(path: &Path, text: &str) -> (String, String) {
    let line = text.lines().next().unwrap_or_default();
    let rest = line
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: the first line must be `# expect: ...`", path.display()));
    let (outcome, detail) = rest.split_once(' ').unwrap_or((rest, ""));
    (outcome.to_string(), detail.to_string())
}

/// The spec of a sweep whose only trial is the recorded one.
fn spec() -> SeedSweepSpec {
    let sweep = manifest::load(&format!(
        r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata: {{name: {SWEEP}}}
spec:
  task: {{name: sst2, dataDir: /data}}
  model: {{path: /model}}
  seeds: {{weightInit: {{values: [{WI}]}}, dataOrder: {{values: [{DO}]}}}}
"#
    ))
    .unwrap();
    sweep.spec
}

/// That sweep, its trial started.
fn state() -> SweepState {
    let mut state = SweepState::new(SWEEP, &spec());
    state.mark_started(0);
    state
}

#[test]
fn every_metrics_answer_in_the_corpus_is_read_as_its_file_says() {
    for (path, text) in corpus("metrics") {
        let (outcome, detail) = expectation(&path, &text);
        let name = path.file_name().unwrap().to_string_lossy();
        let mut state = state();
        match (outcome.as_str(), parse_metrics(&text)) {
            ("error", Err(e)) => assert!(e.to_string().contains(&detail), "{name}: {e}"),
            ("refused", Ok(snap)) => {
                let before = state.clone();
                let e = state.observe(0, &snap).expect_err(&name);
                assert!(e.to_string().contains(&detail), "{name}: {e}");
                assert_eq!(state, before, "{name}: a refused scrape changed the state");
            }
            ("ok", Ok(snap)) => {
                state
                    .observe(0, &snap)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let evals = format!("{} evals", state.trials[0].evals.len());
                assert_eq!(evals, detail, "{name}");
            }
            (outcome, got) => panic!("{name}: expected {outcome} {detail}, got {got:?}"),
        }
    }
}

#[test]
fn every_termination_message_in_the_corpus_is_read_as_its_file_says() {
    for (path, text) in corpus("termination") {
        if path.extension().is_some_and(|e| e == "expect") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expect_file = path.with_extension("expect");
        let expect_text = std::fs::read_to_string(&expect_file)
            .unwrap_or_else(|_| panic!("{name}: no {}", expect_file.display()));
        let (outcome, detail) = expectation(&expect_file, &expect_text);
        let mut state = state();
        match (outcome.as_str(), read_summary(&text)) {
            ("error", Err(e)) => assert!(e.contains(&detail), "{name}: {e}"),
            ("refused", Ok(Some(summary))) => {
                state.finish(0, Some(&summary), "exit code 0");
                let run = format!("{:?}", state.trials[0].run);
                assert!(
                    run.contains("Failed") && run.contains(&detail),
                    "{name}: {run}"
                );
                assert!(
                    state.trials[0].evals.is_empty(),
                    "{name}: a refused summary was recorded"
                );
            }
            ("ok", Ok(Some(summary))) => {
                state.finish(0, Some(&summary), "exit code 0");
                let got = format!(
                    "{:?} with {} evals",
                    state.trials[0].run,
                    state.trials[0].evals.len()
                );
                assert_eq!(got, detail, "{name}");
            }
            ("none", Ok(None)) => {}
            (outcome, got) => panic!("{name}: expected {outcome} {detail}, got {got:?}"),
        }
    }
}

/// The recorded answer with `edits` applied: each replaces the bytes at a position with others (deletions,
/// insertions and substitutions of arbitrary text).
fn mutated(base: &str, edits: &[(usize, usize, String)]) -> String {
    let mut text = base.to_string();
    for (at, len, with) in edits {
        let start = text.floor_char_boundary(at % (text.len() + 1));
        let end = text.floor_char_boundary((start + len).min(text.len()));
        text.replace_range(start..end, with);
    }
    text
}

fn edits() -> impl Strategy<Value = Vec<(usize, usize, String)>> {
    prop::collection::vec(
        (
            any::<usize>(),
            0usize..40,
            "\\PC{0,12}|[0-9eE.+-]{1,8}|[\"{}=,\n ]{1,3}",
        ),
        1..6,
    )
}

fn recorded(kind: &str, file: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(kind)
            .join(file),
    )
    .unwrap()
}

/// Whatever the engine accepts leaves a state that still serializes and restores (the status and state.json
/// must always be writable and readable again) and whose statistics are finite.
fn still_sound(state: &SweepState) {
    let json = serde_json::to_string(&Snapshot::of(&spec(), state)).expect("serializes");
    let back: Snapshot = serde_json::from_str(&json).expect("reads back");
    back.restore().expect("restores");
    serde_json::to_string(&state.statistics()).expect("statistics are finite JSON");
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_the_metrics_parser(text in "\\PC{0,400}") {
        let _ = parse_metrics(&text);
    }

    #[test]
    fn a_mutated_answer_is_parsed_or_refused_never_a_panic(edits in edits()) {
        let text = mutated(&recorded("metrics", "real.prom"), &edits);
        if let Ok(snap) = parse_metrics(&text) {
            let mut state = state();
            let _ = state.observe(0, &snap);
            still_sound(&state);
        }
    }

    #[test]
    fn a_mutated_summary_is_read_or_refused_never_a_panic(edits in edits()) {
        let text = mutated(&recorded("termination", "real.json"), &edits);
        if let Ok(Some(summary)) = read_summary(&text) {
            let mut state = state();
            state.finish(0, Some(&summary), "exit code 0");
            still_sound(&state);
        }
    }

    #[test]
    fn arbitrary_json_never_panics_the_summary_reader(text in "\\PC{0,300}") {
        let _ = read_summary(&text);
        let _: Result<TrialSummary, _> = serde_json::from_str(&text);
    }
}

/// An endpoint that answers without end is cut off at `MAX_EXPOSITION` bytes, with an error saying so, instead of
/// filling the operator's memory.
#[tokio::test]
async fn an_endless_answer_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = socket.read(&mut request).await;
        let header =
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
        socket.write_all(header.as_bytes()).await.unwrap();
        let line =
            "# padding padding padding padding padding padding padding padding padding padding\n"
                .repeat(100);
        let chunk = format!("{:x}\r\n{line}\r\n", line.len());
        while socket.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    let client = reqwest::Client::new();
    let e = seedsweep_operator::scrape::scrape(&client, &url, std::time::Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "metrics: {url} answered more than {} bytes (a trainer's metrics are a few KiB)",
            seedsweep_operator::scrape::MAX_EXPOSITION
        )
    );
}
