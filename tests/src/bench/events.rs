//! The stand-ins' event log (`SEEDSWEEP_STANDIN_EVENTS`: one JSON line per start, evaluation served and end, with
//! the pod's name) turned into the benchmarks' figures: the stand-ins' own run time, the latency from a rung
//! evaluation being served to its Job's deletion (or, locally, to the stopped stand-in's end), and when each attempt
//! ran.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unix seconds.
    pub t: f64,
    pub trial: String,
    pub pod: Option<String>,
    pub event: String,
    pub progress: Option<f64>,
    /// The trainer's outcome, on an `end` (`completed`, `terminated`, ...).
    pub outcome: Option<String>,
}

pub fn parse(text: &str) -> Result<Vec<Event>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| format!("events line {}: {e}: {l:?}", n + 1))
        })
        .collect()
}

/// The Job a pod belongs to: a Job's pods are named `<job>-<5 random characters>`.
pub fn job_of_pod(pod: &str) -> &str {
    pod.rsplit_once('-').map_or(pod, |(job, _)| job)
}

/// One attempt's events, keyed by its pod; without a pod name (the local executor's processes have no
/// `HOSTNAME`), by trial and the number of its starts so far, since one trial's attempts run one after another.
fn attempt_keys(events: &[Event]) -> Vec<String> {
    let mut starts: BTreeMap<&str, usize> = BTreeMap::new();
    events
        .iter()
        .map(|e| match e.pod.as_deref() {
            Some(pod) => pod.to_string(),
            None => {
                let n = starts.entry(e.trial.as_str()).or_default();
                if e.event == "start" {
                    *n += 1;
                }
                format!("{}#{n}", e.trial)
            }
        })
        .collect()
}

/// Each attempt that logged its start: (trial, start, end if it logged one), in unix seconds.
pub fn attempt_spans(events: &[Event]) -> Vec<(String, f64, Option<f64>)> {
    let mut spans: BTreeMap<String, (String, Option<f64>, Option<f64>)> = BTreeMap::new();
    for (e, key) in events.iter().zip(attempt_keys(events)) {
        let span = spans.entry(key).or_insert((e.trial.clone(), None, None));
        match e.event.as_str() {
            "start" => span.1 = Some(e.t),
            "end" => span.2 = Some(e.t),
            _ => {}
        }
    }
    spans
        .into_values()
        .filter_map(|(trial, start, end)| Some((trial, start?, end)))
        .collect()
}

/// Seconds each attempt ran, start to end, for the attempts that logged both.
pub fn attempt_seconds(events: &[Event]) -> Vec<f64> {
    attempt_spans(events)
        .into_iter()
        .filter_map(|(_, start, end)| Some(end? - start))
        .collect()
}

/// For every attempt that ended `terminated` (stopped by its executor) after serving a rung evaluation: seconds
/// from that evaluation (the first at or after `at_fraction`) being served to the stand-in's end. Locally that is
/// the whole decision: the wait for a scrape, the engine, SIGTERM and the stand-in stopping within one step.
pub fn stop_latencies(events: &[Event], at_fraction: f64) -> Vec<f64> {
    let mut served: BTreeMap<String, f64> = BTreeMap::new();
    let mut latencies = Vec::new();
    for (e, key) in events.iter().zip(attempt_keys(events)) {
        match (e.event.as_str(), e.progress) {
            ("eval", Some(p)) if p + 1e-9 >= at_fraction => {
                served.entry(key).or_insert(e.t);
            }
            ("end", _) if e.outcome.as_deref() == Some("terminated") => {
                if let Some(at) = served.get(&key) {
                    latencies.push(e.t - at);
                }
            }
            _ => {}
        }
    }
    latencies
}

/// For every Job deleted after its pod served a rung evaluation: seconds from that evaluation (the first at or
/// after `at_fraction`) being served to the deletion. `deleted` maps Job names to unix seconds.
pub fn decision_latencies(
    events: &[Event],
    at_fraction: f64,
    deleted: &BTreeMap<String, f64>,
) -> Vec<f64> {
    let mut rung_served: BTreeMap<&str, f64> = BTreeMap::new();
    for e in events {
        let (Some(pod), Some(p)) = (e.pod.as_deref(), e.progress) else {
            continue;
        };
        if e.event == "eval" && p + 1e-9 >= at_fraction {
            rung_served.entry(pod).or_insert(e.t);
        }
    }
    rung_served
        .iter()
        .filter_map(|(pod, served)| {
            let gone = deleted.get(job_of_pod(pod))?;
            (gone >= served).then(|| gone - served)
        })
        .collect()
}

/// (median, 95th percentile, max) by the nearest-rank method; `None` for no values.
pub fn quantiles(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some((rank(0.5), rank(0.95), v[v.len() - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_run_from_the_rung_evaluation_to_the_jobs_deletion() {
        let log = r#"{"t":100.0,"trial":"s-w1-d1","pod":"s-w1-d1-0-abcde","event":"start"}
{"t":101.0,"trial":"s-w1-d1","pod":"s-w1-d1-0-abcde","event":"eval","progress":0.2}
{"t":102.0,"trial":"s-w1-d1","pod":"s-w1-d1-0-abcde","event":"eval","progress":0.3}
{"t":103.0,"trial":"s-w1-d1","pod":"s-w1-d1-0-abcde","event":"eval","progress":0.4}
{"t":106.5,"trial":"s-w1-d1","pod":"s-w1-d1-0-abcde","event":"end"}
{"t":100.0,"trial":"s-w2-d1","pod":"s-w2-d1-0-fghij","event":"start"}
{"t":102.5,"trial":"s-w2-d1","pod":"s-w2-d1-0-fghij","event":"eval","progress":0.3}
{"t":110.0,"trial":"s-w2-d1","pod":"s-w2-d1-0-fghij","event":"end"}
"#;
        let events = parse(log).unwrap();
        let deleted = BTreeMap::from([("s-w1-d1-0".to_string(), 106.0)]);
        assert_eq!(decision_latencies(&events, 0.25, &deleted), vec![4.0]);
        let mut spans = attempt_seconds(&events);
        spans.sort_by(f64::total_cmp);
        assert_eq!(spans, vec![6.5, 10.0]);
        assert!(
            parse("{\"t\":1}\n")
                .unwrap_err()
                .starts_with("events line 1")
        );
    }

    #[test]
    fn attempts_without_a_pod_are_told_apart_by_their_starts() {
        let log = r#"{"t":10.0,"trial":"s-w1-d1","pod":null,"event":"start"}
{"t":11.0,"trial":"s-w1-d1","pod":null,"event":"eval","progress":0.1}
{"t":12.0,"trial":"s-w1-d1","pod":null,"event":"eval","progress":0.25}
{"t":10.5,"trial":"s-w2-d1","pod":null,"event":"start"}
{"t":13.5,"trial":"s-w1-d1","pod":null,"event":"end","outcome":"terminated"}
{"t":20.0,"trial":"s-w1-d1","pod":null,"event":"start"}
{"t":21.0,"trial":"s-w1-d1","pod":null,"event":"eval","progress":0.25}
{"t":30.0,"trial":"s-w1-d1","pod":null,"event":"end","outcome":"completed"}
"#;
        let events = parse(log).unwrap();
        let mut spans = attempt_seconds(&events);
        spans.sort_by(f64::total_cmp);
        assert_eq!(spans, vec![3.5, 10.0]);
        assert_eq!(attempt_spans(&events).len(), 3);
        // Only the stopped attempt counts, from its own rung evaluation.
        assert_eq!(stop_latencies(&events, 0.25), vec![1.5]);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantiles(&v), Some((10.0, 19.0, 20.0)));
        assert_eq!(quantiles(&[3.0]), Some((3.0, 3.0, 3.0)));
        assert_eq!(quantiles(&[]), None);
        assert_eq!(job_of_pod("sw-w1-d2-1-x7k2p"), "sw-w1-d2-1");
    }
}
