//! A trial's Prometheus metrics, the trainer's side of the contract in [`crate::trainer`]: every series with the
//! trial's identity as labels, served by [`crate::serve`] on its own thread so it cannot stall training. The trainer
//! and its stand-in (tests crate) both serve these.

use crate::trainer::{label, metric};
use crate::{MetricName, Metrics};
use prometheus::{Gauge, GaugeVec, Opts, Registry};
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
    registry: Registry,
    pub progress: Gauge,
    pub epoch: Gauge,
    pub step: Gauge,
    pub total_steps: Gauge,
    pub train_loss: Gauge,
    pub learning_rate: Gauge,
    pub examples_per_second: Gauge,
    pub done: Gauge,
    pub resumed_from_step: Gauge,
    eval: GaugeVec,
    majority_baseline: GaugeVec,
}

impl TrialMetrics {
    pub fn new(id: &Identity) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let opts = |name: &str, help: &str| {
            Opts::new(name, help)
                .const_label(label::SWEEP, &id.sweep)
                .const_label(label::TRIAL, &id.trial)
                .const_label(label::WI_SEED, id.wi_seed.to_string())
                .const_label(label::DO_SEED, id.do_seed.to_string())
        };
        let gauge = |name: &str, help: &str| -> Result<Gauge, prometheus::Error> {
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
            resumed_from_step: gauge(
                metric::RESUMED_FROM_STEP,
                "The step this run resumed from (a checkpoint), 0 when it trained from the beginning",
            )?,
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
        crate::serve::render(&self.registry)
    }

    /// Serves `/metrics` on `addr` from a background thread; the bound address (`:0` picks a port).
    pub fn serve(&self, addr: &str) -> Result<SocketAddr, String> {
        let endpoints = crate::serve::Endpoints {
            registry: self.registry.clone(),
            ready: None,
        };
        crate::serve::serve(addr, "metrics", endpoints)
            .map_err(|e| format!("--metrics-addr {addr}: {e}"))
    }
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
        assert_eq!(series.len(), 9 + 8 + 4, "{text}");
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
