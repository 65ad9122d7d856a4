//! `TestCluster`: a Kubernetes API to run end-to-end tests against.
//!
//! * `SEEDSWEEP_TEST_KUBECONFIG` set: that cluster, as-is (a real one with kubelets, e.g. kind); no simulator.
//! * else `<workspace>/../shared/k8s/start.sh` exists: a private control plane on free loopback ports in a temp
//!   state dir, plus simulated nodes (the kubelet stand-in) running on a dedicated runtime thread.
//! * else: [`Setup::Skip`] with the reason, so tests print `skipping: ...` and pass.
//!
//! Cleanup: a watchdog process (`sh`) holds a pipe from the test process; when the pipe closes — drop, panic,
//! normal exit or even SIGKILL of the test binary — it kills leftover pod processes, runs `stop.sh` and removes
//! the state dir. That is what makes a `static` shared cluster (never dropped) safe.

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::helpers;
use crate::sim::{NodeConfig, NodeSimulator};

/// Use this cluster instead of starting one (a real cluster with kubelets, such as kind).
pub const KUBECONFIG_ENV: &str = "SEEDSWEEP_TEST_KUBECONFIG";
/// Overrides the location of the `shared/k8s` scripts.
pub const K8S_DIR_ENV: &str = "SEEDSWEEP_K8S_DIR";
/// `1`: keep the control plane's state dir (logs, pod logs) after the run, for debugging.
pub const KEEP_STATE_ENV: &str = "SEEDSWEEP_TEST_KEEP_STATE";

/// Name of the node every local cluster starts with.
pub const DEFAULT_NODE: &str = "seedsweep-sim-0";

/// Either a cluster or the reason there is none.
pub enum Setup {
    Ready(TestCluster),
    Skip(String),
}

impl Setup {
    /// The cluster, or `None` after printing `skipping: <why>` (for `let Some(c) = .. else { return }`).
    pub fn ready_or_skip(&self) -> Option<&TestCluster> {
        match self {
            Setup::Ready(c) => Some(c),
            Setup::Skip(why) => {
                eprintln!("skipping: {why}");
                None
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// GPUs (`nvidia.com/gpu`) of the default simulated node.
    pub default_node_gpus: u32,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            default_node_gpus: 2,
        }
    }
}

/// One cluster per test binary, started on first use and cleaned up by the watchdog at process exit.
/// Panics (in every test that asks, with the same message, without retrying) if starting a cluster that should
/// be available fails: a broken environment must fail loudly, not skip.
pub fn shared() -> &'static Setup {
    static SHARED: OnceLock<Result<Setup, String>> = OnceLock::new();
    let started = SHARED.get_or_init(|| {
        TestCluster::start(ClusterOptions::default()).map_err(|e| format!("{e:#}"))
    });
    match started {
        Ok(setup) => setup,
        Err(e) => panic!("starting the shared test cluster failed: {e}"),
    }
}

/// Where the control-plane scripts live: `$SEEDSWEEP_K8S_DIR`, else `<workspace>/../shared/k8s`.
pub fn k8s_dir() -> PathBuf {
    match std::env::var_os(K8S_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/k8s"),
    }
}

/// Why a local control plane cannot be started here (`None`: it can).
pub fn local_unavailable() -> Option<String> {
    let dir = k8s_dir();
    (!dir.join("start.sh").is_file()).then(|| {
        format!(
            "no {}/start.sh and {KUBECONFIG_ENV} unset: no Kubernetes API to test against",
            dir.display()
        )
    })
}

pub struct TestCluster {
    kubeconfig: PathBuf,
    local: Option<Local>,
}

/// How an apiserver restart went ([`TestCluster::restart_apiserver`]).
#[derive(Debug, Clone, Copy)]
pub struct ApiserverRestart {
    /// From SIGTERM to the process gone.
    pub stop: Duration,
    /// It did not stop within 5 s of SIGTERM and was SIGKILLed.
    pub killed: bool,
    /// From the stop signal to ready again.
    pub unavailable: Duration,
    /// From the new process's start to ready.
    pub startup: Duration,
}

/// What only a cluster we started has.
struct Local {
    state_dir: PathBuf,
    k8s_dir: PathBuf,
    watchdog: Child,
    /// Held only so dropping it (or process exit) closes the watchdog's stdin.
    watchdog_pipe: Option<std::process::ChildStdin>,
    harness: Harness,
    ip_second_octet: u8,
    /// Clusters this process started before this one.
    ordinal: u32,
    /// The controller manager's secure port, once start.sh has started it.
    kcm_port: Option<u16>,
}

/// A runtime on its own thread hosts the simulators, so they outlive every `#[tokio::test]` runtime.
struct Harness {
    handle: tokio::runtime::Handle,
    sims: Arc<Mutex<Vec<NodeSimulator>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    nodes: Mutex<Vec<String>>,
}

impl TestCluster {
    /// Blocking (8–15 s for a local control plane); callable from sync code and from inside async tests.
    pub fn start(options: ClusterOptions) -> Result<Setup> {
        if let Some(path) = std::env::var_os(KUBECONFIG_ENV).filter(|p| !p.is_empty()) {
            let kubeconfig = PathBuf::from(path);
            if !kubeconfig.is_file() {
                bail!("{KUBECONFIG_ENV}={} is not a file", kubeconfig.display());
            }
            return Ok(Setup::Ready(TestCluster {
                kubeconfig,
                local: None,
            }));
        }
        let k8s_dir = k8s_dir();
        if let Some(why) = local_unavailable() {
            return Ok(Setup::Skip(why));
        }
        let k8s_dir = k8s_dir
            .canonicalize()
            .with_context(|| format!("resolving {}", k8s_dir.display()))?;
        Self::start_local(k8s_dir, options).map(Setup::Ready)
    }

    fn start_local(k8s_dir: PathBuf, options: ClusterOptions) -> Result<TestCluster> {
        let state_dir = tempfile::Builder::new()
            .prefix("seedsweep-k8s-")
            .tempdir()
            .context("creating the control plane's state dir")?
            .keep();
        let keep = std::env::var(KEEP_STATE_ENV).is_ok_and(|v| v == "1");
        // Several clusters in one process (the fault tests start one per scenario, two at a time) must not pick
        // the same ports or pod addresses, so each mixes its ordinal into what the process id alone chose.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let ordinal = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (watchdog, pipe) = spawn_watchdog(&state_dir, &k8s_dir, keep)?;
        // From here on the watchdog owns cleanup; a failure below just drops `local`, which triggers it.
        let harness = Harness::start()?;
        let mut local = Local {
            state_dir,
            k8s_dir,
            watchdog,
            watchdog_pipe: Some(pipe),
            harness,
            ip_second_octet: 10 + (std::process::id().wrapping_add(ordinal * 37) % 200) as u8,
            ordinal,
            kcm_port: None,
        };
        local.start_control_plane()?;
        let cluster = TestCluster {
            kubeconfig: local.state_dir.join("kubeconfig"),
            local: Some(local),
        };
        let node = cluster
            .node_config(DEFAULT_NODE)?
            .with_gpus(options.default_node_gpus);
        cluster.block_on(async {
            cluster.add_node(node).await?;
            cluster.probe().await
        })?;
        Ok(cluster)
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// True when pods run on simulated nodes (a local control plane), false on an external cluster.
    pub fn has_simulator(&self) -> bool {
        self.local.is_some()
    }

    /// The control plane's state dir (logs of etcd/apiserver/kcm/scheduler, `node-sim/` pod dirs), if local.
    pub fn state_dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.state_dir.as_path())
    }

    /// The size of etcd's database file (`etcd/member/snap/db`), if local: what etcd compares with its space quota
    /// (2 GiB unless `--quota-backend-bytes` says otherwise; start.sh leaves it). It grows with the revisions written
    /// between the apiserver's compactions and does not shrink without a defragmentation.
    pub fn etcd_db_bytes(&self) -> Option<u64> {
        let db = self.state_dir()?.join("etcd/member/snap/db");
        std::fs::metadata(db).ok().map(|m| m.len())
    }

    /// A client bound to the calling Tokio runtime. Create one per test: a client's connection tasks die with
    /// the runtime that created them, and each `#[tokio::test]` has its own runtime.
    pub async fn client(&self) -> Result<Client> {
        client_from(&self.kubeconfig).await
    }

    /// Names of the simulated nodes (empty on an external cluster).
    pub fn nodes(&self) -> Vec<String> {
        self.local
            .as_ref()
            .map(|l| {
                l.harness
                    .nodes
                    .lock()
                    .map(|n| n.clone())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// A node config with this cluster's work dir and a pod IP range of its own (127.<per process>.<node>.x).
    pub fn node_config(&self, name: &str) -> Result<NodeConfig> {
        let local = self
            .local
            .as_ref()
            .context("no node simulator on an external cluster")?;
        let index = local.harness.nodes.lock().map(|n| n.len()).unwrap_or(0);
        let third = u8::try_from(index * 16 % 256).unwrap_or(0);
        Ok(
            NodeConfig::new(name, local.state_dir.join("node-sim").join(name))
                .with_ip_base(Ipv4Addr::new(127, local.ip_second_octet, third, 0))
                // Shared by the cluster's nodes, like a ReadWriteMany volume.
                .with_pvc_dir(local.state_dir.join("node-sim").join("pvcs")),
        )
    }

    /// Starts another simulated node; returns once it is registered and Ready.
    pub async fn add_node(&self, config: NodeConfig) -> Result<()> {
        let local = self
            .local
            .as_ref()
            .context("no node simulator on an external cluster")?;
        let kubeconfig = self.kubeconfig.clone();
        let sims = local.harness.sims.clone();
        let name = config.name.clone();
        local
            .harness
            .handle
            .spawn(async move {
                let client = client_from(&kubeconfig).await?;
                let sim = NodeSimulator::start(client, config).await?;
                sims.lock()
                    .map_err(|_| anyhow::anyhow!("simulator list poisoned"))?
                    .push(sim);
                anyhow::Ok(())
            })
            .await
            .context("node simulator start task")?
            .with_context(|| format!("starting simulated node {name}"))?;
        if let Ok(mut nodes) = local.harness.nodes.lock() {
            nodes.push(name);
        }
        Ok(())
    }

    /// Runs `fut` to completion on the harness runtime from sync code. A scoped thread makes this work even
    /// when the caller is itself inside a Tokio runtime (where `block_on` would panic).
    fn block_on<F: Future<Output = Result<()>> + Send>(&self, fut: F) -> Result<()> {
        let local = self
            .local
            .as_ref()
            .context("no harness runtime on an external cluster")?;
        std::thread::scope(|s| {
            s.spawn(|| local.harness.handle.block_on(fut))
                .join()
                .map_err(|_| anyhow::anyhow!("harness task panicked"))?
        })
    }

    /// Proves scheduler, controller-manager and simulator work together before any test relies on them, so a
    /// broken control plane fails here with its logs rather than as a timeout in some test.
    async fn probe(&self) -> Result<()> {
        let client = self.client().await?;
        // A probe sent before the `default` namespace has its ServiceAccount is refused ("serviceaccount "default"
        // not found"): the control plane is fine, only young.
        helpers::wait_for_default_service_account(&client, "default").await?;
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let name = format!("seedsweep-harness-probe-{}", std::process::id());
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {
                "containers": [{"name": "probe", "image": "busybox:1.36", "command": ["true"]}],
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "nodeSelector": {"kubernetes.io/hostname": DEFAULT_NODE},
            }
        }))
        .context("building probe pod")?;
        pods.create(&PostParams::default(), &pod)
            .await
            .context("creating probe pod")?;
        let done = helpers::wait_for_pod_phase(
            &pods,
            &name,
            &["Succeeded", "Failed"],
            Duration::from_secs(60),
        )
        .await;
        let _ = pods.delete(&name, &DeleteParams::default()).await;
        done.map(|_| ()).with_context(|| {
            let dir = self.state_dir().unwrap_or(Path::new("?"));
            format!(
                "probe pod did not complete; scheduler.log tail:\n{}\nkcm.log tail:\n{}",
                tail_file(&dir.join("scheduler.log"), 20),
                tail_file(&dir.join("kcm.log"), 20)
            )
        })
    }

    /// Stops the control plane's kube-apiserver (SIGTERM, as a rolling restart does; SIGKILL if it takes over 5 s),
    /// keeps it down for `down` in all, and
    /// starts it again with the command line start.sh gave it, leaving etcd, the controllers and every client
    /// untouched: the fault tests' apiserver restart. Returns once it is ready again, with how long it was gone.
    pub async fn restart_apiserver(&self, down: Duration) -> Result<ApiserverRestart> {
        let local = self
            .local
            .as_ref()
            .context("only a local control plane's apiserver can be restarted")?;
        let stopped_at = Instant::now();
        let (stop, killed) = restart_component(&local.state_dir, "apiserver", down, &[]).await?;
        let started_at = Instant::now();
        let client = self.client().await?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ready = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(anyhow::Error::from);
            if let Ok(req) = ready
                && client.request_text(req).await.is_ok()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the restarted apiserver is not ready after 90 s; apiserver.log tail:\n{}",
                    tail_file(&local.state_dir.join("apiserver.log"), 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(ApiserverRestart {
            stop,
            killed,
            unavailable: stopped_at.elapsed(),
            startup: started_at.elapsed(),
        })
    }

    /// Restarts the kube-controller-manager with `extra_args` after the command line start.sh gave it (a later
    /// flag wins), e.g. `--kube-api-qps=100`: its Job controller creates every trial's pod through a client
    /// limited to 20 requests a second by default, which the benchmarks measure against. Returns once the
    /// restarted one has started its Job controller.
    pub async fn restart_controller_manager(&self, extra_args: &[String]) -> Result<()> {
        let local = self
            .local
            .as_ref()
            .context("only a local control plane's controller manager can be restarted")?;
        let log = local.state_dir.join("kcm.log");
        let before = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
        restart_component(&local.state_dir, "kcm", Duration::ZERO, extra_args).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read(&log).unwrap_or_default();
            if String::from_utf8_lossy(text.get(before..).unwrap_or_default())
                .contains("Started \"job\"")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the restarted controller manager has not started its Job controller after 60 s; kcm.log tail:\n{}",
                    tail_file(&log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The controller manager's `/metrics` text. It serves them only to a restarted controller manager given
    /// `--authorization-always-allow-paths=/healthz,/metrics` ([`Self::restart_controller_manager`]): start.sh gives
    /// it no authorization kubeconfig, so every other path is refused. Its certificate is its own self-signed one.
    pub async fn controller_manager_metrics(&self) -> Result<String> {
        let port = (self.local.as_ref())
            .and_then(|l| l.kcm_port)
            .context("only a local control plane's controller manager is reachable")?;
        let mut config = kube::Config::new(format!("https://127.0.0.1:{port}").parse()?);
        config.accept_invalid_certs = true;
        let client = Client::try_from(config)?;
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .context("building a request")?;
        client.request_text(request).await.with_context(|| {
            format!("GET https://127.0.0.1:{port}/metrics (the controller manager)")
        })
    }

    /// SIGKILLs the container process group of `pod`'s containers on the simulated node, as when a container
    /// crashes: the simulator then reports it terminated (exit code 137), and the pod's restart policy and its
    /// Job decide what follows. Returns how many process groups were killed (0: none was running).
    pub fn kill_pod_processes(&self, namespace: &str, pod: &str) -> Result<usize> {
        let local = self
            .local
            .as_ref()
            .context("only a simulated node's processes can be killed")?;
        let prefix = format!("{namespace}_{pod}_");
        let mut killed = 0;
        for node in std::fs::read_dir(local.state_dir.join("node-sim"))?.flatten() {
            let Ok(pods) = std::fs::read_dir(node.path().join("pods")) else {
                continue;
            };
            for dir in pods.flatten() {
                if !dir.file_name().to_string_lossy().starts_with(&prefix) {
                    continue;
                }
                for f in std::fs::read_dir(dir.path())?.flatten() {
                    if f.path().extension().is_none_or(|e| e != "pgid") {
                        continue;
                    }
                    let Some(pgid) = std::fs::read_to_string(f.path())
                        .ok()
                        .and_then(|s| s.trim().parse::<i32>().ok())
                    else {
                        continue;
                    };
                    // SAFETY: kill(2) of a process group the simulator started for this pod and recorded.
                    if unsafe { libc::kill(-pgid, libc::SIGKILL) } == 0 {
                        killed += 1;
                    }
                }
            }
        }
        Ok(killed)
    }

    /// Pods, events and the simulator's logs for `namespace`: print it when a test fails.
    pub async fn diagnostics(&self, client: &Client, namespace: &str) -> String {
        let mut out = crate::helpers::dump_namespace(client, namespace).await;
        if let Some(local) = &self.local {
            out.push_str(&local.pod_logs(namespace));
        }
        out
    }
}

impl Local {
    fn start_control_plane(&mut self) -> Result<()> {
        let mut last_err = None;
        for attempt in 0..3 {
            let ports =
                free_ports(attempt + 3 * self.ordinal).context("finding free loopback ports")?;
            let output = Command::new(self.k8s_dir.join("start.sh"))
                .arg(&self.state_dir)
                .env("K8S_APISERVER_PORT", ports[0].to_string())
                .env("K8S_ETCD_PORT", ports[1].to_string())
                .env("K8S_KCM_PORT", ports[3].to_string())
                .env("K8S_SCHED_PORT", ports[4].to_string())
                // Own process group: Ctrl-C on the test must not kill the control plane before the watchdog
                // has cleaned up pod processes.
                .process_group(0)
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("running {}/start.sh", self.k8s_dir.display()))?;
            if output.status.success() {
                self.kcm_port = Some(ports[3]);
                return Ok(());
            }
            let err = anyhow::anyhow!(
                "start.sh failed ({}) on ports {ports:?}: {}\napiserver.log tail:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                tail_file(&self.state_dir.join("apiserver.log"), 15)
            );
            // A port may have been taken between our probe and the bind; stop what started and retry.
            let _ = Command::new(self.k8s_dir.join("stop.sh"))
                .arg(&self.state_dir)
                .output();
            last_err = Some(err);
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("start.sh failed")))
    }

    fn pod_logs(&self, namespace: &str) -> String {
        let mut out = String::new();
        let Ok(nodes) = std::fs::read_dir(self.state_dir.join("node-sim")) else {
            return out;
        };
        for node in nodes.flatten() {
            let Ok(pods) = std::fs::read_dir(node.path().join("pods")) else {
                continue;
            };
            for pod in pods.flatten() {
                if !pod
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{namespace}_"))
                {
                    continue;
                }
                let Ok(files) = std::fs::read_dir(pod.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if name.ends_with(".log") || name.ends_with(".termination-log") {
                        out.push_str(&format!(
                            "--- {}/{}/{name}\n{}\n",
                            node.file_name().to_string_lossy(),
                            pod.file_name().to_string_lossy(),
                            tail_file(&f.path(), 30)
                        ));
                    }
                }
            }
        }
        out
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.harness.stop();
        // Closing the pipe tells the watchdog to clean up; wait so a following cluster starts from a clean slate.
        drop(self.watchdog_pipe.take());
        let _ = self.watchdog.wait();
    }
}

impl Harness {
    fn start() -> Result<Self> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sims: Arc<Mutex<Vec<NodeSimulator>>> = Arc::default();
        let thread_sims = sims.clone();
        let thread = std::thread::Builder::new()
            .name("seedsweep-test-harness".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stop_rx.await;
                    let sims: Vec<NodeSimulator> = thread_sims
                        .lock()
                        .map(|mut s| s.drain(..).collect())
                        .unwrap_or_default();
                    for sim in sims {
                        sim.shutdown().await;
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(5));
            })
            .context("spawning the harness thread")?;
        let handle = handle_rx
            .recv()
            .context("harness thread died")?
            .context("building the harness runtime")?;
        Ok(Harness {
            handle,
            sims,
            stop: Some(stop_tx),
            thread: Some(thread),
            nodes: Mutex::default(),
        })
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", kubeconfig.display()))?;
    Client::try_from(config).context("building Kubernetes client")
}

/// The watchdog: a `sh` in its own process group that waits for EOF on stdin, then cleans up.
fn spawn_watchdog(
    state_dir: &Path,
    k8s_dir: &Path,
    keep: bool,
) -> Result<(Child, std::process::ChildStdin)> {
    // Stops the daemons itself before calling stop.sh: they are orphans, and if nobody reaps them promptly
    // their zombies answer stop.sh's `kill -0` polling for its full 5 s timeout each.
    const SCRIPT: &str = r#"
cat >/dev/null
for f in "$1"/node-sim/*/pods/*/*.pgid; do
  [ -f "$f" ] && kill -s KILL -- "-$(cat "$f")" 2>/dev/null
done
for p in scheduler kcm apiserver etcd; do
  f="$1/$p.pid"; [ -f "$f" ] || continue
  pid=$(cat "$f"); kill "$pid" 2>/dev/null
  for _ in $(seq 50); do
    st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || break
    [ "$st" = Z ] && break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null; rm -f "$f"
done
"$2/stop.sh" "$1" >/dev/null 2>&1
[ "$3" = 1 ] || rm -rf "$1"
"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("seedsweep-test-watchdog")
        .arg(state_dir)
        .arg(k8s_dir)
        .arg(if keep { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("spawning the cleanup watchdog")?;
    let mut pipe = child.stdin.take().context("watchdog has no stdin")?;
    // Proves the pipe works before we rely on it.
    pipe.write_all(b"\n").context("writing to the watchdog")?;
    Ok((child, pipe))
}

/// Where [`free_ports`] looks: below Linux's default ephemeral range (32768–60999), from which outgoing connections
/// take their local ports. A port probed free inside it can be taken by some client's connection before the
/// component binds it; the scheduler once failed so ("bind: address already in use" on 34574), after start.sh had
/// returned, and the cluster never scheduled a pod.
const PORT_RANGE: (u16, u16) = (20_000, 32_000);

/// Five free loopback ports: apiserver, etcd client, etcd peer (must be client + 1), controller-manager,
/// scheduler. Probed by binding; a race with another process is handled by start_control_plane's retry.
/// `salt` (the attempt, and the cluster's ordinal in this process) moves the first candidate.
fn free_ports(salt: u32) -> Result<[u16; 5]> {
    let seed = std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(salt.wrapping_mul(104_729));
    let (low, high) = PORT_RANGE;
    let started = Instant::now();
    let mut candidate = low + (seed % u32::from(high - low)) as u16 / 5 * 5;
    while started.elapsed() < Duration::from_secs(5) {
        let ports = [
            candidate,
            candidate + 1,
            candidate + 2,
            candidate + 3,
            candidate + 4,
        ];
        if ports
            .iter()
            .all(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            return Ok(ports);
        }
        candidate = if candidate + 5 + 4 >= high {
            low
        } else {
            candidate + 5
        };
    }
    bail!("no five consecutive free ports found in {low}..{high}")
}

/// Stops the control-plane component whose pid start.sh wrote to `<state_dir>/<name>.pid` (SIGTERM; SIGKILL past
/// 5 s), waits until `down` has passed since the stop began, and starts it again with its own command line and
/// `extra_args`, its output appended to `<name>.log`. Returns how long the stop took and whether it was killed.
async fn restart_component(
    state_dir: &Path,
    name: &str,
    down: Duration,
    extra_args: &[String],
) -> Result<(Duration, bool)> {
    let pid_file = state_dir.join(format!("{name}.pid"));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?
        .trim()
        .parse()
        .with_context(|| format!("{} holds no pid", pid_file.display()))?;
    let argv: Vec<std::ffi::OsString> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .with_context(|| format!("the {name} (pid {pid}) is not running"))?
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(a).to_os_string())
        .collect();
    let (program, args) = argv
        .split_first()
        .with_context(|| format!("the {name} has no command line"))?;
    let stopped_at = Instant::now();
    // SAFETY: kill(2) on the pid start.sh recorded for the process we just read the command line of.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    // It is not our child (start.sh started it), so poll until it is gone or a zombie for its parent to reap.
    // A graceful stop can take the apiserver half a minute (it drains its watches); past 5 s it is killed,
    // which is a crash, the other way a component goes away.
    let gone = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |st| {
            st.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                == Some("Z")
        })
    };
    let mut killed = false;
    while !gone(pid) {
        if !killed && stopped_at.elapsed() > Duration::from_secs(5) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = stopped_at.elapsed();
    tokio::time::sleep(down.saturating_sub(stopped_at.elapsed())).await;
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(state_dir.join(format!("{name}.log")))
        .with_context(|| format!("opening {name}.log"))?;
    let child = Command::new(program)
        .args(args)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Like the rest of the control plane: a Ctrl-C on the test must leave it to the watchdog.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} again", Path::new(program).display()))?;
    // The watchdog stops what <name>.pid names.
    std::fs::write(&pid_file, child.id().to_string())
        .with_context(|| format!("writing {}", pid_file.display()))?;
    drop(child);
    Ok((stop, killed))
}

fn tail_file(path: &Path, lines: usize) -> String {
    let bytes = crate::sim::process::read_tail(path, 16 * 1024);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
