//! The operator's own observability: Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub reconcile_errors: IntCounterVec,
    pub scrape_failures: IntCounterVec,
    pub trials: prometheus::IntGaugeVec,
    pub best_score: prometheus::GaugeVec,
    pub jobs_created: IntCounterVec,
    pub jobs_deleted: IntCounterVec,
    pub leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
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
            Box::new(reconcile_errors.clone()),
            Box::new(scrape_failures.clone()),
            Box::new(trials.clone()),
            Box::new(best_score.clone()),
            Box::new(jobs_created.clone()),
            Box::new(jobs_deleted.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            reconcile_errors,
            scrape_failures,
            trials,
            best_score,
            jobs_created,
            jobs_deleted,
            leader,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into memory");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }

    /// Forgets a deleted sweep's series.
    pub fn forget_sweep(&self, namespace: &str, sweep: &str) {
        for phase in super::status::PHASES {
            let phase = format!("{phase:?}");
            let _ = self.trials.remove_label_values(&[namespace, sweep, &phase]);
        }
        let _ = self.best_score.remove_label_values(&[namespace, sweep]);
    }
}

/// Serves `/metrics`, `/healthz` (the process is alive) and `/readyz` (the apiserver answered and the CRD is
/// installed) on a thread of its own. Returns the bound address.
pub fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> anyhow::Result<SocketAddr> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("--metrics-addr {addr}: cannot listen: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow::anyhow!("--metrics-addr {addr}: not an IP address"))?;
    std::thread::Builder::new()
        .name("operator-http".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let (code, body) = match request.url() {
                    "/metrics" => (200, metrics.render()),
                    "/healthz" => (200, "ok\n".to_string()),
                    "/readyz" if ready.load(Ordering::Relaxed) => (200, "ok\n".to_string()),
                    "/readyz" => (503, "not ready\n".to_string()),
                    _ => (404, "not found\n".to_string()),
                };
                let _ =
                    request.respond(tiny_http::Response::from_string(body).with_status_code(code));
            }
        })?;
    Ok(bound)
}
