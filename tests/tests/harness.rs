//! The harness's own lifecycle: a cluster that is dropped stops its control plane, kills its pods' processes
//! and removes its state dir. A separate binary because it starts a private cluster of its own.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use seedsweep_tests::helpers::{create_namespace, wait_for_pod_phase};
use seedsweep_tests::{ClusterOptions, Setup, TestCluster};

/// Alive and not a zombie (orphaned daemons can linger as zombies until init reaps them).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

#[tokio::test]
async fn dropping_the_cluster_stops_everything() -> Result<()> {
    if std::env::var_os(seedsweep_tests::cluster::KUBECONFIG_ENV).is_some() {
        eprintln!("skipping: lifecycle of a local control plane; an external cluster is in use");
        return Ok(());
    }
    let started = Instant::now();
    let cluster = match TestCluster::start(ClusterOptions {
        default_node_gpus: 0,
    })? {
        Setup::Ready(c) => c,
        Setup::Skip(why) => {
            eprintln!("skipping: {why}");
            return Ok(());
        }
    };
    eprintln!("control plane + node up in {:?}", started.elapsed());
    let state = cluster
        .state_dir()
        .context("local cluster has a state dir")?
        .to_path_buf();
    let apiserver: i32 = std::fs::read_to_string(state.join("apiserver.pid"))?
        .trim()
        .parse()?;
    ensure!(alive(apiserver), "apiserver not running");

    let client = cluster.client().await?;
    let ns = create_namespace(&client, "lifecycle").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("sleeper".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox:1.36".into()),
                command: Some(vec!["sleep".into(), "300".into()]),
                ..Default::default()
            }],
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    pods.create(&PostParams::default(), &pod).await?;
    let running =
        wait_for_pod_phase(&pods, "sleeper", &["Running"], Duration::from_secs(30)).await?;
    let id = running
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|cs| cs.into_iter().next())
        .and_then(|c| c.container_id)
        .context("no container id")?;
    let pid: i32 = id
        .strip_prefix("sim://")
        .context("not a simulator container id")?
        .parse()?;
    ensure!(alive(pid), "pod process not running");

    let dropped = Instant::now();
    drop(client);
    drop(cluster);
    eprintln!("dropped in {:?}", dropped.elapsed());
    ensure!(!alive(pid), "pod process {pid} survived the drop");
    ensure!(!alive(apiserver), "apiserver {apiserver} survived the drop");
    let keep = std::env::var(seedsweep_tests::cluster::KEEP_STATE_ENV).is_ok_and(|v| v == "1");
    ensure!(
        keep || !Path::new(&state).exists(),
        "state dir {} left behind",
        state.display()
    );
    Ok(())
}
