//! The node simulator against a real control plane (or, with SEEDSWEEP_TEST_KUBECONFIG, a real cluster; the
//! simulator-specific checks are then skipped). One cluster per test binary, shared by all tests, each test in
//! its own namespace; tests run in parallel.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerStateTerminated, ContainerStatus, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ObjectFieldSelector, Pod, PodCondition, PodSpec, PodTemplateSpec,
    ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use seedsweep_tests::helpers::{
    apply_crd_yaml, background, create_namespace, delete_namespace, pod_names, wait_for,
    wait_for_deletion, wait_for_pod_phase,
};
use seedsweep_tests::sim::GPU_RESOURCE;
use seedsweep_tests::{TestCluster, shared};

const TIMEOUT: Duration = Duration::from_secs(30);

struct Ctx {
    cluster: &'static TestCluster,
    client: Client,
    ns: String,
}

impl Ctx {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
}

/// Runs a scenario in a fresh namespace; on failure prints the namespace's pods, events and pod logs.
async fn scenario<F, Fut>(prefix: &str, body: F) -> Result<()>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let Some(cluster) = shared().ready_or_skip() else {
        return Ok(());
    };
    let client = cluster.client().await?;
    let ns = create_namespace(&client, prefix).await?;
    let started = Instant::now();
    let result = body(Ctx {
        cluster,
        client: client.clone(),
        ns: ns.clone(),
    })
    .await;
    eprintln!("{prefix}: {:?}", started.elapsed());
    if result.is_err() {
        eprintln!("{}", cluster.diagnostics(&client, &ns).await);
    }
    delete_namespace(&client, &ns).await?;
    result
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env_value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// A `sh -c` container; busybox so the same spec runs on a real cluster.
fn shell(script: &str, env: Vec<EnvVar>) -> Container {
    Container {
        name: "main".into(),
        image: Some("busybox:1.36".into()),
        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        env: Some(env),
        ..Default::default()
    }
}

fn pod_spec(container: Container) -> PodSpec {
    PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

fn pod(name: &str, spec: PodSpec) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    }
}

fn terminated(pod: &Pod) -> Result<ContainerStateTerminated> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
        .context("no terminated container state")
}

fn sim_pid(pod: &Pod) -> Option<i32> {
    let id = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .container_id
        .as_ref()?;
    id.strip_prefix("sim://")?.parse().ok()
}

/// The simulator's log of a pod's `main` container (pod dirs are `<ns>_<name>_<uid8>`).
fn sim_log(cluster: &TestCluster, ns: &str, name: &str) -> Option<String> {
    let root = cluster.state_dir()?.join("node-sim");
    let prefix = format!("{ns}_{name}_");
    for node in std::fs::read_dir(root).ok()?.flatten() {
        for pod in std::fs::read_dir(node.path().join("pods")).ok()?.flatten() {
            if pod.file_name().to_string_lossy().starts_with(&prefix) {
                return std::fs::read_to_string(pod.path().join("main.log")).ok();
            }
        }
    }
    None
}

#[tokio::test]
async fn termination_message_carries_pod_ip_and_expanded_var() -> Result<()> {
    scenario("termlog", |cx| async move {
        let script = r#"echo "$POD_IP $(MY_VAR)" '$$(MY_VAR)' > /dev/termination-log; exit 0"#;
        let container = shell(
            script,
            vec![
                env_field("POD_IP", "status.podIP"),
                env_value("MY_VAR", "hello"),
            ],
        );
        let pods = cx.pods();
        pods.create(&PostParams::default(), &pod("echo", pod_spec(container)))
            .await?;
        let done = wait_for_pod_phase(&pods, "echo", &["Succeeded", "Failed"], TIMEOUT).await?;
        let status = done.status.clone().context("no status")?;
        ensure!(
            status.phase.as_deref() == Some("Succeeded"),
            "phase {:?}",
            status.phase
        );
        let ip = status.pod_ip.clone().context("no podIP")?;
        ensure!(
            status
                .pod_ips
                .as_ref()
                .and_then(|v| v.first())
                .map(|p| p.ip.as_str())
                == Some(ip.as_str())
        );
        ensure!(status.start_time.is_some(), "no startTime");
        let t = terminated(&done)?;
        ensure!(
            t.exit_code == 0 && t.reason.as_deref() == Some("Completed"),
            "{t:?}"
        );
        ensure!(
            t.message.as_deref() == Some(format!("{ip} hello $(MY_VAR)\n").as_str()),
            "message {:?}",
            t.message
        );
        if cx.cluster.has_simulator() {
            let addr: std::net::Ipv4Addr = ip.parse()?;
            ensure!(
                addr.is_loopback() && addr.octets()[1] != 0,
                "pod IP {ip} is not a private loopback address"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn failing_command_fails_the_pod_with_its_exit_code() -> Result<()> {
    scenario("fail", |cx| async move {
        let pods = cx.pods();
        pods.create(
            &PostParams::default(),
            &pod("fail", pod_spec(shell("echo oops >&2; exit 3", vec![]))),
        )
        .await?;
        let done = wait_for_pod_phase(&pods, "fail", &["Succeeded", "Failed"], TIMEOUT).await?;
        ensure!(done.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
        let t = terminated(&done)?;
        ensure!(
            t.exit_code == 3 && t.reason.as_deref() == Some("Error"),
            "{t:?}"
        );
        if cx.cluster.has_simulator() {
            let log = sim_log(cx.cluster, &cx.ns, "fail").unwrap_or_default();
            ensure!(log.contains("oops"), "stderr not captured: {log:?}");
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn deleting_a_running_pod_sigterms_it_and_removes_it() -> Result<()> {
    scenario("delete", |cx| async move {
        let pods = cx.pods();
        // Traps TERM: exiting well within the 30 s grace period proves SIGTERM arrived (SIGKILL would take 30 s).
        let script = "trap 'echo got TERM; exit 0' TERM; sleep 300 & wait";
        let mut spec = pod_spec(shell(script, vec![]));
        spec.termination_grace_period_seconds = Some(30);
        pods.create(&PostParams::default(), &pod("sleeper", spec))
            .await?;
        let running = wait_for_pod_phase(&pods, "sleeper", &["Running"], TIMEOUT).await?;
        let pid = sim_pid(&running);
        let started = Instant::now();
        pods.delete("sleeper", &DeleteParams::default()).await?;
        wait_for_deletion(&pods, "sleeper", Duration::from_secs(10)).await?;
        eprintln!("pod deleted {:?} after the delete call", started.elapsed());
        if cx.cluster.has_simulator() {
            let pid = pid.context("simulator reported no sim://<pid> container id")?;
            ensure!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "process {pid} survived deletion"
            );
            let log = sim_log(cx.cluster, &cx.ns, "sleeper").unwrap_or_default();
            ensure!(
                log.contains("got TERM"),
                "process did not see SIGTERM; log: {log:?}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn gpu_capacity_limits_concurrent_pods() -> Result<()> {
    scenario("gpu", |cx| async move {
        if !cx.cluster.has_simulator() {
            eprintln!("skipping: needs a simulated node with exactly 2 GPUs");
            return Ok(());
        }
        // A dedicated node, so GPU pods of other tests cannot take its GPUs.
        let node = format!("gpu-{}", cx.ns);
        cx.cluster
            .add_node(cx.cluster.node_config(&node)?.with_gpus(2))
            .await?;
        let gate = tempfile::tempdir()?;
        let pods = cx.pods();
        let script = format!(
            "while [ ! -e {}/$(POD_NAME) ]; do sleep 0.1; done",
            gate.path().display()
        );
        let names = ["gpu-a", "gpu-b", "gpu-c"];
        for name in names {
            let mut container = shell(&script, vec![env_field("POD_NAME", "metadata.name")]);
            container.resources = Some(ResourceRequirements {
                limits: Some(BTreeMap::from([(
                    GPU_RESOURCE.to_string(),
                    Quantity("1".into()),
                )])),
                ..Default::default()
            });
            let mut spec = pod_spec(container);
            spec.node_selector = Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                node.clone(),
            )]));
            pods.create(&PostParams::default(), &pod(name, spec))
                .await?;
        }
        let phase = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()
        };
        let phases = || async {
            let mut out = BTreeMap::new();
            for name in names {
                out.insert(name, pods.get(name).await.map(|p| phase(&p))?);
            }
            anyhow::Ok(out)
        };
        let deadline = Instant::now() + TIMEOUT;
        let (running, pending) = loop {
            let now = phases().await?;
            let running: Vec<&str> = now
                .iter()
                .filter(|(_, p)| *p == "Running")
                .map(|(n, _)| *n)
                .collect();
            let pending: Vec<&str> = now
                .iter()
                .filter(|(_, p)| *p == "Pending")
                .map(|(n, _)| *n)
                .collect();
            if running.len() == 2 && pending.len() == 1 {
                break (running, pending[0]);
            }
            ensure!(
                Instant::now() < deadline,
                "expected 2 Running + 1 Pending, got {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // The third pod is held back by the scheduler for lack of GPUs, not merely slow to start.
        let waiting = wait_for(&pods, pending, TIMEOUT, "PodScheduled=False", |p| {
            p.and_then(|p| p.status.as_ref()?.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "PodScheduled" && c.status == "False")
                })
        })
        .await?
        .context("pending pod vanished")?;
        ensure!(
            waiting
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none(),
            "third pod was bound"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        ensure!(
            phase(&pods.get(pending).await?) == "Pending",
            "third pod started while both GPUs were in use"
        );

        std::fs::write(gate.path().join(running[0]), "")?;
        wait_for_pod_phase(&pods, running[0], &["Succeeded"], TIMEOUT).await?;
        wait_for_pod_phase(&pods, pending, &["Running"], TIMEOUT).await?;
        for name in names {
            std::fs::write(gate.path().join(name), "")?;
        }
        for name in names {
            wait_for_pod_phase(&pods, name, &["Succeeded"], TIMEOUT).await?;
        }
        Ok(())
    })
    .await
}

fn job(name: &str, script: &str) -> Job {
    let mut spec = pod_spec(shell(script, vec![env_field("POD_NAME", "metadata.name")]));
    spec.termination_grace_period_seconds = Some(30);
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                spec: Some(spec),
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn job_runs_to_completion() -> Result<()> {
    scenario("job", |cx| async move {
        let jobs: Api<Job> = Api::namespaced(cx.client.clone(), &cx.ns);
        jobs.create(
            &PostParams::default(),
            &job("train", "echo trained $(POD_NAME) > /dev/termination-log"),
        )
        .await?;
        wait_for(&jobs, "train", TIMEOUT, "Job Complete", |j| {
            j.and_then(|j| j.status.as_ref()?.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Complete" && c.status == "True")
                })
        })
        .await?;
        let names = pod_names(&cx.client, &cx.ns, "job-name=train").await?;
        ensure!(names.len() == 1, "expected one pod, got {names:?}");
        let pod = cx.pods().get(&names[0]).await?;
        let t = terminated(&pod)?;
        ensure!(
            t.message.as_deref() == Some(format!("trained {}\n", names[0]).as_str()),
            "message {:?}",
            t.message
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn deleting_a_job_garbage_collects_its_running_pod() -> Result<()> {
    scenario("gc", |cx| async move {
        let jobs: Api<Job> = Api::namespaced(cx.client.clone(), &cx.ns);
        jobs.create(
            &PostParams::default(),
            &job("long", "trap 'exit 0' TERM; sleep 300 & wait"),
        )
        .await?;
        let deadline = Instant::now() + TIMEOUT;
        let pod_name = loop {
            let names = pod_names(&cx.client, &cx.ns, "job-name=long").await?;
            if let Some(name) = names.first() {
                break name.clone();
            }
            ensure!(Instant::now() < deadline, "job controller created no pod");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let pods = cx.pods();
        wait_for_pod_phase(&pods, &pod_name, &["Running"], TIMEOUT).await?;
        jobs.delete("long", &background()).await?;
        wait_for_deletion(&jobs, "long", TIMEOUT).await?;
        wait_for_deletion(&pods, &pod_name, TIMEOUT).await?;
        Ok(())
    })
    .await
}

/// The standalone binary registers a Ready node with the requested capacity and runs a pod on it.
#[tokio::test]
async fn standalone_binary_runs_a_pod() -> Result<()> {
    scenario("bin", |cx| async move {
        if !cx.cluster.has_simulator() {
            eprintln!("skipping: the binary needs a cluster without kubelets");
            return Ok(());
        }
        let node = format!("bin-{}", cx.ns);
        let work = tempfile::tempdir()?;
        // Pre-create the Node with the not-ready taint a registering kubelet carries: the simulator must adopt
        // the object and clear the taint (cordoned throughout, so no other test's pod lands here).
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(cx.client.clone());
        let tainted: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": node},
                "spec": {
                    "unschedulable": true,
                    "taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
                }
            }))?;
        nodes.create(&PostParams::default(), &tainted).await?;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_seedsweep-node-sim"))
            .arg("--kubeconfig")
            .arg(cx.cluster.kubeconfig())
            .args([
                "--node-name",
                &node,
                "--gpus",
                "1",
                "--cpu",
                "4",
                "--memory",
                "8Gi",
                "--pods",
                "10",
            ])
            // Cordoned, so pods of concurrent tests are not scheduled onto a node this test removes.
            .args(["--ip-base", "127.250.0.0", "--unschedulable"])
            .args([
                "--unpullable-image",
                "*:missing",
                "--crash-backoff-base",
                "200ms",
            ])
            .arg("--work-dir")
            .arg(work.path())
            .stderr(std::fs::File::create(work.path().join("node-sim.log"))?)
            .kill_on_drop(true)
            .spawn()?;
        wait_for(
            &nodes,
            &node,
            TIMEOUT,
            "node Ready with 1 GPU, untainted, cordoned",
            |n| {
                n.is_some_and(|n| {
                    let spec = n.spec.clone().unwrap_or_default();
                    let status = n.status.clone().unwrap_or_default();
                    status
                        .allocatable
                        .as_ref()
                        .and_then(|a| a.get(GPU_RESOURCE))
                        == Some(&Quantity("1".into()))
                        && status
                            .conditions
                            .iter()
                            .flatten()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                        && spec.taints.unwrap_or_default().is_empty()
                        && spec.unschedulable == Some(true)
                })
            },
        )
        .await?;
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
            Api::namespaced(cx.client.clone(), "kube-node-lease");
        // The node's lease is created and renewed on the simulator's own heartbeat, shortly after its status.
        wait_for(&leases, &node, TIMEOUT, "the node lease renewed", |l| {
            l.and_then(|l| l.spec.as_ref()?.renew_time.as_ref())
                .is_some()
        })
        .await?;
        let pods = cx.pods();
        let mut spec = pod_spec(shell(
            "echo $(POD_IP) > /dev/termination-log",
            vec![env_field("POD_IP", "status.podIP")],
        ));
        spec.node_name = Some(node.clone());
        pods.create(&PostParams::default(), &pod("on-bin", spec))
            .await?;
        let done = wait_for_pod_phase(&pods, "on-bin", &["Succeeded", "Failed"], TIMEOUT).await?;
        let t = terminated(&done)?;
        ensure!(
            t.message
                .as_deref()
                .is_some_and(|m| m.starts_with("127.250.0.")),
            "{t:?}"
        );
        let pod_dirs: Vec<PathBuf> = std::fs::read_dir(work.path().join("pods"))?
            .flatten()
            .map(|e| e.path())
            .collect();
        ensure!(pod_dirs.len() == 1, "pod dirs {pod_dirs:?}");
        // The failure flags reach the node: an unpullable image, and a crash loop announcing its 200 ms back-off.
        let mut pull = shell("exit 0", vec![]);
        pull.image = Some("busybox:missing".into());
        let mut spec = pod_spec(pull);
        spec.node_name = Some(node.clone());
        pods.create(&PostParams::default(), &pod("bin-pull", spec))
            .await?;
        let mut crash = pod_spec(shell("exit 1", vec![]));
        crash.restart_policy = Some("Always".into());
        crash.node_name = Some(node.clone());
        pods.create(&PostParams::default(), &pod("bin-crash", crash))
            .await?;
        wait_for(&pods, "bin-pull", TIMEOUT, "ErrImagePull", |p| {
            p.and_then(|p| waiting(p, "main")).is_some_and(|(r, m)| {
                r == "ErrImagePull" && m.ends_with("docker.io/library/busybox:missing: not found")
            })
        })
        .await?;
        // The back-off doubles from 200 ms at each restart; a loaded machine may first look after a few of them.
        wait_for(
            &pods,
            "bin-crash",
            TIMEOUT,
            "CrashLoopBackOff from 200ms",
            |p| {
                p.and_then(|p| waiting(p, "main")).is_some_and(|(r, m)| {
                    r == "CrashLoopBackOff" && back_off_seconds(&m).is_some_and(doubled_from_200ms)
                })
            },
        )
        .await?;
        // SIGTERM: the binary shuts down cleanly.
        let pid = child.id().context("no pid")? as i32;
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
        ensure!(status.success(), "node-sim exited with {status}");
        nodes.delete(&node, &DeleteParams::default()).await?;
        Ok(())
    })
    .await
}

/// The back-off a CrashLoopBackOff message announces (`back-off 200ms restarting ...`, `back-off 25.6s ...`).
fn back_off_seconds(message: &str) -> Option<f64> {
    let d = message
        .strip_prefix("back-off ")?
        .split_whitespace()
        .next()?;
    match d.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().ok().map(|v| v / 1000.0),
        None => d.strip_suffix('s')?.parse().ok(),
    }
}

/// 200 ms × 2^k for some k ≥ 0.
fn doubled_from_200ms(seconds: f64) -> bool {
    let k = (seconds / 0.2).log2();
    k > -1e-9 && (k - k.round()).abs() < 1e-6
}

#[tokio::test]
async fn on_failure_restarts_with_empty_dir_state() -> Result<()> {
    scenario("restart", |cx| async move {
        let pods = cx.pods();
        // The emptyDir outlives the container: the second run sees the first run's marker and succeeds.
        let script = "if [ -e /scratch/ran ]; then echo second > /dev/termination-log; exit 0; fi; \
                      touch /scratch/ran; exit 1";
        let mut container = shell(script, vec![]);
        container.volume_mounts = Some(vec![VolumeMount {
            name: "scratch".into(),
            mount_path: "/scratch".into(),
            ..Default::default()
        }]);
        let mut spec = pod_spec(container);
        spec.restart_policy = Some("OnFailure".into());
        spec.volumes = Some(vec![Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]);
        pods.create(&PostParams::default(), &pod("flaky", spec))
            .await?;
        let done = wait_for_pod_phase(&pods, "flaky", &["Succeeded", "Failed"], TIMEOUT).await?;
        ensure!(done.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"));
        let cs = done
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .context("no container status")?;
        ensure!(cs.restart_count == 1, "restartCount {}", cs.restart_count);
        let last = cs
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .context("no lastState")?;
        ensure!(last.exit_code == 1, "lastState {last:?}");
        ensure!(terminated(&done)?.message.as_deref() == Some("second\n"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn applies_a_crd_file_idempotently() -> Result<()> {
    scenario("crd", |cx| async move {
        // Unique per run, so concurrent runs against one external cluster do not fight over it. CEL rules are
        // unknown to 1.20: create/replace must drop them rather than fail.
        let group = format!("{}.seedsweep-test.dev", cx.ns);
        let yaml = format!(
            r#"---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {{status: {{}}}}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-validations: [{{rule: "true"}}]
          properties:
            spec: {{type: object, properties: {{size: {{type: integer}}}}}}
"#
        );
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), yaml)?;
        let names = apply_crd_yaml(&cx.client, file.path()).await?;
        ensure!(names == vec![format!("widgets.{group}")], "{names:?}");
        // Second apply replaces in place.
        apply_crd_yaml(&cx.client, file.path()).await?;
        let gvk = kube::api::GroupVersionKind::gvk(&group, "v1", "Widget");
        let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, "widgets");
        let widgets: Api<kube::api::DynamicObject> = Api::namespaced_with(cx.client.clone(), &cx.ns, &ar);
        let mut w = kube::api::DynamicObject::new("w1", &ar);
        w.data = serde_json::json!({"spec": {"size": 3}});
        widgets.create(&PostParams::default(), &w).await?;
        ensure!(widgets.get("w1").await?.data["spec"]["size"] == 3);
        let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            Api::all(cx.client.clone());
        crds.delete(&names[0], &DeleteParams::default()).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn config_map_and_secret_reach_env_and_files() -> Result<()> {
    scenario("refs", |cx| async move {
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(cx.client.clone(), &cx.ns);
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(cx.client.clone(), &cx.ns);
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "trial"}, "data": {"lr": "2e-5", "config.json": "{\"task\":\"rte\"}"}
            }))?,
        )
        .await?;
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "tok"}, "stringData": {"token": "s3cret"}
                }))?,
            )
            .await?;
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "refs"},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "containers": [{
                    "name": "main",
                    "image": "busybox:1.36",
                    "command": ["sh", "-c",
                        "echo \"$LR $TOKEN $(cat /etc/trial/config.json)\" > /dev/termination-log"],
                    "env": [
                        {"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "trial", "key": "lr"}}},
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}}
                    ],
                    "volumeMounts": [{"name": "cfg", "mountPath": "/etc/trial"}]
                }],
                "volumes": [{"name": "cfg", "configMap": {"name": "trial"}}]
            }
        }))?;
        let pods = cx.pods();
        pods.create(&PostParams::default(), &pod).await?;
        let done = wait_for_pod_phase(&pods, "refs", &["Succeeded", "Failed"], TIMEOUT).await?;
        let t = terminated(&done)?;
        ensure!(
            t.message.as_deref() == Some("2e-5 s3cret {\"task\":\"rte\"}\n"),
            "message {:?}",
            t.message
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn init_containers_run_in_order_before_the_main_container() -> Result<()> {
    scenario("init", |cx| async move {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "init"},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "initContainers": [
                    {"name": "first", "image": "busybox:1.36", "command": ["sh", "-c", "echo one > /work/order"],
                     "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                    {"name": "second", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 1; echo two >> /work/order"],
                     "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
                ],
                "containers": [
                    {"name": "main", "image": "busybox:1.36",
                     "command": ["sh", "-c", "tr '\\n' ' ' < /work/order > /dev/termination-log"],
                     "volumeMounts": [{"name": "work", "mountPath": "/work"}]}
                ],
                "volumes": [{"name": "work", "emptyDir": {}}]
            }
        }))?;
        let pods = cx.pods();
        pods.create(&PostParams::default(), &pod).await?;
        // While the second init container sleeps, the pod is Pending and not Initialized.
        let initializing = wait_for(&pods, "init", TIMEOUT, "Initialized=False", |p| {
            p.and_then(|p| p.status.as_ref()?.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Initialized" && c.status == "False"))
        })
        .await?
        .context("pod vanished")?;
        ensure!(initializing.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"));
        let done = wait_for_pod_phase(&pods, "init", &["Succeeded", "Failed"], TIMEOUT).await?;
        let t = terminated(&done)?;
        ensure!(t.message.as_deref() == Some("one two "), "message {:?}", t.message);
        let inits = done.status.as_ref().and_then(|s| s.init_container_statuses.clone()).unwrap_or_default();
        ensure!(inits.len() == 2, "init statuses {inits:?}");

        // A failing init container fails the pod (restartPolicy Never) and the main container never runs.
        let mut failing = pod.clone();
        failing.metadata.name = Some("init-fail".into());
        let spec = failing.spec.as_mut().context("spec")?;
        spec.init_containers.as_mut().context("init")?[0].command =
            Some(vec!["sh".into(), "-c".into(), "exit 7".into()]);
        pods.create(&PostParams::default(), &failing).await?;
        let failed = wait_for_pod_phase(&pods, "init-fail", &["Succeeded", "Failed"], TIMEOUT).await?;
        ensure!(failed.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
        let status = failed.status.clone().unwrap_or_default();
        let first = status.init_container_statuses.unwrap_or_default().into_iter().next().context("no init status")?;
        ensure!(first.state.and_then(|s| s.terminated).map(|t| t.exit_code) == Some(7));
        let main = status.container_statuses.unwrap_or_default().into_iter().next().context("no status")?;
        ensure!(main.state.and_then(|s| s.waiting).is_some(), "main container ran after a failed init");
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------------------------
// Pods that cannot start (or keep failing): the states a kubelet reports, which the operator reads.

/// Back-off base and cap of the fast node: the kubelet's 10 s / 300 s scaled down so a test sees several rounds.
const FAST_BACKOFF: Duration = Duration::from_millis(400);
const FAST_MAX_BACKOFF: Duration = Duration::from_millis(1600);
/// Images the fast node cannot pull ("not found").
const FAST_UNPULLABLE: &str = "unpullable.example/*";
/// Images whose entrypoint the fast node maps to the local `sh`.
const FAST_SHELL_IMAGE: &str = "entrypoint.example/shell:*";

static FAST_NODE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// A cordoned simulated node with [`FAST_BACKOFF`] timings and [`FAST_UNPULLABLE`] images, shared by the tests of
/// this binary (pods reach it through `spec.nodeName`); None on an external cluster.
async fn fast_node(cluster: &'static TestCluster) -> Result<Option<String>> {
    if !cluster.has_simulator() {
        return Ok(None);
    }
    let name = FAST_NODE
        .get_or_try_init(|| async {
            let mut config = cluster
                .node_config("sim-fast")?
                .with_backoff(FAST_BACKOFF, FAST_MAX_BACKOFF)
                .with_unpullable_image(FAST_UNPULLABLE)
                .with_image_entrypoint(FAST_SHELL_IMAGE, "sh");
            config.unschedulable = true;
            cluster.add_node(config).await?;
            anyhow::Ok("sim-fast".to_string())
        })
        .await?;
    Ok(Some(name.clone()))
}

fn container_status(pod: &Pod, name: &str) -> Option<ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
        .cloned()
}

/// `(reason, message)` of a waiting container.
fn waiting(pod: &Pod, container: &str) -> Option<(String, String)> {
    let w = container_status(pod, container)?.state?.waiting?;
    Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
}

fn pod_condition(pod: &Pod, type_: &str) -> Option<PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// Polls the pod every 20 ms and records what `extract` sees (consecutive repeats dropped) until `done` holds for
/// the sequence; returns the sequence and the last pod.
async fn observe<T: PartialEq + std::fmt::Debug>(
    pods: &Api<Pod>,
    name: &str,
    timeout: Duration,
    extract: impl Fn(&Pod) -> Option<T>,
    done: impl Fn(&[T]) -> bool,
) -> Result<(Vec<T>, Pod)> {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<T> = Vec::new();
    loop {
        let pod = pods.get(name).await?;
        if let Some(v) = extract(&pod)
            && seen.last() != Some(&v)
        {
            seen.push(v);
        }
        if done(&seen) {
            return Ok((seen, pod));
        }
        ensure!(
            Instant::now() < deadline,
            "timed out after {timeout:?} on pod {name}; seen {seen:#?}; last status {:#?}",
            pod.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The kubelet's shape of a container that never started: waiting, not ready, no restarts, no lastState, no id;
/// the pod Pending and not Ready because of it.
fn ensure_never_started(pod: &Pod, container: &str, unready: &str) -> Result<()> {
    ensure!(phase(pod) == "Pending", "phase {:?}", phase(pod));
    let cs = container_status(pod, container).context("no container status")?;
    ensure!(!cs.ready && cs.started == Some(false), "{cs:?}");
    ensure!(cs.restart_count == 0, "{cs:?}");
    ensure!(
        cs.last_state.is_none_or(|s| s.terminated.is_none()),
        "lastState of a container that never ran"
    );
    ensure!(
        cs.container_id.is_none(),
        "containerID {:?}",
        cs.container_id
    );
    for type_ in ["Ready", "ContainersReady"] {
        let c = pod_condition(pod, type_).with_context(|| format!("no {type_} condition"))?;
        ensure!(
            (c.status.as_str(), c.reason.as_deref(), c.message.as_deref())
                == (
                    "False",
                    Some("ContainersNotReady"),
                    Some(format!("containers with unready status: {unready}").as_str())
                ),
            "{type_}: {c:?}"
        );
    }
    let scheduled = pod_condition(pod, "PodScheduled").context("no PodScheduled")?;
    ensure!(scheduled.status == "True", "{scheduled:?}");
    Ok(())
}

/// On any cluster: an image from an unresolvable registry (`.invalid`) waits in ErrImagePull, then
/// ImagePullBackOff; the pod stays Pending and never starts.
#[tokio::test]
async fn unpullable_image_waits_in_err_image_pull_then_image_pull_back_off() -> Result<()> {
    scenario("pull", |cx| async move {
        let pods = cx.pods();
        let image = "registry.invalid/seedsweep/trainer:1";
        let mut container = shell("exit 0", vec![]);
        container.image = Some(image.into());
        pods.create(&PostParams::default(), &pod("pull", pod_spec(container)))
            .await?;
        let (seen, pod) = observe(
            &pods,
            "pull",
            Duration::from_secs(60),
            |p| waiting(p, "main").filter(|(r, _)| r != "ContainerCreating"),
            |seen| seen.iter().any(|(r, _)| r == "ImagePullBackOff"),
        )
        .await?;
        eprintln!("states: {seen:#?}");
        let (reason, message) = &seen[0];
        ensure!(reason == "ErrImagePull", "first state {reason}: {message}");
        if cx.cluster.has_simulator() {
            ensure!(
                message
                    == "rpc error: code = Unknown desc = failed to pull and unpack image \
                        \"registry.invalid/seedsweep/trainer:1\": failed to resolve reference \
                        \"registry.invalid/seedsweep/trainer:1\": failed to do request: Head \
                        \"https://registry.invalid/v2/seedsweep/trainer/manifests/1\": dial tcp: lookup \
                        registry.invalid: no such host",
                "{message}"
            );
        }
        ensure!(
            waiting(&pod, "main")
                == Some((
                    "ImagePullBackOff".into(),
                    format!("Back-off pulling image \"{image}\"")
                )),
            "{:?}",
            waiting(&pod, "main")
        );
        ensure_never_started(&pod, "main", "[main]")?;
        ensure!(
            pod_condition(&pod, "Initialized").is_some_and(|c| c.status == "True"),
            "Initialized"
        );
        Ok(())
    })
    .await
}

/// The kubelet's image back-off: ErrImagePull and ImagePullBackOff alternate while the delay doubles; an
/// unpullable image under `imagePullPolicy: Never` is ErrImageNeverPull; fixing the image starts the pod.
#[tokio::test]
async fn unpullable_images_back_off_and_recover_when_the_image_is_fixed() -> Result<()> {
    scenario("pullbo", |cx| async move {
        let Some(node) = fast_node(cx.cluster).await? else {
            eprintln!("skipping: needs a simulated node with unpullable images configured");
            return Ok(());
        };
        let pods = cx.pods();
        let image = "unpullable.example/seedsweep/trainer:2";
        let mut container = shell("echo fixed > /dev/termination-log", vec![]);
        container.image = Some(image.into());
        let mut spec = pod_spec(container.clone());
        spec.node_name = Some(node.clone());
        pods.create(&PostParams::default(), &pod("pullbo", spec))
            .await?;
        let started = Instant::now();
        let (seen, waiting_pod) = observe(
            &pods,
            "pullbo",
            TIMEOUT,
            |p| waiting(p, "main").map(|(r, _)| r),
            |seen| seen.iter().filter(|r| *r == "ErrImagePull").count() >= 3,
        )
        .await?;
        let took = started.elapsed();
        let expected: Vec<&str> = [
            "ErrImagePull",
            "ImagePullBackOff",
            "ErrImagePull",
            "ImagePullBackOff",
            "ErrImagePull",
        ]
        .to_vec();
        let from_first = seen
            .iter()
            .skip_while(|r| *r != "ErrImagePull")
            .map(String::as_str)
            .collect::<Vec<_>>();
        ensure!(from_first == expected, "sequence {seen:?}");
        // Pulls at 0, 400 ms and 1.2 s (400 + 800): the back-off doubled.
        ensure!(
            took >= FAST_BACKOFF * 3,
            "third pull after {took:?}, back-off did not double"
        );
        let (_, message) = waiting(&waiting_pod, "main").context("not waiting")?;
        ensure!(
            message
                == "rpc error: code = NotFound desc = failed to pull and unpack image \
                    \"unpullable.example/seedsweep/trainer:2\": failed to resolve reference \
                    \"unpullable.example/seedsweep/trainer:2\": unpullable.example/seedsweep/trainer:2: not found",
            "{message}"
        );
        ensure_never_started(&waiting_pod, "main", "[main]")?;

        // A fixed image is pulled at the next attempt and the container runs.
        pods.patch(
            "pullbo",
            &PatchParams::default(),
            &Patch::Strategic(serde_json::json!({
                "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}
            })),
        )
        .await?;
        let done = wait_for_pod_phase(&pods, "pullbo", &["Succeeded", "Failed"], TIMEOUT).await?;
        ensure!(phase(&done) == "Succeeded", "phase {}", phase(&done));
        ensure!(terminated(&done)?.message.as_deref() == Some("fixed\n"));

        // imagePullPolicy Never: the kubelet does not pull, it reports the image as absent.
        let mut never = container;
        never.image_pull_policy = Some("Never".into());
        let mut spec = pod_spec(never);
        spec.node_name = Some(node);
        pods.create(&PostParams::default(), &pod("neverpull", spec))
            .await?;
        let pod = wait_for(&pods, "neverpull", TIMEOUT, "ErrImageNeverPull", |p| {
            p.and_then(|p| waiting(p, "main"))
                .is_some_and(|(r, _)| r == "ErrImageNeverPull")
        })
        .await?
        .context("pod vanished")?;
        ensure!(
            waiting(&pod, "main").map(|(_, m)| m)
                == Some(format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                ))
        );
        ensure_never_started(&pod, "main", "[main]")?;
        Ok(())
    })
    .await
}

/// env from a missing Secret / ConfigMap (or key): CreateContainerConfigError with the kubelet's messages, per
/// container; retried, so creating them later starts the pod.
#[tokio::test]
async fn missing_secret_or_config_map_is_a_config_error_until_created() -> Result<()> {
    scenario("cfgerr", |cx| async move {
        let node = fast_node(cx.cluster).await?;
        // On a real cluster the kubelet retries about every 10 s.
        let timeout = if node.is_some() {
            TIMEOUT
        } else {
            Duration::from_secs(90)
        };
        let ns = cx.ns.clone();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "cfgerr"},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "nodeName": node,
                "containers": [
                    {"name": "a", "image": "busybox:1.36",
                     "command": ["sh", "-c", "echo $TOKEN > /dev/termination-log"],
                     "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}}]},
                    {"name": "b", "image": "busybox:1.36",
                     "command": ["sh", "-c", "echo $lr > /dev/termination-log"],
                     "envFrom": [{"configMapRef": {"name": "cfg"}}]}
                ]
            }
        }))?;
        let pods = cx.pods();
        pods.create(&PostParams::default(), &pod).await?;
        let config_error = |p: Option<&Pod>, c: &str, message: &str| {
            p.and_then(|p| waiting(p, c))
                == Some(("CreateContainerConfigError".into(), message.into()))
        };
        let pod = wait_for(&pods, "cfgerr", timeout, "config errors", |p| {
            config_error(p, "a", "secret \"tok\" not found")
                && config_error(p, "b", "configmap \"cfg\" not found")
        })
        .await?
        .context("pod vanished")?;
        ensure_never_started(&pod, "a", "[a b]")?;

        // The Secret appears without the key.
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(cx.client.clone(), &cx.ns);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({
                    "metadata": {"name": "tok"}, "stringData": {"other": "x"}
                }))?,
            )
            .await?;
        let missing_key = format!("couldn't find key token in Secret {ns}/tok");
        wait_for(&pods, "cfgerr", timeout, "missing key", |p| {
            config_error(p, "a", &missing_key)
        })
        .await?;

        // Both complete once the key and the ConfigMap exist.
        secrets
            .patch(
                "tok",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"stringData": {"token": "s3cret"}})),
            )
            .await?;
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(cx.client.clone(), &cx.ns);
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "cfg"}, "data": {"lr": "2e-5"}
            }))?,
        )
        .await?;
        let done = wait_for_pod_phase(&pods, "cfgerr", &["Succeeded", "Failed"], timeout).await?;
        ensure!(phase(&done) == "Succeeded", "phase {}", phase(&done));
        let message = |c: &str| {
            container_status(&done, c)
                .and_then(|s| s.state?.terminated?.message)
                .unwrap_or_default()
        };
        ensure!(
            (message("a").as_str(), message("b").as_str()) == ("s3cret\n", "2e-5\n"),
            "messages {:?} {:?}",
            message("a"),
            message("b")
        );
        Ok(())
    })
    .await
}

/// On any cluster: a container that keeps failing under restartPolicy Always is restarted at once, then waits
/// in CrashLoopBackOff ("back-off 10s ...") with its restart count and last termination.
#[tokio::test]
async fn crash_loop_back_off_shows_restart_count_and_last_state() -> Result<()> {
    scenario("crash", |cx| async move {
        let pods = cx.pods();
        let mut spec = pod_spec(shell("echo crashed > /dev/termination-log; exit 3", vec![]));
        spec.restart_policy = Some("Always".into());
        let created = pods
            .create(&PostParams::default(), &pod("crash", spec))
            .await?;
        let uid = created.metadata.uid.clone().context("no uid")?;
        let pod = wait_for(&pods, "crash", TIMEOUT, "CrashLoopBackOff", |p| {
            p.and_then(|p| waiting(p, "main"))
                .is_some_and(|(r, _)| r == "CrashLoopBackOff")
        })
        .await?
        .context("pod vanished")?;
        let ns = &cx.ns;
        ensure!(
            waiting(&pod, "main").map(|(_, m)| m)
                == Some(format!(
                    "back-off 10s restarting failed container=main pod=crash_{ns}({uid})"
                )),
            "{:?}",
            waiting(&pod, "main")
        );
        let cs = container_status(&pod, "main").context("no status")?;
        ensure!(cs.restart_count == 1, "restartCount {}", cs.restart_count);
        ensure!(!cs.ready && cs.started == Some(false), "{cs:?}");
        let last = cs
            .last_state
            .and_then(|s| s.terminated)
            .context("no lastState.terminated")?;
        ensure!(
            (
                last.exit_code,
                last.reason.as_deref(),
                last.message.as_deref()
            ) == (3, Some("Error"), Some("crashed\n")),
            "{last:?}"
        );
        ensure!(
            last.container_id.is_some() && last.container_id == cs.container_id,
            "containerID {:?} / {:?}",
            cs.container_id,
            last.container_id
        );
        ensure!(phase(&pod) == "Running", "phase {}", phase(&pod));
        let ready = pod_condition(&pod, "Ready").context("no Ready")?;
        ensure!(
            ready.status == "False"
                && ready.reason.as_deref() == Some("ContainersNotReady")
                && ready.message.as_deref() == Some("containers with unready status: [main]"),
            "{ready:?}"
        );
        Ok(())
    })
    .await
}

/// The crash-loop back-off doubles up to its cap, each wait announced in the message (fast node: 400 ms,
/// 800 ms, 1.6 s, 1.6 s); restartPolicy OnFailure behaves the same for failures.
#[tokio::test]
async fn crash_loop_back_off_doubles_up_to_the_cap() -> Result<()> {
    scenario("crashcap", |cx| async move {
        let Some(node) = fast_node(cx.cluster).await? else {
            eprintln!("skipping: needs a simulated node with short back-offs");
            return Ok(());
        };
        let pods = cx.pods();
        let mut spec = pod_spec(shell("exit 1", vec![]));
        spec.restart_policy = Some("OnFailure".into());
        spec.node_name = Some(node);
        let created = pods
            .create(&PostParams::default(), &pod("crashcap", spec))
            .await?;
        let uid = created.metadata.uid.clone().context("no uid")?;
        let (seen, pod) = observe(
            &pods,
            "crashcap",
            TIMEOUT,
            |p| {
                let (reason, message) = waiting(p, "main")?;
                let cs = container_status(p, "main")?;
                (reason == "CrashLoopBackOff").then_some((message, cs.restart_count))
            },
            |seen| seen.len() >= 4,
        )
        .await?;
        let ns = &cx.ns;
        let expected: Vec<(String, i32)> = [("400ms", 1), ("800ms", 2), ("1.6s", 3), ("1.6s", 4)]
            .into_iter()
            .map(|(b, n)| {
                (
                    format!(
                        "back-off {b} restarting failed container=main pod=crashcap_{ns}({uid})"
                    ),
                    n,
                )
            })
            .collect();
        ensure!(seen == expected, "seen {seen:#?}");
        let last = container_status(&pod, "main")
            .and_then(|c| c.last_state?.terminated)
            .context("no lastState")?;
        ensure!(last.exit_code == 1 && last.reason.as_deref() == Some("Error"));
        ensure!(phase(&pod) == "Running", "phase {}", phase(&pod));
        Ok(())
    })
    .await
}

/// A command that cannot be executed ends as containerd reports it: exit 128, reason StartError (restartPolicy
/// Never: the pod fails); under OnFailure it is retried and backs off like a crash.
#[tokio::test]
async fn missing_executable_is_a_start_error() -> Result<()> {
    scenario("starterr", |cx| async move {
        let pods = cx.pods();
        let cases = [
            (
                "abs",
                "/nonexistent/seedsweep-trainer",
                "exec: \"/nonexistent/seedsweep-trainer\": stat /nonexistent/seedsweep-trainer: no such file \
                 or directory",
            ),
            (
                "path",
                "seedsweep-no-such-command",
                "exec: \"seedsweep-no-such-command\": executable file not found in $PATH",
            ),
        ];
        for (name, program, _) in cases {
            let mut container = shell("", vec![]);
            container.command = Some(vec![program.into()]);
            pods.create(&PostParams::default(), &pod(name, pod_spec(container)))
                .await?;
        }
        for (name, _, runc) in cases {
            let done = wait_for_pod_phase(&pods, name, &["Succeeded", "Failed"], TIMEOUT).await?;
            ensure!(phase(&done) == "Failed", "{name}: phase {}", phase(&done));
            let t = terminated(&done)?;
            ensure!(
                t.exit_code == 128 && t.reason.as_deref() == Some("StartError"),
                "{name}: {t:?}"
            );
            if cx.cluster.has_simulator() {
                let want = format!(
                    "failed to create containerd task: failed to create shim task: OCI runtime create failed: \
                     runc create failed: unable to start container process: {runc}: unknown"
                );
                ensure!(t.message.as_deref() == Some(want.as_str()), "{name}: {t:?}");
                ensure!(
                    t.started_at.as_ref().map(|s| s.0.as_second()) == Some(0),
                    "startedAt {:?}",
                    t.started_at
                );
            }
        }

        let Some(node) = fast_node(cx.cluster).await? else {
            return Ok(());
        };
        let mut container = shell("", vec![]);
        container.command = Some(vec!["/nonexistent/seedsweep-trainer".into()]);
        let mut spec = pod_spec(container);
        spec.restart_policy = Some("OnFailure".into());
        spec.node_name = Some(node);
        pods.create(&PostParams::default(), &pod("retry", spec))
            .await?;
        let (seen, pod) = observe(
            &pods,
            "retry",
            TIMEOUT,
            |p| waiting(p, "main").map(|(r, _)| r),
            |seen| seen.iter().any(|r| r == "CrashLoopBackOff"),
        )
        .await?;
        ensure!(
            seen.first().map(String::as_str) == Some("RunContainerError"),
            "{seen:?}"
        );
        let cs = container_status(&pod, "main").context("no status")?;
        let last = cs
            .last_state
            .and_then(|s| s.terminated)
            .context("no lastState")?;
        ensure!(
            last.exit_code == 128 && last.reason.as_deref() == Some("StartError"),
            "{last:?}"
        );
        ensure!(cs.restart_count == 1, "restartCount {}", cs.restart_count);
        ensure!(phase(&pod) == "Running", "phase {}", phase(&pod));
        Ok(())
    })
    .await
}

/// No simulator involved: the real kube-scheduler explains why a pod stays Pending in its PodScheduled
/// condition (reason Unschedulable), for missing GPUs and for a missing PersistentVolumeClaim.
#[tokio::test]
async fn unschedulable_pods_carry_the_scheduler_message() -> Result<()> {
    scenario("unsched", |cx| async move {
        let pods = cx.pods();
        let mut gpu = shell("exit 0", vec![]);
        gpu.resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([(
                GPU_RESOURCE.to_string(),
                Quantity("1000".into()),
            )])),
            ..Default::default()
        });
        pods.create(&PostParams::default(), &pod("gpus", pod_spec(gpu)))
            .await?;
        let mut pvc = pod_spec(shell("exit 0", vec![]));
        pvc.volumes = Some(vec![Volume {
            name: "data".into(),
            persistent_volume_claim: Some(
                k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                    claim_name: "missing".into(),
                    read_only: None,
                },
            ),
            ..Default::default()
        }]);
        pods.create(&PostParams::default(), &pod("pvc", pvc))
            .await?;
        for (name, needle) in [
            ("gpus", "Insufficient nvidia.com/gpu"),
            ("pvc", "persistentvolumeclaim \"missing\" not found"),
        ] {
            let pod = wait_for(&pods, name, TIMEOUT, "PodScheduled=False", |p| {
                p.and_then(|p| pod_condition(p, "PodScheduled"))
                    .is_some_and(|c| c.status == "False")
            })
            .await?
            .context("pod vanished")?;
            let c = pod_condition(&pod, "PodScheduled").context("no condition")?;
            let message = c.message.clone().unwrap_or_default();
            eprintln!("{name}: {message}");
            ensure!(c.reason.as_deref() == Some("Unschedulable"), "{c:?}");
            ensure!(
                message.starts_with("0/")
                    && message.contains(" nodes are available: ")
                    && message.contains(needle)
                    && message.ends_with('.'),
                "{name}: {message:?}"
            );
            ensure!(phase(&pod) == "Pending", "{name}: phase {}", phase(&pod));
            let status = pod.status.clone().unwrap_or_default();
            ensure!(
                status.container_statuses.is_none()
                    && pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_ref())
                        .is_none(),
                "{name} was bound: {status:?}"
            );
        }
        Ok(())
    })
    .await
}

/// Creates a pod, retrying while the ServiceAccount admission plugin refuses it because the account's token Secret
/// does not exist yet (a ReplicaSet controller retries the same way).
async fn create_pod_when_token_exists(pods: &Api<Pod>, pod: &Pod) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match pods.create(&PostParams::default(), pod).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e))
                if e.message.contains("no API token found") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e).context("creating pod"),
        }
    }
}

/// `key=value` lines of a termination message.
fn lines_of(message: &str) -> BTreeMap<String, String> {
    message
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

#[tokio::test]
async fn service_account_token_files_and_kubeconfig_authenticate_as_the_account() -> Result<()> {
    scenario("sa", |cx| async move {
        let ns = cx.ns.clone();
        let apply = |value: serde_json::Value| {
            let client = cx.client.clone();
            let ns = ns.clone();
            async move {
                let obj: kube::api::DynamicObject = serde_json::from_value(value)?;
                let gvk = kube::api::GroupVersionKind::try_from(
                    obj.types.as_ref().context("no apiVersion/kind")?,
                )?;
                let (resource, _) = kube::discovery::pinned_kind(&client, &gvk).await?;
                let api: Api<kube::api::DynamicObject> =
                    Api::namespaced_with(client, &ns, &resource);
                api.create(&PostParams::default(), &obj).await?;
                anyhow::Ok(())
            }
        };
        apply(serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}}))
            .await?;
        apply(serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet"},
            "automountServiceAccountToken": false}))
        .await?;
        apply(serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}))
        .await?;
        apply(serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "runner-reads-pods"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}]}))
        .await?;

        // What the pod sees: the mounted files, the downward API, the kubernetes service and (under the
        // simulator) $KUBECONFIG, which kubectl uses when the host has one.
        let script = r#"d=/var/run/secrets/kubernetes.io/serviceaccount
{ echo "namespace=$(cat $d/namespace)"; echo "token=$(cat $d/token)"; echo "ca=$(grep -c 'BEGIN CERTIFICATE' $d/ca.crt)"
  echo "pod=$POD_NAMESPACE/$POD_NAME"; echo "api=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
  echo "kubeconfig=${KUBECONFIG:-}"
  if [ -n "${KUBECONFIG:-}" ] && command -v kubectl >/dev/null; then
    echo "list=$(kubectl get pods -o name 2>&1 | tr '\n' ' ')"
    echo "denied=$(kubectl get secrets 2>&1 | tr '\n' ' ')"
  fi; } > /dev/termination-log"#;
        let container = shell(
            script,
            vec![
                env_field("POD_NAME", "metadata.name"),
                env_field("POD_NAMESPACE", "metadata.namespace"),
            ],
        );
        let mut spec = pod_spec(container.clone());
        spec.automount_service_account_token = None;
        spec.service_account_name = Some("runner".into());
        check_account_pod(&cx, "sa-check", spec).await?;

        // The same through a projected volume, the form of the mount since Kubernetes 1.21 (a bound token from
        // the TokenRequest API, kube-root-ca.crt, the namespace), declared here since 1.20's admission mounts the
        // token Secret.
        let mut spec = pod_spec(container);
        spec.service_account_name = Some("runner".into());
        spec.containers[0].volume_mounts = Some(vec![VolumeMount {
            name: "kube-api-access".into(),
            mount_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
            read_only: Some(true),
            ..Default::default()
        }]);
        spec.volumes = Some(vec![serde_json::from_value(serde_json::json!({
            "name": "kube-api-access",
            "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
            ]}
        }))?]);
        check_account_pod(&cx, "sa-projected", spec).await?;

        // No token where the pod or its account opts out: no files, no KUBECONFIG (not even the simulator's own).
        let quiet = r#"echo "files=$(ls /var/run/secrets/kubernetes.io/serviceaccount 2>/dev/null | wc -l) kubeconfig=${KUBECONFIG:-}" > /dev/termination-log"#;
        let mut by_pod = pod_spec(shell(quiet, vec![]));
        by_pod.service_account_name = Some("runner".into());
        let mut by_account = pod_spec(shell(quiet, vec![]));
        by_account.automount_service_account_token = None;
        by_account.service_account_name = Some("quiet".into());
        let pods = cx.pods();
        for (name, spec) in [("opt-out-pod", by_pod), ("opt-out-account", by_account)] {
            create_pod_when_token_exists(&pods, &pod(name, spec)).await?;
            let done = wait_for_pod_phase(&pods, name, &["Succeeded", "Failed"], TIMEOUT).await?;
            let spec = done.spec.clone().unwrap_or_default();
            ensure!(
                spec.volumes.iter().flatten().all(|v| v.secret.is_none()),
                "{name}: a token volume was added: {:?}",
                spec.volumes
            );
            let message = terminated(&done)?.message.unwrap_or_default();
            ensure!(message.trim() == "files=0 kubeconfig=", "{name}: {message:?}");
        }
        Ok(())
    })
    .await
}

/// Runs `spec` (the service-account check script, as `runner`) as pod `name` and checks what it saw: the mounted
/// files, the downward API, a token of `runner` and, under the simulator, the apiserver address and a kubeconfig
/// that kubectl authenticates with as `runner`.
async fn check_account_pod(cx: &Ctx, name: &str, spec: PodSpec) -> Result<()> {
    let ns = cx.ns.clone();
    let pods = cx.pods();
    create_pod_when_token_exists(&pods, &pod(name, spec)).await?;
    let done = wait_for_pod_phase(&pods, name, &["Succeeded", "Failed"], TIMEOUT).await?;
    let t = terminated(&done)?;
    ensure!(t.exit_code == 0, "{t:?}");
    let seen = lines_of(t.message.as_deref().unwrap_or_default());
    let get = |k: &str| seen.get(k).map(String::as_str).unwrap_or_default();
    ensure!(get("namespace") == ns, "namespace file: {seen:?}");
    ensure!(
        !get("ca").is_empty() && get("ca") != "0",
        "ca.crt: {seen:?}"
    );
    ensure!(
        get("pod") == format!("{ns}/{name}"),
        "downward API: {seen:?}"
    );

    // The mounted token is the account's.
    let review: k8s_openapi::api::authentication::v1::TokenReview =
        serde_json::from_value(serde_json::json!({"spec": {"token": get("token")}}))?;
    let reviews: Api<k8s_openapi::api::authentication::v1::TokenReview> =
        Api::all(cx.client.clone());
    let reviewed = reviews.create(&PostParams::default(), &review).await?;
    let user = reviewed
        .status
        .and_then(|s| s.user)
        .and_then(|u| u.username)
        .unwrap_or_default();
    ensure!(
        user == format!("system:serviceaccount:{ns}:runner"),
        "the mounted token authenticates as {user:?}"
    );

    if cx.cluster.has_simulator() {
        // The apiserver's own address, and a kubeconfig built from the mounted files.
        let kc = kube::config::Kubeconfig::read_from(cx.cluster.kubeconfig())?;
        let server = kc.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.clone())
            .unwrap_or_default();
        ensure!(
            server.ends_with(get("api")) && get("api").starts_with("127."),
            "KUBERNETES_SERVICE_HOST:PORT {:?}, apiserver {server}",
            get("api")
        );
        let kubeconfig = get("kubeconfig");
        ensure!(
            kubeconfig.ends_with("/main.kubeconfig"),
            "KUBECONFIG {kubeconfig:?}"
        );
        let theirs = kube::config::Kubeconfig::read_from(kubeconfig)?;
        let user = theirs.auth_infos[0].auth_info.clone().unwrap_or_default();
        ensure!(
            user.token_file
                .as_deref()
                .is_some_and(|f| f.ends_with("/token"))
                && user.token.is_none(),
            "the kubeconfig's user: {:?}",
            user.token_file
        );
        if which("kubectl").is_some() {
            ensure!(
                get("list").contains(&format!("pod/{name}")),
                "kubectl get pods: {seen:?}"
            );
            ensure!(
                get("denied").contains(&format!(
                    "User \"system:serviceaccount:{ns}:runner\" cannot list"
                )),
                "kubectl get secrets: {seen:?}"
            );
        }
    }

    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

#[tokio::test]
async fn image_entrypoint_runs_a_container_without_command() -> Result<()> {
    scenario("entrypoint", |cx| async move {
        let Some(node) = fast_node(cx.cluster).await? else {
            eprintln!("skipping: image entrypoints are a simulator setting");
            return Ok(());
        };
        let mut container = shell("", vec![env_value("WHO", "entrypoint")]);
        container.command = None;
        container.image = Some(FAST_SHELL_IMAGE.replace('*', "1"));
        container.args = Some(vec![
            "-c".into(),
            "echo \"$WHO $(WHO)\" > /dev/termination-log".into(),
        ]);
        let mut spec = pod_spec(container.clone());
        spec.node_name = Some(node.clone());
        let pods = cx.pods();
        pods.create(&PostParams::default(), &pod("mapped", spec))
            .await?;
        let done = wait_for_pod_phase(&pods, "mapped", &["Succeeded", "Failed"], TIMEOUT).await?;
        let t = terminated(&done)?;
        ensure!(
            t.exit_code == 0 && t.message.as_deref() == Some("entrypoint entrypoint\n"),
            "{t:?}"
        );

        // An image without a mapping still cannot run without a command.
        container.image = Some("busybox:1.36".into());
        let mut spec = pod_spec(container);
        spec.node_name = Some(node);
        pods.create(&PostParams::default(), &pod("unmapped", spec))
            .await?;
        let (_, p) = observe(
            &pods,
            "unmapped",
            TIMEOUT,
            |p| waiting(p, "main"),
            |seen| seen.iter().any(|(r, _)| r == "CreateContainerConfigError"),
        )
        .await?;
        let (_, message) = waiting(&p, "main").unwrap_or_default();
        ensure!(message.contains("no command"), "{message:?}");
        Ok(())
    })
    .await
}
