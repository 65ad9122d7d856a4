//! The operator's own observability: Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use seedsweep_crds::sweep::{SeedSweepStatus, SweepPhase};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Every sweep phase, for `seedsweep_operator_sweep_phase`.
const SWEEP_PHASES: [SweepPhase; 5] = [
    SweepPhase::Pending,
    SweepPhase::Running,
    SweepPhase::Succeeded,
    SweepPhase::Failed,
    SweepPhase::Invalid,
];
use std::sync::atomic::AtomicBool;

pub struct OperatorMetrics {
    pub registry: Registry,
    pub reconciles: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub reconcile_step_duration: HistogramVec,
    pub reconcile_errors: IntCounterVec,
    pub scrape_failures: IntCounterVec,
    pub trials: prometheus::IntGaugeVec,
    pub sweep_phase: prometheus::IntGaugeVec,
    pub best_score: prometheus::GaugeVec,
    pub jobs_created: IntCounterVec,
    pub jobs_deleted: IntCounterVec,
    pub leader: IntGauge,
    /// The sweeps that have series, so the ones deleted since can be forgotten.
    sweeps: Mutex<BTreeSet<(String, String)>>,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl OperatorMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "seedsweep_operator_reconciles_total",
                "Reconciliations by result",
            ),
            &["result"],
        )
        .unwrap();
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "seedsweep_operator_reconcile_duration_seconds",
                "Time one reconciliation of a sweep took (listing, scraping, status, Job changes)",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &[],
        )
        .unwrap();
        let reconcile_step_duration = HistogramVec::new(
            HistogramOpts::new(
                "seedsweep_operator_reconcile_step_seconds",
                "Time each step of a running sweep's reconciliation took: read (list Jobs and pods), scrape (the \
                 trainers' /metrics), persist (status and engine ConfigMaps), act (delete, label and create Jobs; \
                 publish events)",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["step"],
        )
        .unwrap();
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "seedsweep_operator_reconcile_errors_total",
                "Failed reconciliations by kind of error",
            ),
            &["kind"],
        )
        .unwrap();
        let scrape_failures = IntCounterVec::new(
            Opts::new(
                "seedsweep_operator_scrape_failures_total",
                "Trial metrics endpoints that did not answer with valid metrics",
            ),
            &["namespace", "sweep"],
        )
        .unwrap();
        let trials = prometheus::IntGaugeVec::new(
            Opts::new("seedsweep_operator_trials", "Trials of a sweep by phase"),
            &["namespace", "sweep", "phase"],
        )
        .unwrap();
        let sweep_phase = prometheus::IntGaugeVec::new(
            Opts::new(
                "seedsweep_operator_sweep_phase",
                "1 for a sweep's current phase, 0 for the others",
            ),
            &["namespace", "sweep", "phase"],
        )
        .unwrap();
        let best_score = prometheus::GaugeVec::new(
            Opts::new(
                "seedsweep_operator_best_score",
                "The objective of a sweep's best kept trial",
            ),
            &["namespace", "sweep"],
        )
        .unwrap();
        let jobs_created = IntCounterVec::new(
            Opts::new(
                "seedsweep_operator_jobs_created_total",
                "Trial Jobs created",
            ),
            &["namespace"],
        )
        .unwrap();
        let jobs_deleted = IntCounterVec::new(
            Opts::new(
                "seedsweep_operator_jobs_deleted_total",
                "Trial Jobs deleted, by why (discarded, diverged, paused, orphaned)",
            ),
            &["namespace", "reason"],
        )
        .unwrap();
        let leader = IntGauge::new(
            "seedsweep_operator_leader",
            "1 while this replica holds the leader lease",
        )
        .unwrap();
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_duration.clone()),
            Box::new(reconcile_step_duration.clone()),
            Box::new(reconcile_errors.clone()),
            Box::new(scrape_failures.clone()),
            Box::new(trials.clone()),
            Box::new(sweep_phase.clone()),
            Box::new(best_score.clone()),
            Box::new(jobs_created.clone()),
            Box::new(jobs_deleted.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        // Counters exist from the start at zero, so rate() and alerts see their first increment.
        for result in ["ok", "error"] {
            reconciles.with_label_values(&[result]);
        }
        for kind in super::Error::KINDS {
            reconcile_errors.with_label_values(&[kind]);
        }
        OperatorMetrics {
            registry,
            reconciles,
            reconcile_duration,
            reconcile_step_duration,
            reconcile_errors,
            scrape_failures,
            trials,
            sweep_phase,
            best_score,
            jobs_created,
            jobs_deleted,
            leader,
            sweeps: Mutex::new(BTreeSet::new()),
        }
    }

    /// Sets a sweep's per-sweep series from its status.
    pub fn record_sweep(&self, namespace: &str, sweep: &str, status: &SeedSweepStatus) {
        self.sweeps
            .lock()
            .expect("not poisoned")
            .insert((namespace.to_string(), sweep.to_string()));
        // Created at zero with the sweep, like every counter.
        self.scrape_failures.with_label_values(&[namespace, sweep]);
        self.jobs_created.with_label_values(&[namespace]);
        for phase in super::status::PHASES {
            self.trials
                .with_label_values(&[namespace, sweep, &format!("{phase:?}")])
                .set(i64::from(status.counts.of(phase)));
        }
        for phase in SWEEP_PHASES {
            self.sweep_phase
                .with_label_values(&[namespace, sweep, &format!("{phase:?}")])
                .set(i64::from(status.phase == phase));
        }
        if let Some(b) = &status.best_trial {
            self.best_score
                .with_label_values(&[namespace, sweep])
                .set(b.score);
        }
    }

    /// Forgets the series of every sweep not in `live` (deleted sweeps are never reconciled again).
    pub fn forget_all_but(&self, live: &BTreeSet<(String, String)>) {
        let gone: Vec<(String, String)> = self
            .sweeps
            .lock()
            .expect("not poisoned")
            .difference(live)
            .cloned()
            .collect();
        for (namespace, sweep) in gone {
            self.forget_sweep(&namespace, &sweep);
        }
    }

    pub fn render(&self) -> String {
        seedsweep_crds::serve::render(&self.registry)
    }

    /// Forgets a deleted sweep's series.
    pub fn forget_sweep(&self, namespace: &str, sweep: &str) {
        for phase in super::status::PHASES {
            let phase = format!("{phase:?}");
            let _ = self.trials.remove_label_values(&[namespace, sweep, &phase]);
        }
        for phase in SWEEP_PHASES {
            let phase = format!("{phase:?}");
            let _ = self
                .sweep_phase
                .remove_label_values(&[namespace, sweep, &phase]);
        }
        let _ = self.best_score.remove_label_values(&[namespace, sweep]);
        let _ = self
            .scrape_failures
            .remove_label_values(&[namespace, sweep]);
        self.sweeps
            .lock()
            .expect("not poisoned")
            .remove(&(namespace.to_string(), sweep.to_string()));
    }
}

/// Serves `/metrics`, `/healthz` (the process is alive) and `/readyz` (the apiserver answered and the CRD is
/// installed) on a thread of its own. Returns the bound address.
pub fn serve(
    addr: &str,
    metrics: &OperatorMetrics,
    ready: Arc<AtomicBool>,
) -> anyhow::Result<SocketAddr> {
    let endpoints = seedsweep_crds::serve::Endpoints {
        registry: metrics.registry.clone(),
        ready: Some(ready),
    };
    seedsweep_crds::serve::serve(addr, "operator-http", endpoints)
        .map_err(|e| anyhow::anyhow!("--metrics-addr {addr}: {e}"))
}
