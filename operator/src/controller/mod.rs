//! The Kubernetes executor: each SeedSweep becomes one Job per trial attempt, trial pods are scraped, and the
//! engine's decisions are carried out by deleting Jobs. Like the local executor it holds no policy; unlike it, its
//! memory lives in the sweep's status, so any replica can pick the sweep up and decide the same way.
//!
//! One reconciliation ([`runtime`]): validate the live spec → observe Jobs, pods and scrapes → decide (one engine
//! step) → persist the status (before acting whenever there is something to act on) → act on Jobs, publish events.

pub mod checkpoints;
pub mod concurrent;
pub mod engine_store;
pub mod error;
pub mod events;
pub mod job;
pub mod leader;
pub mod observe;
pub mod reconcile;
pub mod runtime;
pub mod status;
pub mod telemetry;

pub use error::Error;
pub use reconcile::{error_policy, reconcile};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client};
use seedsweep_crds::sweep::SeedSweep;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How the operator runs, whatever the sweep.
#[derive(Debug, Clone)]
pub struct Config {
    pub image: job::TrainerImage,
    /// Between scrapes of a sweep's running trials (the sweep is reconciled this often while it runs).
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    /// Scrapes in flight at once, per sweep.
    pub scrape_concurrency: usize,
    /// At least this long between status writes that only report progress; anything a decision rests on is
    /// written at once.
    pub status_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            image: job::TrainerImage {
                default_image: format!("ghcr.io/seedsweep/trainer:{}", env!("CARGO_PKG_VERSION")),
                command: vec!["seedsweep-trainer".into()],
            },
            scrape_interval: Duration::from_secs(10),
            scrape_timeout: Duration::from_secs(5),
            scrape_concurrency: 32,
            status_interval: Duration::from_secs(30),
        }
    }
}

/// Shared by every reconciliation.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub http: reqwest::Client,
    pub metrics: Arc<telemetry::OperatorMetrics>,
    /// Who publishes the events; see [`Context::recorder`].
    reporter: Reporter,
    /// Per sweep (by uid): the engine state between reconciliations. Reconciliations of one sweep never overlap;
    /// the mutex only makes that visible to the compiler.
    sweeps:
        std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<runtime::SweepRuntime>>>>>,
}

impl Context {
    pub fn new(
        client: Client,
        config: Config,
        metrics: Arc<telemetry::OperatorMetrics>,
    ) -> reqwest::Result<Self> {
        let reporter = Reporter {
            controller: job::MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Ok(Context {
            reporter,
            client,
            config,
            http: crate::scrape::client()?,
            metrics,
            sweeps: Default::default(),
        })
    }

    /// A recorder for one event. Not one kept for the process: a `Recorder` keeps every event it published for six
    /// minutes, to count repeats of one event as a series, and that cache was the largest thing on the heap (11.8 MB
    /// of 35.6 MB at 1,600 trials, heaptrack). Each event here reports one decision about one trial's Job, so there
    /// are no repeats to count.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }

    fn runtime(&self, uid: &str) -> Arc<tokio::sync::Mutex<Option<runtime::SweepRuntime>>> {
        let mut sweeps = self.sweeps.lock().expect("not poisoned");
        Arc::clone(sweeps.entry(uid.to_string()).or_default())
    }

    fn forget(&self, uid: &str) {
        self.sweeps.lock().expect("not poisoned").remove(uid);
    }
}

/// Runs the controller until SIGTERM/SIGINT. `namespace`: watch one namespace, else all.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (sweeps, jobs, pods): (Api<SeedSweep>, Api<Job>, Api<Pod>) = match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let managed = format!("{}={}", job::LABEL_MANAGED_BY, job::MANAGER);
    let sweeps_for_gc = sweeps.clone();
    let controller = Controller::new(sweeps, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels(&managed))
        // Pods change (start, get an IP, end) without their Job changing; each change is a reason to look.
        .watches(pods, watcher::Config::default().labels(&managed), |pod| {
            let ns = pod.metadata.namespace.clone()?;
            let sweep = pod.metadata.labels.as_ref()?.get(job::LABEL_SWEEP)?.clone();
            Some(ObjectRef::<SeedSweep>::new(&sweep).within(&ns))
        });
    let forgetter = tokio::spawn(forget_deleted_sweeps(sweeps_for_gc, Arc::clone(&ctx)));
    controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(sweep = %obj, "reconciled"),
                // A deleted sweep's Jobs and pods still send events while the garbage collector removes them.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::trace!(sweep = %obj, "already deleted")
                }
                Err(e) => tracing::warn!("reconcile: {e}"),
            }
        })
        .await;
    forgetter.abort();
    Ok(())
}

/// A sweep deleted without finalizers is never reconciled again: forget its metric series and its runtime once
/// the apiserver no longer lists it (metadata only, so a sweep's large status is not transferred).
async fn forget_deleted_sweeps(sweeps: Api<SeedSweep>, ctx: Arc<Context>) {
    loop {
        tokio::time::sleep(ctx.config.scrape_interval).await;
        let live = match sweeps
            .list_metadata(&kube::api::ListParams::default())
            .await
        {
            Ok(list) => list.items,
            Err(e) => {
                tracing::debug!("listing sweeps to forget deleted ones: {e}");
                continue;
            }
        };
        let names = live
            .iter()
            .filter_map(|s| Some((s.metadata.namespace.clone()?, s.metadata.name.clone()?)))
            .collect();
        ctx.metrics.forget_all_but(&names);
        let uids: std::collections::HashSet<String> =
            live.iter().filter_map(|s| s.metadata.uid.clone()).collect();
        ctx.sweeps
            .lock()
            .expect("not poisoned")
            .retain(|uid, _| uids.contains(uid));
    }
}

/// `seedsweep operator`'s options.
#[derive(clap::Args, Debug, Clone)]
pub struct OperatorArgs {
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Watch SeedSweeps in this namespace only (default: all namespaces).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Serve /metrics, /healthz and /readyz here.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: String,
    /// Trainer image for sweeps that do not set trialTemplate.image.
    #[arg(long, default_value_t = Config::default().image.default_image)]
    pub trainer_image: String,
    /// The trainer's command in the trial container (its arguments follow).
    #[arg(long, default_value = "seedsweep-trainer")]
    pub trainer_command: String,
    /// Seconds between scrapes of a running sweep's trials.
    #[arg(long, default_value = "10", value_parser = crate::flags::seconds)]
    pub scrape_interval: Duration,
    /// Seconds before a scrape is given up.
    #[arg(long, default_value = "5", value_parser = crate::flags::seconds)]
    pub scrape_timeout: Duration,
    /// Scrapes in flight at once, per sweep.
    #[arg(long, default_value_t = 32)]
    pub scrape_concurrency: usize,
    /// Least seconds between status writes that only report progress (decisions are written at once).
    #[arg(long, default_value = "30", value_parser = crate::flags::seconds)]
    pub status_interval: Duration,
    /// Run without leader election (only when exactly one replica runs).
    #[arg(long)]
    pub no_leader_election: bool,
    /// Namespace of the leader Lease (default: $POD_NAMESPACE, else --namespace, else "default").
    #[arg(long)]
    pub lease_namespace: Option<String>,
    #[arg(long, default_value = "seedsweep-operator")]
    pub lease_name: String,
    /// Seconds a lease holder has to renew before another replica may take over.
    #[arg(long, default_value_t = 15)]
    pub lease_duration: u64,
    /// This replica's name in the lease (default: $POD_NAME, else hostname-pid).
    #[arg(long)]
    pub identity: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `seedsweep operator`: connects, checks the CRD, serves its own metrics, waits for the lease, and runs the
/// controller until SIGTERM or until the lease is lost (then exits non-zero, so a restarted replica stands by).
pub async fn serve(args: OperatorArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    if args.trainer_command.trim().is_empty() {
        anyhow::bail!("--trainer-command must not be empty");
    }
    if args.scrape_concurrency == 0 {
        anyhow::bail!("--scrape-concurrency must be at least 1");
    }
    if args.lease_duration < 2 {
        anyhow::bail!("--lease-duration must be at least 2 seconds");
    }
    let config = Config {
        image: job::TrainerImage {
            default_image: args.trainer_image.clone(),
            command: vec![args.trainer_command.clone()],
        },
        scrape_interval: args.scrape_interval,
        scrape_timeout: args.scrape_timeout,
        scrape_concurrency: args.scrape_concurrency,
        status_interval: args.status_interval,
    };
    let kube_config = crate::kubeconfig::kube_config(args.kubeconfig.as_deref()).await?;
    let client = Client::try_from(kube_config)?;

    let metrics = Arc::new(telemetry::OperatorMetrics::new());
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = telemetry::serve(&args.metrics_addr, &metrics, Arc::clone(&ready))?;
    tracing::info!("serving /metrics, /healthz and /readyz on http://{addr}");

    // A missing CRD is the commonest setup mistake: say so instead of retrying forever.
    let probe: Api<SeedSweep> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    probe
        .list(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(|e| match e {
            kube::Error::Api(ref s) if s.code == 404 => anyhow::anyhow!(
                "the SeedSweep CRD is not installed in this cluster: run `seedsweep crd | kubectl apply -f -`"
            ),
            e => anyhow::Error::new(e).context("cannot list SeedSweeps"),
        })?;
    ready.store(true, std::sync::atomic::Ordering::Relaxed);

    let ctx = Context::new(client.clone(), config, Arc::clone(&metrics)).map_err(|e| {
        anyhow::Error::new(e).context("cannot make the HTTP client that scrapes trainers")
    })?;
    let ctx = Arc::new(ctx);
    if args.no_leader_election {
        metrics.leader.set(1);
        return run(ctx, args.namespace.as_deref()).await;
    }
    let lease_ns = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .or_else(|| args.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let identity = args.identity.clone().unwrap_or_else(|| {
        std::env::var("POD_NAME").unwrap_or_else(|_| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "seedsweep".into());
            format!("{host}-{}", std::process::id())
        })
    });
    let duration = Duration::from_secs(args.lease_duration);
    let election = leader::LeaderElection::new(
        Api::namespaced(client, &lease_ns),
        leader::LeaseSettings {
            name: args.lease_name.clone(),
            identity: identity.clone(),
            duration,
            renew_every: duration / 3,
            retry_every: (duration / 5).max(Duration::from_millis(500)),
        },
    );
    election.acquire().await;
    metrics.leader.set(1);
    tracing::info!(identity = %identity, lease = %format!("{lease_ns}/{}", args.lease_name), "leading");
    let result = tokio::select! {
        result = run(ctx, args.namespace.as_deref()) => result,
        why = election.hold() => {
            metrics.leader.set(0);
            anyhow::bail!("lost the leader lease ({why}); exiting so that only the leader acts")
        }
    };
    // Stopped (SIGTERM): hand the lease over now rather than after it expires.
    match election.release().await {
        Ok(true) => tracing::info!(lease = %args.lease_name, "released the lease"),
        Ok(false) => {}
        Err(e) => tracing::warn!(lease = %args.lease_name, "releasing the lease: {e}"),
    }
    metrics.leader.set(0);
    result
}
