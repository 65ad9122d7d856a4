//! Standalone node simulator: acts as the kubelet for one Node of a cluster without kubelets
//! (see tests/README.md). Runs until SIGINT/SIGTERM, then kills its pod processes.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use seedsweep_tests::sim::{NodeConfig, NodeSimulator};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(
    name = "seedsweep-node-sim",
    about = "Act as the kubelet for one simulated Node, running pods as local processes"
)]
struct Args {
    /// Kubeconfig of the cluster (default: $KUBECONFIG / in-cluster inference).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[arg(long, default_value = "seedsweep-sim-0")]
    node_name: String,
    /// nvidia.com/gpu capacity.
    #[arg(long, default_value_t = 0)]
    gpus: u32,
    /// CPU capacity (Kubernetes quantity).
    #[arg(long, default_value = "16")]
    cpu: String,
    /// Memory capacity (Kubernetes quantity).
    #[arg(long, default_value = "64Gi")]
    memory: String,
    /// Maximum number of pods.
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Pod IPs are allocated from this loopback /16 (127.a.0.0; not 127.0.x.x).
    #[arg(long, default_value = "127.1.0.0")]
    ip_base: Ipv4Addr,
    /// Register the node cordoned: only pods that set spec.nodeName to it run here.
    #[arg(long)]
    unschedulable: bool,
    /// Per-pod directories, logs and termination messages go under <work-dir>/pods.
    #[arg(long)]
    work_dir: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    for (flag, q) in [("--cpu", &args.cpu), ("--memory", &args.memory)] {
        // Catch typos here rather than as an opaque API validation error on the Node.
        serde_json::from_value::<Quantity>(serde_json::json!(q))
            .ok()
            .filter(|q| q.0.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .with_context(|| format!("{flag} {q:?} is not a Kubernetes quantity"))?;
    }
    let client = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let cfg =
                kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
            Client::try_from(cfg)?
        }
        None => Client::try_default()
            .await
            .context("no --kubeconfig and no default Kubernetes config")?,
    };
    let mut config = NodeConfig::new(&args.node_name, &args.work_dir)
        .with_gpus(args.gpus)
        .with_ip_base(args.ip_base);
    config.cpu = args.cpu;
    config.memory = args.memory;
    config.pods = args.pods;
    config.unschedulable = args.unschedulable;
    let sim = NodeSimulator::start(client, config).await?;
    tracing::info!(node = sim.name(), "node registered and Ready");
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: killing pod processes");
    sim.shutdown().await;
    Ok(())
}
