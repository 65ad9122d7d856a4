//! The operator's own count and duration of reconciliations, read from its `/metrics`
//! (`seedsweep_operator_reconciles_total`, `seedsweep_operator_reconcile_duration_seconds`): what "within one
//! reconcile" is measured against; and where that time went (`seedsweep_operator_reconcile_step_seconds{step}`).

use std::collections::BTreeMap;

/// Reconciliations so far and their duration histogram.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reconciles {
    /// By result (`ok`, `error`).
    pub ok: f64,
    pub error: f64,
    pub seconds_sum: f64,
    pub seconds_count: f64,
    /// Cumulative `(upper bound, count)` buckets, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    /// Step (read, scrape, persist, act) → (seconds in all, times run).
    pub steps: BTreeMap<String, (f64, f64)>,
}

impl Reconciles {
    pub fn parse(exposition: &str) -> Result<Self, String> {
        let mut r = Reconciles::default();
        for line in exposition.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let bad = || format!("cannot read this sample: {line:?}");
            let value = || value.trim().parse::<f64>().map_err(|_| bad());
            if let Some(labels) = series.strip_prefix("seedsweep_operator_reconciles_total") {
                if labels.contains("result=\"ok\"") {
                    r.ok += value()?;
                } else if labels.contains("result=\"error\"") {
                    r.error += value()?;
                }
            } else if let Some(labels) =
                series.strip_prefix("seedsweep_operator_reconcile_duration_seconds_bucket")
            {
                let le = labels
                    .split_once("le=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(le, _)| le)
                    .ok_or_else(bad)?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().map_err(|_| bad())?
                };
                r.buckets.push((le, value()?));
            } else if series.starts_with("seedsweep_operator_reconcile_duration_seconds_sum") {
                r.seconds_sum = value()?;
            } else if series.starts_with("seedsweep_operator_reconcile_duration_seconds_count") {
                r.seconds_count = value()?;
            } else if let Some(rest) =
                series.strip_prefix("seedsweep_operator_reconcile_step_seconds_")
            {
                let (series, labels) = rest.split_at(rest.find('{').unwrap_or(rest.len()));
                let step = r
                    .steps
                    .entry(step_label(labels).ok_or_else(bad)?)
                    .or_default();
                match series {
                    "sum" => step.0 = value()?,
                    "count" => step.1 = value()?,
                    _ => {} // the buckets
                }
            }
        }
        // Before the first reconciliation the histogram has no series: no buckets, zero counts.
        r.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(r)
    }

    pub fn mean_seconds(&self) -> Option<f64> {
        (self.seconds_count > 0.0).then(|| self.seconds_sum / self.seconds_count)
    }

    /// The smallest bucket bound that at least `q` of the reconciliations stayed within.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        (total > 0.0).then(|| {
            self.buckets
                .iter()
                .find(|(_, n)| *n >= q * total)
                .map_or(f64::INFINITY, |(le, _)| *le)
        })
    }
}

/// `read` from `{step="read"}`.
fn step_label(labels: &str) -> Option<String> {
    let (_, rest) = labels.split_once("step=\"")?;
    Some(rest.split_once('"')?.0.to_string())
}

/// The address the operator says it serves `/metrics` on, from its log (`serving /metrics ... on http://ADDR`).
pub fn metrics_address(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("serving /metrics"))?;
    let rest = line.split_once("http://")?.1;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// `GET /metrics` from `addr` (plain HTTP/1.0, as a scraper would); the body.
pub fn fetch(addr: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let err = |e: std::io::Error| format!("GET http://{addr}/metrics: {e}");
    let mut stream = std::net::TcpStream::connect(addr).map_err(err)?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(err)?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(err)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(err)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET http://{addr}/metrics: no HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "GET http://{addr}/metrics: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_and_counts_are_read() {
        let text = r#"# HELP seedsweep_operator_reconciles_total Reconciliations by result
seedsweep_operator_reconciles_total{result="error"} 2
seedsweep_operator_reconciles_total{result="ok"} 98
seedsweep_operator_reconcile_duration_seconds_bucket{le="0.1"} 50
seedsweep_operator_reconcile_duration_seconds_bucket{le="0.5"} 96
seedsweep_operator_reconcile_duration_seconds_bucket{le="+Inf"} 100
seedsweep_operator_reconcile_duration_seconds_sum 20
seedsweep_operator_reconcile_duration_seconds_count 100
seedsweep_operator_reconcile_step_seconds_sum{step="read"} 4.5
seedsweep_operator_reconcile_step_seconds_count{step="read"} 100
seedsweep_operator_reconcile_step_seconds_sum{step="act"} 12
seedsweep_operator_reconcile_step_seconds_count{step="act"} 96
"#;
        let r = Reconciles::parse(text).unwrap();
        assert_eq!((r.ok, r.error), (98.0, 2.0));
        assert_eq!(r.mean_seconds(), Some(0.2));
        assert_eq!(r.quantile_bound(0.5), Some(0.1));
        assert_eq!(r.quantile_bound(0.95), Some(0.5));
        assert_eq!(r.quantile_bound(0.99), Some(f64::INFINITY));
        assert_eq!(r.steps.len(), 2);
        assert_eq!(r.steps["read"], (4.5, 100.0));
        assert_eq!(r.steps["act"], (12.0, 96.0));
        assert!(
            Reconciles::parse("seedsweep_operator_reconcile_step_seconds_sum{stp=\"x\"} 1\n")
                .is_err()
        );
        let none = Reconciles::parse("up 1\n").unwrap();
        assert_eq!((none.seconds_count, none.quantile_bound(0.5)), (0.0, None));
        assert!(
            Reconciles::parse("seedsweep_operator_reconciles_total{result=\"ok\"} x\n").is_err()
        );
        let log = "2026-11-29T22:00:00Z  INFO seedsweep: serving /metrics, /healthz and /readyz on http://127.0.0.1:41234\n";
        assert_eq!(metrics_address(log).as_deref(), Some("127.0.0.1:41234"));
        assert_eq!(metrics_address("nothing\n"), None);
    }
}
