//! Standalone node simulator: acts as the kubelet for one Node of a cluster without kubelets
//! (see tests/README.md). Runs until SIGINT/SIGTERM, then kills its pod processes.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// An image that cannot be pulled (glob: `*` any characters, `?` one; matched against the image as written
    /// and normalized, e.g. docker.io/library/x:1). Repeatable. Registry hosts under .invalid never pull.
    #[arg(long = "unpullable-image", value_name = "PATTERN")]
    unpullable_images: Vec<String>,
    /// First delay of the image pull back-off (doubles per failed pull up to --max-backoff).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    image_pull_backoff_base: Duration,
    /// First delay of the crash-loop back-off (doubles per restart up to --max-backoff).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    crash_backoff_base: Duration,
    /// Cap of both back-offs.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    max_backoff: Duration,
    /// Retry interval for CreateContainerConfigError, volumes that cannot be set up and ErrImageNeverPull.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    config_retry_interval: Duration,
    /// PATTERN=PROGRAM: containers without `command` whose image matches PATTERN (glob, as for
    /// --unpullable-image) run PROGRAM with their `args`, standing in for the image's ENTRYPOINT. Repeatable; the
    /// first match wins.
    #[arg(long = "image-entrypoint", value_name = "PATTERN=PROGRAM", value_parser = parse_entrypoint)]
    image_entrypoints: Vec<(String, String)>,
    /// host:port at which pods reach the apiserver (KUBERNETES_SERVICE_HOST/PORT, service-account kubeconfigs).
    /// Default: the address the apiserver advertises in /api.
    #[arg(long, value_name = "HOST:PORT")]
    api_server: Option<String>,
}

fn parse_entrypoint(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((pattern, program)) if !pattern.is_empty() && !program.is_empty() => {
            Ok((pattern.to_string(), program.to_string()))
        }
        _ => Err(format!("{s:?}: expected PATTERN=PROGRAM")),
    }
}

/// `500ms`, `10s`, `5m`, `1h` (one number, one unit).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("{s:?}: missing unit (ms, s, m, h)"))?;
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{s:?}: not a number"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
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
    config.unpullable_images = args.unpullable_images;
    config.image_pull_backoff_base = args.image_pull_backoff_base;
    config.crash_backoff_base = args.crash_backoff_base;
    config.max_backoff = args.max_backoff;
    config.config_retry_interval = args.config_retry_interval;
    config.image_entrypoints = args.image_entrypoints;
    config.api_server = args.api_server;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10d").is_err());
    }

    #[test]
    fn flags() {
        let args = Args::try_parse_from([
            "seedsweep-node-sim",
            "--work-dir",
            "/tmp/w",
            "--unpullable-image",
            "unpullable.example/*",
            "--unpullable-image",
            "*:missing",
            "--crash-backoff-base",
            "200ms",
            "--image-entrypoint",
            "ghcr.io/seedsweep/operator:*=/opt/bin/seedsweep",
        ])
        .unwrap();
        assert_eq!(
            args.image_entrypoints,
            [(
                "ghcr.io/seedsweep/operator:*".to_string(),
                "/opt/bin/seedsweep".to_string()
            )]
        );
        assert!(
            Args::try_parse_from([
                "seedsweep-node-sim",
                "--work-dir",
                "/w",
                "--image-entrypoint",
                "no-program"
            ])
            .is_err()
        );
        assert_eq!(
            args.unpullable_images,
            ["unpullable.example/*", "*:missing"]
        );
        assert_eq!(args.crash_backoff_base, Duration::from_millis(200));
        assert_eq!(args.image_pull_backoff_base, Duration::from_secs(10));
        assert_eq!(args.max_backoff, Duration::from_secs(300));
    }
}
