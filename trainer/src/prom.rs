//! The Prometheus metrics of a trial (names and labels from `seedsweep_crds::trainer`) and the tiny HTTP server that
//! exposes them.
//!
//! tiny_http rather than hyper: two GET routes scraped every few seconds need no async runtime, and a blocking server
//! on its own thread cannot stall the training loop.

use anyhow::{Result, anyhow};
use prometheus::{Encoder, Gauge, GaugeVec, Opts, Registry, TextEncoder};
use seedsweep_crds::trainer::{label, metric};
use seedsweep_crds::{MetricName, Metrics};
use std::net::SocketAddr;

/// Who the trial is; every series carries these as labels.
#[derive(Clone, Debug)]
pub struct Identity {
    pub sweep: String,
    pub trial: String,
    pub wi_seed: u64,
    pub do_seed: u64,
}

pub struct TrialMetrics {
    pub registry: Registry,
    pub progress: Gauge,
    pub epoch: Gauge,
    pub step: Gauge,
    pub total_steps: Gauge,
    pub train_loss: Gauge,
    pub learning_rate: Gauge,
    pub examples_per_second: Gauge,
    pub done: Gauge,
    eval: GaugeVec,
    majority_baseline: GaugeVec,
}

impl TrialMetrics {
    pub fn new(id: &Identity) -> Result<Self> {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| {
            Opts::new(name, help)
                .const_label(label::SWEEP, &id.sweep)
                .const_label(label::TRIAL, &id.trial)
                .const_label(label::WI_SEED, id.wi_seed.to_string())
                .const_label(label::DO_SEED, id.do_seed.to_string())
        };
        let gauge = |name: &str, help: &str| -> Result<Gauge> {
            let g = Gauge::with_opts(opts(name, help))?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let eval = GaugeVec::new(
            opts(metric::EVAL, "Dev-set metric at each evaluation point"),
            &[
                label::EVAL_INDEX,
                label::EVAL_STEP,
                label::EVAL_PROGRESS,
                label::METRIC,
            ],
        )?;
        registry.register(Box::new(eval.clone()))?;
        let majority_baseline = GaugeVec::new(
            opts(
                metric::MAJORITY_BASELINE,
                "Dev-set metric of always predicting the majority class",
            ),
            &[label::METRIC],
        )?;
        registry.register(Box::new(majority_baseline.clone()))?;
        Ok(TrialMetrics {
            progress: gauge(metric::PROGRESS, "Fraction of total training steps done")?,
            epoch: gauge(metric::EPOCH, "Current epoch, 0-based")?,
            step: gauge(metric::STEP, "Optimizer steps done")?,
            total_steps: gauge(metric::TOTAL_STEPS, "Optimizer steps of the full run")?,
            train_loss: gauge(metric::TRAIN_LOSS, "Training loss of the latest step")?,
            learning_rate: gauge(metric::LEARNING_RATE, "Learning rate of the latest step")?,
            examples_per_second: gauge(
                metric::EXAMPLES_PER_SECOND,
                "Training examples per second over the latest logging window",
            )?,
            done: gauge(metric::DONE, "1 once the run has ended")?,
            eval,
            majority_baseline,
            registry,
        })
    }

    pub fn record_eval(&self, index: u32, step: u64, progress: f64, m: &Metrics) {
        let (index, step, progress) = (
            index.to_string(),
            step.to_string(),
            format!("{progress:.4}"),
        );
        for name in MetricName::ALL {
            self.eval
                .with_label_values(&[
                    index.as_str(),
                    step.as_str(),
                    progress.as_str(),
                    name.as_str(),
                ])
                .set(m.get(name));
        }
    }

    pub fn set_majority_baseline(&self, m: &Metrics) {
        for name in MetricName::ALL {
            self.majority_baseline
                .with_label_values(&[name.as_str()])
                .set(m.get(name));
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("the text encoder writes to a Vec");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

/// Serves `/metrics` and `/healthz` on `addr` from a background thread; returns the bound address (`:0` picks a port).
pub fn serve(addr: &str, metrics: std::sync::Arc<TrialMetrics>) -> Result<SocketAddr> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow!("cannot listen on --metrics-addr {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow!("--metrics-addr {addr} is not an IP address"))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let path = request.url().split('?').next().unwrap_or("").to_string();
                let response = match path.as_str() {
                    "/metrics" => tiny_http::Response::from_string(metrics.render()).with_header(
                        "Content-Type: text/plain; version=0.0.4; charset=utf-8"
                            .parse::<tiny_http::Header>()
                            .expect("a valid header"),
                    ),
                    "/healthz" => tiny_http::Response::from_string("ok\n"),
                    _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
                };
                // A scraper that hung up is its own problem; keep serving the others.
                let _ = request.respond(response);
            }
        })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_carries_the_identity_and_evals_accumulate() {
        let m = TrialMetrics::new(&Identity {
            sweep: "s".into(),
            trial: "t".into(),
            wi_seed: 3,
            do_seed: 4,
        })
        .unwrap();
        let metrics = Metrics {
            accuracy: 0.5,
            f1: 0.25,
            mcc: 0.0,
            acc_and_f1: 0.375,
        };
        m.record_eval(0, 5, 0.5, &metrics);
        m.record_eval(1, 10, 1.0, &metrics);
        m.set_majority_baseline(&metrics);
        let text = m.render();
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(series.len(), 8 + 8 + 4, "{text}");
        for s in &series {
            assert!(
                s.contains(r#"sweep="s""#) && s.contains(r#"trial="t""#),
                "{s}"
            );
            assert!(
                s.contains(r#"wi_seed="3""#) && s.contains(r#"do_seed="4""#),
                "{s}"
            );
        }
        assert!(text.contains(r#"eval_index="1""#) && text.contains(r#"step="10""#));
        assert!(text.contains(r#"progress="0.5000""#) && text.contains(r#"metric="acc_and_f1""#));
    }
}
