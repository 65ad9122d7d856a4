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
    Container, ContainerStateTerminated, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, Pod, PodSpec, PodTemplateSpec, ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
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
        let lease = leases.get(&node).await.context("node lease")?;
        ensure!(
            lease.spec.and_then(|s| s.renew_time).is_some(),
            "lease never renewed"
        );
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
