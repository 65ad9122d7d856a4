//! The stand-ins' event log (`SEEDSWEEP_STANDIN_EVENTS`: one JSON line per start, evaluation served and end, with
//! the pod's name) turned into the benchmark's figures: the stand-ins' own run time, and the latency from a rung
//! evaluation being served to its Job's deletion.

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

/// Seconds each attempt (pod) ran, start to end, for the attempts that logged both.
pub fn attempt_seconds(events: &[Event]) -> Vec<f64> {
    let mut spans: BTreeMap<&str, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for e in events {
        let Some(pod) = e.pod.as_deref() else {
            continue;
        };
        let span = spans.entry(pod).or_default();
        match e.event.as_str() {
            "start" => span.0 = Some(e.t),
            "end" => span.1 = Some(e.t),
            _ => {}
        }
    }
    spans.values().filter_map(|s| Some(s.1? - s.0?)).collect()
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
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantiles(&v), Some((10.0, 19.0, 20.0)));
        assert_eq!(quantiles(&[3.0]), Some((3.0, 3.0, 3.0)));
        assert_eq!(quantiles(&[]), None);
        assert_eq!(job_of_pod("sw-w1-d2-1-x7k2p"), "sw-w1-d2-1");
    }
}
