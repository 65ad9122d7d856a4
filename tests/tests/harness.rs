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
    pods.create(&PostParams::default(), &sleeper()).await?;
    let running =
        wait_for_pod_phase(&pods, "sleeper", &["Running"], Duration::from_secs(30)).await?;
    let pid = sim_pid(&running)?;
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

const CHILD_ENV: &str = "SEEDSWEEP_HARNESS_ABORT_CHILD";

/// Not a test of its own: the child process of `an_aborted_test_process_is_cleaned_up_by_the_watchdog`.
/// Starts a cluster and a pod, reports their pids, then aborts (no destructors run).
#[test]
#[ignore = "helper process, run by an_aborted_test_process_is_cleaned_up_by_the_watchdog"]
fn abort_child() -> Result<()> {
    if std::env::var_os(CHILD_ENV).is_none() {
        eprintln!("skipping: only meaningful as a child process");
        return Ok(());
    }
    let Setup::Ready(cluster) = TestCluster::start(ClusterOptions {
        default_node_gpus: 0,
    })?
    else {
        anyhow::bail!("parent saw a cluster but the child got a skip");
    };
    let state = cluster.state_dir().context("local cluster")?.to_path_buf();
    let apiserver = std::fs::read_to_string(state.join("apiserver.pid"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let pod_pid = rt.block_on(async {
        let client = cluster.client().await?;
        let pods: Api<Pod> = Api::namespaced(client, "default");
        pods.create(&PostParams::default(), &sleeper()).await?;
        let running =
            wait_for_pod_phase(&pods, "sleeper", &["Running"], Duration::from_secs(30)).await?;
        sim_pid(&running)
    })?;
    println!(
        "STATE={} APISERVER={} POD={pod_pid}",
        state.display(),
        apiserver.trim()
    );
    std::process::abort();
}

#[test]
fn an_aborted_test_process_is_cleaned_up_by_the_watchdog() -> Result<()> {
    use std::io::BufRead as _;
    if std::env::var_os(seedsweep_tests::cluster::KUBECONFIG_ENV).is_some() {
        eprintln!("skipping: lifecycle of a local control plane; an external cluster is in use");
        return Ok(());
    }
    if let Some(why) = seedsweep_tests::cluster::local_unavailable() {
        eprintln!("skipping: {why}");
        return Ok(());
    }
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--ignored",
            "--exact",
            "abort_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env_remove(seedsweep_tests::cluster::KEEP_STATE_ENV)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    // libtest prints "test abort_child ... " before the test's own output on the same line.
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.find("STATE=").map(|i| l[i..].to_string()))
        .context("child did not report its cluster")?;
    let status = child.wait()?;
    ensure!(
        !status.success(),
        "child was supposed to abort, exited with {status}"
    );
    let field = |key: &str| -> Result<String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .map(str::to_string)
            .with_context(|| format!("{key} missing in {line:?}"))
    };
    let state = field("STATE=")?;
    let apiserver: i32 = field("APISERVER=")?.parse()?;
    let pod: i32 = field("POD=")?.parse()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(apiserver) || alive(pod) || Path::new(&state).exists() {
        ensure!(
            Instant::now() < deadline,
            "after the abort: apiserver alive={} pod alive={} state dir exists={}",
            alive(apiserver),
            alive(pod),
            Path::new(&state).exists()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn sleeper() -> Pod {
    Pod {
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
    }
}

fn sim_pid(pod: &Pod) -> Result<i32> {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.container_id.as_deref())
        .context("no container id")?;
    Ok(id
        .strip_prefix("sim://")
        .context("not a simulator container id")?
        .parse()?)
}
