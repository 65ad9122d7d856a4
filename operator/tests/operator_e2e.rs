//! The operator end to end: the `seedsweep operator` binary as a separate process against a real kube-apiserver
//! (v1.20 from ../shared/k8s, with the node simulator running trial pods as local trainer processes), or against
//! any cluster in SEEDSWEEP_TEST_KUBECONFIG whose nodes can run the trainer image (set SEEDSWEEP_TEST_TRAINER_IMAGE,
//! SEEDSWEEP_TEST_MODEL_DIR and SEEDSWEEP_TEST_DATA_DIR to paths inside it). Real MiniLM, real MRPC subset.
//!
//! Scenarios run one at a time (they share the simulated node's 2 GPUs and this machine's cores), each in a
//! namespace of its own with an operator of its own watching only that namespace.

mod common;

use anyhow::{Context as _, Result, bail, ensure};
use futures::future::LocalBoxFuture;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use seedsweep_crds::sweep::{SeedSweep, SeedSweepStatus, SweepPhase, TrialPhase};
use seedsweep_operator::controller::engine_store;
use seedsweep_operator::controller::observe::{UNSCHEDULABLE_GRACE_SECONDS, is_finished};
use seedsweep_operator::engine::snapshot::Snapshot;
use seedsweep_operator::engine::transfer;
use seedsweep_tests::helpers::{apply_crd_yaml, create_namespace, delete_namespace, wait_for};
use seedsweep_tests::{TestCluster, shared};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SWEEP_TIMEOUT: Duration = Duration::from_secs(300);

/// One scenario at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

/// Where trials find the trainer, model and data: this machine's paths under the simulator, the image's paths on a
/// real cluster.
struct Target {
    trainer_command: String,
    image: String,
    model_dir: String,
    data_dir: String,
}

fn target(cluster: &TestCluster) -> Target {
    if cluster.has_simulator() {
        Target {
            trainer_command: common::trainer().display().to_string(),
            image: "seedsweep/trainer:test".into(),
            model_dir: common::model_dir().display().to_string(),
            data_dir: common::workspace()
                .join("examples/local/data/MRPC")
                .display()
                .to_string(),
        }
    } else {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set"));
        Target {
            trainer_command: "seedsweep-trainer".into(),
            image: var("SEEDSWEEP_TEST_TRAINER_IMAGE"),
            model_dir: var("SEEDSWEEP_TEST_MODEL_DIR"),
            data_dir: var("SEEDSWEEP_TEST_DATA_DIR"),
        }
    }
}

struct SweepShape<'a> {
    wi: &'a [u64],
    data_order: &'a [u64],
    rung_at: f64,
    keep: u32,
    parallelism: u32,
    train_subset: u32,
    epochs: u32,
    /// Extra lines under `trialTemplate:` (indented 4 spaces).
    template: &'a str,
}

impl Default for SweepShape<'_> {
    fn default() -> Self {
        SweepShape {
            wi: &[1, 2],
            data_order: &[1, 2],
            rung_at: 0.25,
            keep: 1,
            parallelism: 2,
            train_subset: 64,
            epochs: 1,
            template: "",
        }
    }
}

fn sweep_yaml(name: &str, t: &Target, s: &SweepShape) -> String {
    format!(
        r#"apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata:
  name: {name}
spec:
  task: {{name: mrpc, dataDir: "{data}", trainSubset: {train}, devSubset: 48}}
  model: {{path: "{model}"}}
  seeds:
    weightInit: {{values: {wi:?}}}
    dataOrder: {{values: {do_:?}}}
  training: {{epochs: {epochs}, batchSize: 4, learningRate: 1.0e-4, maxSeqLength: 32, evalsPerEpoch: 4}}
  earlyDiscard:
    rungs: [{{atFraction: {at}, keepCount: {keep}}}]
  parallelism: {par}
  trialTemplate:
    image: {image}
{template}
"#,
        data = t.data_dir,
        model = t.model_dir,
        train = s.train_subset,
        wi = s.wi,
        do_ = s.data_order,
        epochs = s.epochs,
        at = s.rung_at,
        keep = s.keep,
        par = s.parallelism,
        image = t.image,
        template = s.template,
    )
}

/// A scenario's namespace, client and cluster; prints what the namespace holds (and the operator's log) on failure.
struct Scenario {
    cluster: &'static TestCluster,
    client: Client,
    ns: String,
    dir: tempfile::TempDir,
}

impl Scenario {
    fn sweeps(&self) -> Api<SeedSweep> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.ns)
    }
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create_sweep(&self, yaml: &str) -> Result<SeedSweep> {
        let sweep: SeedSweep = serde_yaml::from_str(yaml)?;
        Ok(self.sweeps().create(&PostParams::default(), &sweep).await?)
    }

    async fn status(&self, name: &str) -> Result<SeedSweepStatus> {
        Ok(self.sweeps().get(name).await?.status.unwrap_or_default())
    }

    async fn wait_until_finished(&self, name: &str) -> Result<SeedSweepStatus> {
        let done = wait_for(
            &self.sweeps(),
            name,
            SWEEP_TIMEOUT,
            "the sweep to finish",
            |s| {
                s.and_then(|s| s.status.as_ref()).is_some_and(|st| {
                    matches!(st.phase, SweepPhase::Succeeded | SweepPhase::Failed)
                })
            },
        )
        .await?;
        Ok(done.and_then(|s| s.status).unwrap_or_default())
    }

    async fn events(&self) -> Result<Vec<(String, String)>> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        Ok(api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.involved_object.kind.as_deref() == Some("SeedSweep"))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect())
    }

    /// A kubeconfig that acts as the ServiceAccount of the Helm chart (its ServiceAccount and RBAC rendered by helm
    /// for this namespace and installed), so the operator runs with exactly the permissions the chart grants.
    /// Returns the kubeconfig and the ServiceAccount's user name.
    async fn rbac_kubeconfig(&self) -> Result<(PathBuf, String)> {
        let release = format!("seedsweep-{}", self.ns);
        let text = helm_template(&release, &self.ns, &["serviceaccount.yaml", "rbac.yaml"])?;
        let mut service_account = None;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)?;
            let obj: kube::api::DynamicObject = serde_yaml::from_value(value)?;
            let kind = obj
                .types
                .as_ref()
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            let (group, version) = match kind.as_str() {
                "ServiceAccount" => ("", "v1"),
                _ => ("rbac.authorization.k8s.io", "v1"),
            };
            if kind == "ServiceAccount" {
                service_account = Some(obj.name_any());
            }
            let gvk = kube::api::GroupVersionKind::gvk(group, version, &kind);
            let (ar, caps) = kube::discovery::pinned_kind(&self.client, &gvk).await?;
            let api: Api<kube::api::DynamicObject> =
                if caps.scope == kube::discovery::Scope::Namespaced {
                    Api::namespaced_with(self.client.clone(), &self.ns, &ar)
                } else {
                    Api::all_with(self.client.clone(), &ar)
                };
            api.patch(
                &obj.name_any(),
                &PatchParams::apply("seedsweep-e2e").force(),
                &Patch::Apply(&obj),
            )
            .await
            .with_context(|| format!("applying the chart's {kind}"))?;
        }
        let service_account = service_account.context("the chart rendered no ServiceAccount")?;
        let mut config: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(self.cluster.kubeconfig())?)?;
        let sa = format!("system:serviceaccount:{}:{service_account}", self.ns);
        let groups = vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{}", self.ns),
            "system:authenticated".to_string(),
        ];
        for user in config["users"]
            .as_sequence_mut()
            .context("kubeconfig users")?
        {
            user["user"]["as"] = sa.clone().into();
            user["user"]["as-groups"] = serde_yaml::to_value(&groups)?;
        }
        let path = self.dir.path().join("operator.kubeconfig");
        std::fs::write(&path, serde_yaml::to_string(&config)?)?;
        Ok((path, sa))
    }
}

use serde::Deserialize as _;

/// `helm template` of the chart's `templates` for release `release` in `namespace`. helm comes from
/// SEEDSWEEP_HELM (scripts/test.sh sets it), else .tools/bin/helm, else PATH.
fn helm_template(release: &str, namespace: &str, templates: &[&str]) -> Result<String> {
    let installed = common::workspace().join(".tools/bin/helm");
    let helm = std::env::var_os("SEEDSWEEP_HELM")
        .map(PathBuf::from)
        .unwrap_or(if installed.exists() {
            installed
        } else {
            PathBuf::from("helm")
        });
    let mut cmd = std::process::Command::new(&helm);
    cmd.args(["template", release])
        .arg(common::workspace().join("charts/seedsweep"))
        .args(["--namespace", namespace]);
    for t in templates {
        cmd.args(["--show-only", &format!("templates/{t}")]);
    }
    let out = cmd.output().with_context(|| {
        format!(
            "running {} (scripts/install-helm.sh installs it)",
            helm.display()
        )
    })?;
    ensure!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

async fn scenario(
    prefix: &str,
    body: impl for<'a> FnOnce(&'a Scenario) -> LocalBoxFuture<'a, Result<()>>,
) -> Result<()> {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = shared().ready_or_skip() else {
        return Ok(());
    };
    let client = cluster.client().await?;
    apply_crd_yaml(&client, &common::workspace().join("crds/seedsweep.yaml")).await?;
    let ns = create_namespace(&client, prefix).await?;
    let s = Scenario {
        cluster,
        client: client.clone(),
        ns: ns.clone(),
        dir: tempfile::tempdir()?,
    };
    let started = Instant::now();
    let result = body(&s).await;
    eprintln!("{prefix}: {:?}", started.elapsed());
    if result.is_err() {
        eprintln!("{}", cluster.diagnostics(&client, &ns).await);
        for entry in std::fs::read_dir(s.dir.path())?.flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!(
                    "--- {} (last 60 lines) ---\n{}",
                    entry.path().display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
    delete_namespace(&client, &ns).await?;
    result
}

/// `seedsweep operator` as a child process, killed when dropped.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn start(s: &Scenario, id: &str, kubeconfig: &Path, trainer_command: &str) -> Result<Operator> {
        Self::start_with(s, id, kubeconfig, trainer_command, "3")
    }

    fn start_with(
        s: &Scenario,
        id: &str,
        kubeconfig: &Path,
        trainer_command: &str,
        lease_duration: &str,
    ) -> Result<Operator> {
        let log = s.dir.path().join(format!("operator-{id}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_seedsweep"))
            .arg("operator")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", &s.ns, "--lease-namespace", &s.ns])
            .args(["--identity", id, "--lease-duration", lease_duration])
            .args([
                "--metrics-addr",
                "127.0.0.1:0",
                "--trainer-command",
                trainer_command,
            ])
            .args(["--scrape-interval", "0.5", "--status-interval", "1"])
            .env("RUST_LOG", "info,seedsweep_operator=debug,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Operator { child, log })
    }

    /// The operator's /metrics.
    async fn metrics(&self) -> Result<String> {
        let (status, body) = self.get("/metrics").await?;
        ensure!(status == 200, "/metrics answered {status}");
        Ok(body)
    }

    /// GET on the operator's own HTTP endpoint, at the address it logged.
    async fn get(&self, path: &str) -> Result<(u16, String)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&self.log)?;
            if let Some(url) = log
                .lines()
                .find_map(|l| l.split("on http://").nth(1))
                .map(|rest| rest.split_whitespace().next().unwrap_or(rest).to_string())
            {
                let response = reqwest::get(format!("http://{url}{path}")).await?;
                let status = response.status().as_u16();
                return Ok((status, response.text().await?));
            }
            ensure!(
                Instant::now() < deadline,
                "the operator never logged its metrics address"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a watcher saw of a sweep's Jobs and pods while it ran.
#[derive(Debug, Default)]
struct Seen {
    max_active_jobs: usize,
    max_running_pods: usize,
    /// Job name → every uid it had (two would mean a Job deleted and created again under the same name).
    job_uids: BTreeMap<String, BTreeSet<String>>,
    /// Jobs seen with a deletion timestamp or seen and then gone.
    deleted: BTreeSet<String>,
}

/// Polls Jobs and pods until `stop` is set.
fn monitor(s: &Scenario, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Result<Seen>> {
    let (jobs, pods) = (s.jobs(), s.pods());
    tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut previous: BTreeSet<String> = BTreeSet::new();
        while !stop.load(Ordering::Relaxed) {
            let js = jobs.list(&ListParams::default()).await?.items;
            let now: BTreeSet<String> = js.iter().map(|j| j.name_any()).collect();
            seen.deleted.extend(previous.difference(&now).cloned());
            previous = now;
            let mut active = 0;
            for j in &js {
                seen.job_uids
                    .entry(j.name_any())
                    .or_default()
                    .insert(j.uid().unwrap_or_default());
                if j.metadata.deletion_timestamp.is_some() {
                    seen.deleted.insert(j.name_any());
                } else if !is_finished(j) {
                    active += 1;
                }
            }
            seen.max_active_jobs = seen.max_active_jobs.max(active);
            let running = pods
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            seen.max_running_pods = seen.max_running_pods.max(running);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(seen)
    })
}

/// The offline top-`keep` at rung 0 from the recorded rung scores (ties: earlier in launch order), and the rest.
fn offline_cut(status: &SeedSweepStatus, keep: usize) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut ranked: Vec<(f64, usize, &str)> = status
        .trials
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let r = t
                .rungs
                .iter()
                .find(|r| r.rung == 0)
                .unwrap_or_else(|| panic!("{} has no rung-0 record: {t:?}", t.name));
            (r.score, i, t.name.as_str())
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let kept = ranked.iter().take(keep).map(|r| r.2.to_string()).collect();
    let out = ranked.iter().skip(keep).map(|r| r.2.to_string()).collect();
    (kept, out)
}

/// The sweep succeeded, and the trials kept and discarded are the offline top-`keep` and the rest.
fn succeeded_with_the_offline_cut(
    status: &SeedSweepStatus,
    keep: usize,
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    ensure!(
        status.phase == SweepPhase::Succeeded,
        "phase {:?}",
        status.phase
    );
    let (kept, out) = offline_cut(status, keep);
    ensure!(
        names_in(status, TrialPhase::Succeeded) == kept,
        "kept {kept:?}: {status:#?}"
    );
    ensure!(
        names_in(status, TrialPhase::Discarded) == out,
        "discarded {out:?}: {status:#?}"
    );
    Ok((kept, out))
}

fn names_in(status: &SeedSweepStatus, phase: TrialPhase) -> BTreeSet<String> {
    status
        .trials
        .iter()
        .filter(|t| t.phase == phase)
        .map(|t| t.name.clone())
        .collect()
}

fn condition(status: &SeedSweepStatus, type_: &str) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Every Job name seen belongs to a planned trial; per trial, attempts are 1..=n and no name had two uids.
fn no_duplicate_jobs(seen: &Seen, status: &SeedSweepStatus) -> Result<()> {
    for (name, uids) in &seen.job_uids {
        ensure!(
            uids.len() == 1,
            "Job {name} was created more than once: {uids:?}"
        );
    }
    for t in &status.trials {
        let attempts: Vec<u32> = seen
            .job_uids
            .keys()
            .filter_map(|j| j.strip_prefix(&format!("{}-", t.name))?.parse().ok())
            .collect();
        let expected: Vec<u32> = (1..=t.attempts).collect();
        ensure!(
            attempts.iter().all(|a| expected.contains(a)),
            "{}: Jobs for attempts {attempts:?}, but the status says {} attempts",
            t.name,
            t.attempts
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

/// A 2 × 2 sweep keeping 1 at 25 %, three at a time on a node with 2 GPUs, the operator running with the RBAC of
/// the chart's RBAC: it completes, the trials that train to completion are exactly the offline top-1, the
/// discarded trials' Jobs are deleted, and neither parallelism nor GPU capacity is exceeded.
#[tokio::test]
async fn sweep_completes_with_the_offline_cut() -> Result<()> {
    scenario("op-sweep", |s| {
        Box::pin(async move {
            let t = target(s.cluster);
            let gpu = if s.cluster.has_simulator() {
                "    resources: {limits: {nvidia.com/gpu: \"1\"}}"
            } else {
                ""
            };
            let shape = SweepShape {
                parallelism: 3,
                template: gpu,
                ..SweepShape::default()
            };
            let (kubeconfig, _) = s.rbac_kubeconfig().await?;
            let op = Operator::start(s, "a", &kubeconfig, &t.trainer_command)?;
            let stop = Arc::new(AtomicBool::new(false));
            let watcher = monitor(s, Arc::clone(&stop));
            s.create_sweep(&sweep_yaml("grid", &t, &shape)).await?;
            let status = s.wait_until_finished("grid").await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.store(true, Ordering::Relaxed);
            let seen = watcher.await??;

            let (kept, out) = succeeded_with_the_offline_cut(&status, 1)?;
            for t in &status.trials {
                ensure!(
                    t.phase != TrialPhase::Succeeded || t.final_score.is_some(),
                    "{t:?}"
                );
            }
            let best = status.best_trial.as_ref().context("no best trial")?;
            ensure!(kept.contains(&best.name));
            ensure!(condition(&status, "Complete").is_some_and(|c| c.0 == "True"));
            ensure!(condition(&status, "Progressing").is_some_and(|c| c.0 == "False"));

            // The Jobs left are the kept trials' last attempts; every discarded trial's Job was deleted.
            let left: BTreeSet<String> = s
                .jobs()
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|j| j.metadata.deletion_timestamp.is_none())
                .map(|j| j.name_any())
                .collect();
            let expected: BTreeSet<String> = status
                .trials
                .iter()
                .filter(|t| kept.contains(&t.name))
                .map(|t| format!("{}-{}", t.name, t.attempts))
                .collect();
            ensure!(
                left == expected,
                "Jobs left {left:?}, expected {expected:?}"
            );
            // Each labelled recorded, so later reconciliations no longer list them (labelled just after the status
            // write that records the end, so the last one may follow the final status by a moment).
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let recorded: BTreeSet<String> = s
                    .jobs()
                    .list(&ListParams::default().labels("seedsweep.dev/recorded=true"))
                    .await?
                    .items
                    .iter()
                    .map(|j| j.name_any())
                    .collect();
                if recorded == expected {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "Jobs labelled recorded {recorded:?}, expected {expected:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for name in &out {
                ensure!(
                    seen.deleted
                        .iter()
                        .any(|j| j.starts_with(&format!("{name}-"))),
                    "the Job of discarded trial {name} was never deleted: {seen:?}"
                );
            }
            no_duplicate_jobs(&seen, &status)?;
            ensure!(
                seen.max_active_jobs <= 3,
                "parallelism 3 exceeded: {seen:?}"
            );
            if s.cluster.has_simulator() {
                ensure!(seen.max_running_pods <= 2, "2 GPUs, yet {seen:?}");
                ensure!(seen.max_running_pods == 2, "GPUs never both used: {seen:?}");
            }

            let events = s.events().await?;
            for reason in [
                "TrialStarted",
                "TrialDiscarded",
                "TrialCompleted",
                "SweepComplete",
            ] {
                ensure!(
                    events.iter().any(|(r, _)| r == reason),
                    "no {reason} event among {events:?}"
                );
            }
            // One TrialStarted per Job created.
            for job in seen.job_uids.keys() {
                let started = events
                    .iter()
                    .filter(|(r, m)| {
                        r == "TrialStarted"
                            && (m.ends_with(&format!("Job {job}"))
                                || m.contains(&format!("Job {job} ")))
                    })
                    .count();
                ensure!(
                    started == 1,
                    "{job}: {started} TrialStarted events among {events:?}"
                );
            }
            // One TrialDiscarded per discarded trial, stopped while running or settled while paused at the rung.
            for name in &out {
                let news: Vec<_> = events
                    .iter()
                    .filter(|(r, m)| r == "TrialDiscarded" && m.starts_with(&format!("{name}: ")))
                    .collect();
                ensure!(news.len() == 1, "{name}: {news:?} among {events:?}");
                ensure!(news[0].1.contains("cut-off"), "{news:?}");
            }

            ensure!(op.get("/healthz").await?.0 == 200);
            ensure!(op.get("/readyz").await?.0 == 200);
            ensure!(op.get("/nothing").await?.0 == 404);
            let metrics = op.metrics().await?;
            for line in [
                "seedsweep_operator_jobs_deleted_total{",
                "seedsweep_operator_reconciles_total{result=\"ok\"}",
                "seedsweep_operator_leader 1",
                "seedsweep_operator_best_score{",
            ] {
                ensure!(metrics.contains(line), "no {line} in\n{metrics}");
            }
            ensure!(
                metrics
                    .lines()
                    .any(|l| l.starts_with("seedsweep_operator_trials{")
                        && l.contains("phase=\"Succeeded\"")
                        && l.ends_with(" 1")),
                "{metrics}"
            );
            // A healthy sweep: trainers not yet listening at launch, or exiting at the end, are not failures.
            let failures: Vec<&str> = metrics
                .lines()
                .filter(|l| l.starts_with("seedsweep_operator_scrape_failures_total{"))
                .collect();
            ensure!(
                failures.len() == 1 && failures[0].ends_with(" 0"),
                "scrape failures in a healthy sweep: {failures:?}"
            );
            ensure!(
                metrics.contains(
                    &format!("seedsweep_operator_sweep_phase{{namespace=\"{}\",phase=\"Succeeded\",sweep=\"grid\"}} 1", s.ns)
                ),
                "{metrics}"
            );
            let conditions = status.conditions.iter().map(|c| (&c.type_, &c.status, &c.reason));
            for (type_, on, reason) in conditions {
                let expected = matches!(type_.as_str(), "Ready" | "Complete");
                ensure!((on == "True") == expected, "{type_} is {on} ({reason}) at the end");
            }
            Ok(())
        })
    })
    .await
}

/// Two replicas with leader election; the leader is killed once decisions are recorded and started again later.
/// The standby takes over from the status alone: the sweep completes with the same offline cut, no Job is created
/// twice, and no trial needed more attempts than the exact-mode pause allows.
#[tokio::test]
async fn killing_the_leader_changes_no_decision() -> Result<()> {
    scenario("op-restart", |s| {
        Box::pin(async move {
            let t = target(s.cluster);
            let shape = SweepShape {
                train_subset: 96,
                ..SweepShape::default()
            };
            let kubeconfig = s.cluster.kubeconfig().to_path_buf();
            let mut a = Operator::start(s, "a", &kubeconfig, &t.trainer_command)?;
            let leases: Api<Lease> = Api::namespaced(s.client.clone(), &s.ns);
            wait_for(
                &leases,
                "seedsweep-operator",
                Duration::from_secs(30),
                "a to lead",
                |l| {
                    l.and_then(|l| l.spec.as_ref()?.holder_identity.clone())
                        .as_deref()
                        == Some("a")
                },
            )
            .await?;
            let b = Operator::start(s, "b", &kubeconfig, &t.trainer_command)?;
            let stop = Arc::new(AtomicBool::new(false));
            let watcher = monitor(s, Arc::clone(&stop));
            s.create_sweep(&sweep_yaml("restart", &t, &shape)).await?;

            // Kill the leader as soon as a rung decision is on record.
            wait_for(
                &s.sweeps(),
                "restart",
                SWEEP_TIMEOUT,
                "a rung decision",
                |sw| {
                    sw.and_then(|sw| sw.status.as_ref())
                        .is_some_and(|st| st.trials.iter().any(|t| !t.rungs.is_empty()))
                },
            )
            .await?;
            let before = s.status("restart").await?;
            // The standby has done nothing so far.
            let standby = std::fs::read_to_string(&b.log)?;
            ensure!(standby.contains("standing by"), "{standby}");
            ensure!(
                !standby.contains("starting") && !standby.contains("resuming"),
                "{standby}"
            );
            a.kill();
            wait_for(
                &leases,
                "seedsweep-operator",
                Duration::from_secs(60),
                "b to take over",
                |l| {
                    l.and_then(|l| l.spec.as_ref()?.holder_identity.clone())
                        .as_deref()
                        == Some("b")
                },
            )
            .await?;
            let _a_again = Operator::start(s, "a", &kubeconfig, &t.trainer_command)?;
            let status = s.wait_until_finished("restart").await?;
            stop.store(true, Ordering::Relaxed);
            let seen = watcher.await??;

            succeeded_with_the_offline_cut(&status, 1)?;
            // What was on record before the kill stands.
            for (old, new) in before.trials.iter().zip(&status.trials) {
                for r in &old.rungs {
                    let now = new
                        .rungs
                        .iter()
                        .find(|n| n.rung == r.rung)
                        .context("rung lost")?;
                    ensure!(
                        now.score == r.score,
                        "{}: rung score changed {r:?} → {now:?}",
                        old.name
                    );
                    if r.decision != seedsweep_crds::sweep::RungDecision::ContinueProvisional {
                        ensure!(now.decision == r.decision, "{}: {r:?} → {now:?}", old.name);
                    }
                }
            }
            no_duplicate_jobs(&seen, &status)?;
            for t in &status.trials {
                ensure!(t.attempts <= 2, "{} launched {} times", t.name, t.attempts);
            }
            ensure!(
                seen.max_active_jobs <= 2,
                "parallelism 2 exceeded: {seen:?}"
            );
            Ok(())
        })
    })
    .await
}

/// Trainers whose metrics endpoint cannot be reached: MetricsUnavailable is raised, no trial is stopped for it,
/// every trial trains to completion, and the rung decisions come from the termination-message summaries.
/// A leader stopped cleanly (SIGTERM, as `kubectl rollout restart` or a node drain does) releases its Lease: the
/// standby leads at its next try, long before the lease would have expired.
#[tokio::test]
async fn a_stopped_leader_hands_the_lease_over_at_once() -> Result<()> {
    scenario("op-handover", |s| {
        Box::pin(async move {
            let t = target(s.cluster);
            let kubeconfig = s.cluster.kubeconfig().to_path_buf();
            // A lease far longer than the wait below: only a release can explain a quick takeover.
            let mut a = Operator::start_with(s, "a", &kubeconfig, &t.trainer_command, "120")?;
            let leases: Api<Lease> = Api::namespaced(s.client.clone(), &s.ns);
            let holder = |id: &'static str| {
                move |l: Option<&Lease>| {
                    l.and_then(|l| l.spec.as_ref()?.holder_identity.clone())
                        .as_deref()
                        == Some(id)
                }
            };
            wait_for(
                &leases,
                "seedsweep-operator",
                Duration::from_secs(30),
                "a to lead",
                holder("a"),
            )
            .await?;
            let b = Operator::start_with(s, "b", &kubeconfig, &t.trainer_command, "120")?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !std::fs::read_to_string(&b.log)?.contains("standing by") {
                ensure!(Instant::now() < deadline, "b never stood by");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let stopped = Instant::now();
            let pid = a.child.id().to_string();
            ensure!(
                Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()?
                    .success()
            );
            let exit = a.child.wait()?;
            ensure!(exit.success(), "a exited with {exit}");
            ensure!(std::fs::read_to_string(&a.log)?.contains("released the lease"));
            wait_for(
                &leases,
                "seedsweep-operator",
                Duration::from_secs(30),
                "b to lead",
                holder("b"),
            )
            .await?;
            eprintln!("handover took {:?} with a 120 s lease", stopped.elapsed());
            Ok(())
        })
    })
    .await
}

/// Trials whose pods cannot start: an image that cannot be pulled and more GPUs than any node has show as `Stuck`
/// with the kubelet's or scheduler's reason (condition, event); with a start timeout the attempts fail, and after
/// two failures fail-fast starts no more trials and fails the sweep, naming the reason. Only with the simulator,
/// which (like any cluster) cannot pull from a `.invalid` registry.
#[tokio::test]
async fn trials_that_cannot_start_are_stuck_and_fail_fast() -> Result<()> {
    scenario("op-stuck", |s| {
        Box::pin(async move {
            let t = target(s.cluster);
            let kubeconfig = s.cluster.kubeconfig().to_path_buf();
            let _op = Operator::start(s, "a", &kubeconfig, &t.trainer_command)?;
            let stuck_phase = |name: &'static str| {
                // A trial in phase Stuck whose reason names `why`.
                move |sw: Option<&SeedSweep>| {
                    sw.and_then(|sw| sw.status.as_ref()).is_some_and(|st| {
                        st.trials.iter().any(|t| {
                            t.phase == TrialPhase::Stuck
                                && t.reason.as_deref().is_some_and(|r| r.contains(name))
                        })
                    })
                }
            };

            // More GPUs than any node has: unschedulable, with the scheduler's message, once it has been so for
            // the grace a replacement pod gets to wait for a GPU being given back (30 s).
            let greedy = sweep_yaml(
                "greedy",
                &t,
                &SweepShape {
                    parallelism: 1,
                    template: "    resources: {limits: {nvidia.com/gpu: 64}}",
                    ..SweepShape::default()
                },
            );
            s.create_sweep(&greedy).await?;
            let st = wait_for(
                &s.sweeps(),
                "greedy",
                Duration::from_secs(90),
                "Unschedulable",
                stuck_phase("Unschedulable"),
            )
            .await?
            .and_then(|sw| sw.status)
            .unwrap_or_default();
            let stuck = st
                .trials
                .iter()
                .find(|t| t.phase == TrialPhase::Stuck)
                .unwrap();
            ensure!(
                stuck
                    .reason
                    .as_deref()
                    .unwrap_or("")
                    .contains("nvidia.com/gpu"),
                "{stuck:?}"
            );
            ensure!(
                st.counts.stuck == 1 && st.counts.running == 0,
                "{:?}",
                st.counts
            );
            // Not before the grace: the scheduler's condition (to the second) is at least 29 s old.
            let pods = s.pods().list(&ListParams::default()).await?;
            let since = (pods.items.iter())
                .filter_map(|p| p.status.as_ref()?.conditions.as_ref())
                .flatten()
                .find(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable"))
                .and_then(|c| c.last_transition_time.clone())
                .context("no pod the scheduler found unschedulable")?;
            let waited = k8s_openapi::jiff::Timestamp::now().duration_since(since.0);
            ensure!(
                waited.as_secs() >= UNSCHEDULABLE_GRACE_SECONDS - 1,
                "stuck after {waited:?} unschedulable"
            );
            let (on, _, message) = condition(&st, "TrialsStuck").context("no TrialsStuck")?;
            ensure!(on == "True" && message.contains(&stuck.name), "{message}");
            ensure!(st.phase == SweepPhase::Running, "{:?}", st.phase);
            s.sweeps()
                .delete("greedy", &DeleteParams::background())
                .await?;

            // An image that cannot be pulled, with a start timeout and fail-fast after two failures.
            let pull = sweep_yaml(
                "pull",
                &t,
                &SweepShape {
                    parallelism: 1,
                    ..SweepShape::default()
                },
            )
            .replace(
                &format!("    image: {}", t.image),
                "    image: registry.invalid/seedsweep/trainer:0",
            )
            .replace(
                "  parallelism: 1\n",
                "  parallelism: 1\n  failFast: {afterFailures: 2}\n  trialStartTimeoutSeconds: 4\n",
            );
            s.create_sweep(&pull).await?;
            wait_for(
                &s.sweeps(),
                "pull",
                Duration::from_secs(60),
                "ImagePull",
                stuck_phase("ImagePull"),
            )
            .await?;
            let st = s.wait_until_finished("pull").await?;
            ensure!(st.phase == SweepPhase::Failed, "{:?}", st.phase);
            let reasons: Vec<&str> = st
                .trials
                .iter()
                .map(|t| t.reason.as_deref().unwrap_or(""))
                .collect();
            ensure!(
                st.trials.iter().all(|t| t.phase == TrialPhase::Failed),
                "{:?}",
                st.trials
            );
            let timed_out = reasons
                .iter()
                .filter(|r| {
                    r.starts_with("could not start within 4 s: ErrImagePull")
                        || r.starts_with("could not start within 4 s: ImagePullBackOff")
                })
                .count();
            let not_started = reasons
                .iter()
                .filter(|r| r.starts_with("not started: the first 2 trials failed"))
                .count();
            ensure!((timed_out, not_started) == (2, 2), "{reasons:#?}");
            let (on, _, message) = condition(&st, "Failed").context("no Failed condition")?;
            ensure!(
                on == "True" && message.starts_with("fail-fast: the first 2 trials failed"),
                "{message}"
            );
            ensure!(condition(&st, "Ready").is_some_and(|c| c.0 == "False"));
            ensure!(condition(&st, "Complete").is_some_and(|c| c.0 == "False"));
            ensure!(condition(&st, "TrialsStuck").is_some_and(|c| c.0 == "False"));
            // Events are published after the status that reports them is written: wait for them.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let events = s.events().await?;
                let count = |reason: &str| {
                    events
                        .iter()
                        .filter(|(r, m)| r == reason && m.starts_with("pull-"))
                        .count()
                };
                let failed = events
                    .iter()
                    .any(|(r, m)| r == "SweepFailed" && m.contains("4 trials"));
                if count("TrialStuck") >= 2 && count("TrialFailed") >= 2 && failed {
                    ensure!(
                        count("TrialStarted") == 2,
                        "fail-fast started no third trial: {events:?}"
                    );
                    break;
                }
                ensure!(Instant::now() < deadline, "{events:?}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Ok(())
        })
    })
    .await
}

/// A trainer that cannot even be executed: the trial's reason carries the container runtime's own message, and
/// fail-fast stops the sweep after the first failures.
#[tokio::test]
async fn a_trainer_that_cannot_start_says_why() -> Result<()> {
    scenario("op-nostart", |s| {
        Box::pin(async move {
            if !s.cluster.has_simulator() {
                eprintln!("skipping: needs the node simulator's runtime messages");
                return Ok(());
            }
            let t = target(s.cluster);
            let kubeconfig = s.cluster.kubeconfig().to_path_buf();
            let _op = Operator::start(s, "a", &kubeconfig, "/nonexistent/seedsweep-trainer")?;
            let yaml = sweep_yaml("nostart", &t, &SweepShape::default()).replace(
                "  parallelism: 2\n",
                "  parallelism: 2\n  failFast: {afterFailures: 2}\n",
            );
            s.create_sweep(&yaml).await?;
            let st = s.wait_until_finished("nostart").await?;
            ensure!(st.phase == SweepPhase::Failed, "{:?}", st.phase);
            let failed: Vec<&str> = st
                .trials
                .iter()
                .filter_map(|t| t.reason.as_deref())
                .filter(|r| !r.starts_with("not started"))
                .collect();
            // Two at a time: a third may have started before the second failure stopped the launches.
            ensure!((2..=3).contains(&failed.len()), "{:?}", st.trials);
            ensure!(
                st.trials.iter().any(|t| t.attempts == 0),
                "fail-fast left none unstarted: {:?}",
                st.trials
            );
            for reason in failed {
                ensure!(
                    reason.contains("exit code 128 (StartError:")
                        && reason.contains("/nonexistent/seedsweep-trainer")
                        && reason.contains("no such file or directory"),
                    "{reason}"
                );
            }
            let (_, _, message) = condition(&st, "Failed").context("no Failed condition")?;
            ensure!(
                message.contains("fail-fast") && message.contains("StartError"),
                "{message}"
            );
            Ok(())
        })
    })
    .await
}

#[tokio::test]
async fn unreachable_metrics_never_discard() -> Result<()> {
    scenario("op-blind", |s| {
        Box::pin(async move {
            if !s.cluster.has_simulator() {
                eprintln!("skipping: needs a trainer wrapper on the node (simulator only)");
                return Ok(());
            }
            let t = target(s.cluster);
            // The trainer binds its metrics where the operator cannot reach them.
            let wrapper = s.dir.path().join("blind-trainer");
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/bash\nargs=()\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --metrics-addr ]; then \
                     args+=(--metrics-addr 127.0.0.1:0); shift 2\n  else args+=(\"$1\"); shift; fi\ndone\n\
                     exec {} \"${{args[@]}}\"\n",
                    t.trainer_command
                ),
            )?;
            std::fs::set_permissions(
                &wrapper,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )?;
            let shape = SweepShape {
                wi: &[1],
                ..SweepShape::default()
            };
            let kubeconfig = s.cluster.kubeconfig().to_path_buf();
            let op = Operator::start(s, "a", &kubeconfig, &wrapper.display().to_string())?;
            s.create_sweep(&sweep_yaml("blind", &t, &shape)).await?;
            wait_for(&s.sweeps(), "blind", SWEEP_TIMEOUT, "MetricsUnavailable", |sw| {
                sw.and_then(|sw| sw.status.as_ref())
                    .and_then(|st| condition(st, "MetricsUnavailable"))
                    .is_some_and(|c| c.0 == "True")
            })
            .await?;
            let during = s.status("blind").await?;
            let (_, reason, message) = condition(&during, "MetricsUnavailable").unwrap();
            ensure!(reason == "ScrapeFailed" && message.contains("blind-w1-d"), "{message}");
            let status = s.wait_until_finished("blind").await?;

            // Both trials trained to completion: their Jobs completed, none was deleted.
            let jobs = s.jobs().list(&ListParams::default()).await?.items;
            ensure!(jobs.len() == 2, "{:?}", jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>());
            for j in &jobs {
                ensure!(
                    j.status.as_ref().and_then(|s| s.succeeded) == Some(1),
                    "{} did not complete: {:?}",
                    j.name_any(),
                    j.status
                );
            }
            for t in &status.trials {
                ensure!(t.steps_done == t.total_steps.unwrap_or(0) && t.steps_done > 0, "{t:?}");
                ensure!(!t.rungs.is_empty(), "no rung record from the summary: {t:?}");
            }
            // Decided after the fact, from the summaries: one kept.
            let (kept, _) = offline_cut(&status, 1);
            ensure!(names_in(&status, TrialPhase::Succeeded) == kept, "{status:#?}");
            ensure!(condition(&status, "MetricsUnavailable").is_some_and(|c| c.0 == "False"));
            let metrics = op.metrics().await?;
            ensure!(!metrics.contains("seedsweep_operator_jobs_deleted_total{"), "{metrics}");
            ensure!(metrics.contains("seedsweep_operator_scrape_failures_total{"), "{metrics}");
            Ok(())
        })
    })
    .await
}

/// An invalid sweep gets the Invalid condition and no Jobs; fixed, it starts. Changing the training afterwards is
/// refused in a condition while parallelism changes apply. Deleting the sweep removes its Jobs and pods.
#[tokio::test]
async fn invalid_changed_and_deleted_sweeps() -> Result<()> {
    scenario("op-spec", |s| {
        Box::pin(async move {
            let t = target(s.cluster);
            let kubeconfig = s.cluster.kubeconfig().to_path_buf();
            let op = Operator::start(s, "a", &kubeconfig, &t.trainer_command)?;
            let shape = SweepShape {
                keep: 10,
                parallelism: 1,
                train_subset: 320,
                epochs: 3,
                ..SweepShape::default()
            };
            s.create_sweep(&sweep_yaml("spec", &t, &shape)).await?;
            let invalid = wait_for(&s.sweeps(), "spec", Duration::from_secs(60), "Invalid", |sw| {
                sw.and_then(|sw| sw.status.as_ref())
                    .is_some_and(|st| st.phase == SweepPhase::Invalid)
            })
            .await?
            .and_then(|s| s.status)
            .unwrap_or_default();
            let (on, _, message) = condition(&invalid, "Invalid").context("no Invalid condition")?;
            ensure!(on == "True", "{invalid:?}");
            ensure!(message.contains("spec.earlyDiscard.rungs[0].keepCount"), "{message}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            ensure!(s.jobs().list(&ListParams::default()).await?.items.is_empty(), "an invalid sweep made Jobs");
            ensure!(s.events().await?.iter().any(|(r, _)| r == "InvalidSpec"));

            // Fixed: it starts.
            let merge = |v: serde_json::Value| Patch::Merge(v);
            s.sweeps()
                .patch(
                    "spec",
                    &PatchParams::default(),
                    &merge(serde_json::json!({"spec": {"earlyDiscard": {"rungs": [{"atFraction": 0.25, "keepCount": 1}]}}})),
                )
                .await?;
            wait_for(&s.sweeps(), "spec", Duration::from_secs(60), "Running", |sw| {
                sw.and_then(|sw| sw.status.as_ref())
                    .is_some_and(|st| st.phase == SweepPhase::Running)
            })
            .await?;

            // A change to the training is refused; the plan's values stay in the Jobs.
            s.sweeps()
                .patch("spec", &PatchParams::default(), &merge(serde_json::json!({"spec": {"training": {"epochs": 1}}})))
                .await?;
            let refused = wait_for(&s.sweeps(), "spec", Duration::from_secs(60), "SpecChangeRefused", |sw| {
                sw.and_then(|sw| sw.status.as_ref())
                    .and_then(|st| condition(st, "SpecChangeRefused"))
                    .is_some_and(|c| c.0 == "True")
            })
            .await?
            .and_then(|s| s.status)
            .unwrap_or_default();
            let (_, _, message) = condition(&refused, "SpecChangeRefused").unwrap();
            ensure!(message.contains("spec.training"), "{message}");
            // Parallelism may change: a second trial starts.
            s.sweeps()
                .patch("spec", &PatchParams::default(), &merge(serde_json::json!({"spec": {"parallelism": 2}})))
                .await?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let jobs = s.jobs().list(&ListParams::default()).await?.items;
                if jobs.len() >= 2 {
                    for j in &jobs {
                        let args = j.spec.as_ref().and_then(|s| s.template.spec.as_ref())
                            .map(|p| p.containers[0].args.clone().unwrap_or_default()).unwrap_or_default();
                        let epochs = args.iter().position(|a| a == "--epochs").map(|i| args[i + 1].clone());
                        ensure!(epochs.as_deref() == Some("3"), "{}: {args:?}", j.name_any());
                    }
                    break;
                }
                if Instant::now() > deadline {
                    bail!("parallelism 2 never started a second Job: {:?}", jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }

            // Deleting the sweep removes its Jobs and their pods (garbage collection through owner references).
            wait_for_pods(s, |n| n >= 1).await?;
            s.sweeps().delete("spec", &DeleteParams::background()).await?;
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let jobs = s.jobs().list(&ListParams::default()).await?.items.len();
                let pods = s.pods().list(&ListParams::default()).await?.items.len();
                if jobs == 0 && pods == 0 {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{jobs} Jobs and {pods} pods left after deleting the sweep");
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // Its series go with it; the operator's own counters stay.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let metrics = op.metrics().await?;
                if !metrics.contains(r#"sweep="spec""#) {
                    ensure!(metrics.contains(r#"seedsweep_operator_reconciles_total{result="ok"}"#), "{metrics}");
                    break;
                }
                ensure!(Instant::now() < deadline, "a deleted sweep still has series:\n{metrics}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            // Deleting quietly: no warning per Job or pod that is already gone.
            let log = std::fs::read_to_string(&op.log)?;
            let not_found = log.lines().filter(|l| l.contains("WARN") && l.contains("not found")).count();
            ensure!(not_found == 0, "{not_found} 'not found' warnings:\n{log}");
            Ok(())
        })
    })
    .await
}

async fn wait_for_pods(s: &Scenario, cond: impl Fn(usize) -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = s.pods().list(&ListParams::default()).await?.items.len();
        if cond(n) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "pods: {n}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The RBAC the README asks for allows every request the operator makes (the sweep test runs the operator with it;
/// this names the missing permission directly if one is missing).
#[tokio::test]
async fn rbac_allows_what_the_operator_does() -> Result<()> {
    scenario("op-rbac", |s| {
        Box::pin(async move {
            let (_, user) = s.rbac_kubeconfig().await?;
            let reviews: Api<SubjectAccessReview> = Api::all(s.client.clone());
            let checks: &[(&str, &str, &str, &str)] = &[
                ("seedsweep.dev", "seedsweeps", "", "list"),
                ("seedsweep.dev", "seedsweeps", "", "watch"),
                ("seedsweep.dev", "seedsweeps", "", "patch"),
                ("seedsweep.dev", "seedsweeps", "status", "patch"),
                ("batch", "jobs", "", "create"),
                ("batch", "jobs", "", "delete"),
                ("batch", "jobs", "", "patch"),
                ("batch", "jobs", "", "watch"),
                ("", "pods", "", "list"),
                ("", "pods", "", "watch"),
                ("events.k8s.io", "events", "", "create"),
                ("", "configmaps", "", "get"),
                ("", "configmaps", "", "create"),
                ("", "configmaps", "", "patch"),
                ("coordination.k8s.io", "leases", "", "update"),
            ];
            for &(group, resource, subresource, verb) in checks {
                let review = SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: Some(user.clone()),
                        groups: Some(vec!["system:serviceaccounts".into()]),
                        resource_attributes: Some(ResourceAttributes {
                            group: Some(group.into()),
                            resource: Some(resource.into()),
                            subresource: (!subresource.is_empty()).then(|| subresource.into()),
                            verb: Some(verb.into()),
                            namespace: Some(s.ns.clone()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let answer = reviews.create(&PostParams::default(), &review).await?;
                let allowed = answer.status.is_some_and(|st| st.allowed);
                ensure!(
                    allowed,
                    "{verb} {group}/{resource}/{subresource} is not allowed"
                );
            }
            // And nothing broader: the operator cannot read secrets.
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user),
                    resource_attributes: Some(ResourceAttributes {
                        resource: Some("secrets".into()),
                        verb: Some("get".into()),
                        namespace: Some(s.ns.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = reviews.create(&PostParams::default(), &review).await?;
            ensure!(
                !answer.status.is_some_and(|st| st.allowed),
                "secrets are readable"
            );
            Ok(())
        })
    })
    .await
}

/// `weightInit.fromSweeps` in a cluster: a sweep naming an earlier SeedSweep waits (Pending, Ready reason
/// WaitingForSeedSources, no Jobs) while that sweep does not exist and while it runs, then trains the earlier
/// sweep's best weight-init seed: the engine's choice from its status, and the one found here by hand from the
/// scores the status lists.
#[tokio::test]
async fn weight_init_seeds_come_from_an_earlier_sweep() -> Result<()> {
    scenario("op-from", |s| {
        Box::pin(async move {
            let t = target(s.cluster);
            let (kubeconfig, _) = s.rbac_kubeconfig().await?;
            let _op = Operator::start(s, "a", &kubeconfig, &t.trainer_command)?;
            let later = sweep_yaml(
                "later",
                &t,
                &SweepShape {
                    data_order: &[1],
                    parallelism: 1,
                    train_subset: 32,
                    ..SweepShape::default()
                },
            )
            .replace(
                "weightInit: {values: [1, 2]}",
                "weightInit: {fromSweeps: {sweeps: [earlier], top: 1}}",
            );
            s.create_sweep(&later).await?;
            let waiting = |why: &'static str| {
                let sweeps = s.sweeps();
                async move {
                    let status = wait_for(&sweeps, "later", Duration::from_secs(60), why, |sw| {
                        sw.and_then(|sw| sw.status.as_ref())
                            .and_then(|st| condition(st, "Ready"))
                            .is_some_and(|(_, reason, message)| {
                                reason == "WaitingForSeedSources" && message.contains(why)
                            })
                    })
                    .await?
                    .and_then(|s| s.status)
                    .unwrap_or_default();
                    ensure!(status.phase == SweepPhase::Pending, "{status:?}");
                    Ok::<_, anyhow::Error>(status)
                }
            };
            waiting("earlier does not exist").await?;

            // Small: it only has to finish with scores.
            let earlier = SweepShape {
                train_subset: 32,
                ..SweepShape::default()
            };
            s.create_sweep(&sweep_yaml("earlier", &t, &earlier)).await?;
            waiting("sweep earlier has not finished").await?;
            ensure!(
                s.jobs()
                    .list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .all(|j| !j.name_any().starts_with("later-")),
                "a waiting sweep made Jobs"
            );
            let earlier = s.wait_until_finished("earlier").await?;

            // By hand, from the status's trial list: each weight-init seed's mean final (else latest) score.
            let mut by_seed: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for trial in &earlier.trials {
                let score = trial
                    .final_score
                    .or(trial.latest_score)
                    .context("a trial without a score")?;
                by_seed.entry(trial.weight_init).or_default().push(score);
            }
            let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
            let best = by_seed
                .iter()
                .fold(None::<(u64, f64)>, |best, (&seed, scores)| match best {
                    Some((_, b)) if b >= mean(scores) => best,
                    _ => Some((seed, mean(scores))),
                })
                .context("no scored seed")?
                .0;
            // The engine's ranking of the same record.
            let snapshot = recorded(s, "earlier", &earlier).await?;
            let state = snapshot.restore()?;
            let ranking = transfer::rank_weight_init(&[transfer::SourceSweep {
                name: "earlier",
                spec: &snapshot.spec,
                state: &state,
            }])?;
            ensure!(
                ranking.seeds[0].seed == best,
                "engine {:?}, by hand {best} from {by_seed:?}",
                ranking.seeds
            );

            let done = s.wait_until_finished("later").await?;
            let names: Vec<String> = done.trials.iter().map(|t| t.name.clone()).collect();
            ensure!(names == vec![format!("later-w{best}-d1")], "{names:?}");
            ensure!(done.phase == SweepPhase::Succeeded, "{done:?}");
            let planned: Snapshot =
                serde_json::from_value(done.engine.clone().context("no engine state")?)?;
            let list = planned.spec.seeds.weight_init.context("no weightInit")?;
            ensure!(
                list.values == Some(vec![best]) && list.from_sweeps.is_some(),
                "{list:?}"
            );
            let events = s.events().await?;
            for reason in ["WaitingForSeedSources", "SeedsChosen"] {
                ensure!(
                    events.iter().any(|(r, _)| r == reason),
                    "no {reason} event: {events:?}"
                );
            }
            let chosen = events.iter().find(|(r, _)| r == "SeedsChosen").unwrap();
            ensure!(
                chosen.1.contains(&format!(
                    "weight-init seeds {best} chosen from sweeps earlier"
                )),
                "{chosen:?}"
            );
            Ok(())
        })
    })
    .await
}

/// A ReadWriteMany claim `name` bound to a PersistentVolume of its own (the simulated nodes keep a claim's files in
/// one shared directory). Returns the PersistentVolume's name, to delete afterwards.
async fn bound_claim(s: &Scenario, name: &str) -> Result<String> {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let pv_name = format!("{}-{name}", s.ns);
    let class = format!("e2e-{}", s.ns);
    let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
            "storageClassName": class, "hostPath": {"path": "/unused"},
            "claimRef": {"namespace": s.ns, "name": name},
        },
    }))?;
    let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteMany"], "storageClassName": class,
            "resources": {"requests": {"storage": "1Gi"}}, "volumeName": pv_name,
        },
    }))?;
    Api::<PersistentVolume>::all(s.client.clone())
        .create(&PostParams::default(), &pv)
        .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(s.client.clone(), &s.ns);
    claims.create(&PostParams::default(), &pvc).await?;
    wait_for(
        &claims,
        name,
        Duration::from_secs(60),
        "the claim to be bound",
        |c| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await?;
    Ok(pv_name)
}

/// The engine's memory of sweep `name` as the operator recorded it: `status.engine` joined with its ConfigMaps.
/// The engine's memory of a sweep whose status is final, from `status.engine` and the sweep's ConfigMaps. The
/// operator writes the status (the head) before the chunks, so a read right after the status turns final can find
/// a chunk one write behind, replaying into a state with a trial not yet ended: read again until every trial has
/// ended, for at most 10 s (the chunks follow the status within the same reconciliation).
async fn recorded(s: &Scenario, name: &str, status: &SeedSweepStatus) -> Result<Snapshot> {
    let head = status.engine.as_ref().context("no engine state")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (snapshot, _) = engine_store::load(&s.client, &s.ns, name, head).await?;
        let state = snapshot.restore().map_err(anyhow::Error::msg)?;
        if transfer::unfinished_trials(&snapshot.spec, &state) == 0 || Instant::now() > deadline {
            return Ok(snapshot);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Exact mode with checkpoints on a ReadWriteMany claim: 4 trials of 40 steps, a rung at 25 % keeping 1. Every
/// trial pauses at the rung after its checkpoint; the kept one continues from there, its pod is deleted mid-way
/// (SIGTERM: it checkpoints) and the Job's next pod continues from that checkpoint. The sweep spends exactly
/// (t·f + p·(1−f))·s = (4·0.25 + 0.75)·40 = 70 steps, keeps the offline cut with the final scores of a local run
/// of the same manifest, and its checkpoints are removed once it is complete.
#[tokio::test]
async fn checkpoints_resume_kept_and_killed_trials_at_the_papers_cost() -> Result<()> {
    scenario("op-ckpt", |s| {
        Box::pin(async move {
            ensure!(
                s.cluster.has_simulator(),
                "needs the node simulator's claim directory"
            );
            let pv = bound_claim(s, "ckpt").await?;
            let t = target(s.cluster);
            let shape = SweepShape {
                train_subset: 80,
                epochs: 2,
                // One thread per trainer: two trainers on two cores must not fight over OpenMP's spinning threads.
                template: "    env: [{name: OMP_NUM_THREADS, value: \"1\"}]\n    volumes:\n      - {name: ckpt, persistentVolumeClaim: {claimName: ckpt}}\n    volumeMounts:\n      - {name: ckpt, mountPath: /ckpt}",
                ..SweepShape::default()
            };
            let yaml = sweep_yaml("ck", &t, &shape).replace(
                "  earlyDiscard:\n",
                "  checkpoints: {volume: ckpt}\n  backoffLimit: 2\n  earlyDiscard:\n",
            );
            let op = Operator::start(s, "a", s.cluster.kubeconfig(), &t.trainer_command)?;
            s.create_sweep(&yaml).await?;

            // The kept trial's second attempt, well past its rung: delete its pod as a node drain would.
            let deadline = Instant::now() + SWEEP_TIMEOUT;
            let killed = loop {
                ensure!(Instant::now() < deadline, "no kept trial resumed in time");
                let status = s.status("ck").await?;
                if let Some(tr) = status
                    .trials
                    .iter()
                    .find(|tr| tr.attempts == 2 && tr.phase == TrialPhase::Running && tr.steps_done >= 13)
                {
                    break tr.name.clone();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let selector = format!("seedsweep.dev/trial={killed},seedsweep.dev/attempt=2");
            let pods = s.pods().list(&ListParams::default().labels(&selector)).await?;
            ensure!(pods.items.len() == 1, "{killed}: pods {:?}", pods.items.len());
            s.pods()
                .delete(&pods.items[0].name_any(), &DeleteParams::default())
                .await?;

            let status = s.wait_until_finished("ck").await?;
            let (kept, _) = succeeded_with_the_offline_cut(&status, 1)?;
            ensure!(kept.contains(&killed), "{killed} was kept: {kept:?}");
            let engine = recorded(s, "ck", &status).await?;
            let state = engine.restore().map_err(|e| anyhow::anyhow!("{e}"))?;
            let compute = &status.statistics.as_ref().context("statistics")?.compute;
            ensure!(
                compute.steps_spent == 70,
                "spent {compute:?}: {:#?}",
                state.trials
            );
            let note = status.checkpoints.clone().unwrap_or_default();
            ensure!(note.starts_with("on, in volume ckpt at /ckpt/"), "{note}");
            let i = state
                .plan
                .trials
                .iter()
                .position(|p| p.name == killed)
                .context("killed trial")?;
            let resumed = state.trials[i].resumed_from_step;
            ensure!(
                resumed > 10 && resumed < 40,
                "{killed} resumed from step {resumed}, not from the checkpoint its pod wrote on SIGTERM"
            );

            // The same manifest run locally, uninterrupted: the same decisions and final scores.
            let manifest = s.dir.path().join("ck.yaml");
            std::fs::write(&manifest, &yaml)?;
            let out = Command::new(env!("CARGO_BIN_EXE_seedsweep"))
                .args(["run", "--parallel", "2", "--scrape-interval", "0.2", "--trainer"])
                .arg(common::trainer())
                .arg("--state-dir")
                .arg(s.dir.path().join("local"))
                .arg(&manifest)
                .output()?;
            ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let local = Command::new(env!("CARGO_BIN_EXE_seedsweep"))
                .args(["status", "--output", "json", "--state-dir"])
                .arg(s.dir.path().join("local"))
                .output()?;
            let local: SeedSweepStatus = serde_json::from_slice(&local.stdout)?;
            let finals = |st: &SeedSweepStatus| -> BTreeMap<String, (TrialPhase, Option<f64>)> {
                st.trials
                    .iter()
                    .map(|t| (t.name.clone(), (t.phase, t.final_score)))
                    .collect()
            };
            ensure!(
                finals(&status) == finals(&local),
                "cluster {:?} vs local {:?}",
                finals(&status),
                finals(&local)
            );

            // Complete: the sweep's checkpoint directory goes.
            let dir = s
                .cluster
                .state_dir()
                .context("state dir")?
                .join(format!("node-sim/pvcs/{}/ckpt/seedsweep-checkpoints/{}/ck", s.ns, s.ns));
            let deadline = Instant::now() + Duration::from_secs(60);
            while dir.exists() {
                ensure!(Instant::now() < deadline, "{} is still there", dir.display());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }

            // Deleted while it runs: its trials stop, its checkpoints go, then so does the sweep.
            s.create_sweep(&yaml.replace("name: ck\n", "name: ck2\n")).await?;
            let dir = dir.with_file_name("ck2");
            let deadline = Instant::now() + SWEEP_TIMEOUT;
            let has_checkpoint = |d: &Path| {
                std::fs::read_dir(d).into_iter().flatten().flatten().any(|trial| {
                    std::fs::read_dir(trial.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .any(|f| f.path().extension().is_some_and(|e| e == "ckpt"))
                })
            };
            while !has_checkpoint(&dir) {
                ensure!(Instant::now() < deadline, "ck2 wrote no checkpoint in {}", dir.display());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let live = s.sweeps().get("ck2").await?;
            ensure!(
                live.metadata.finalizers.unwrap_or_default() == ["seedsweep.dev/checkpoints"],
                "the checkpoint finalizer is set"
            );
            s.sweeps().delete("ck2", &DeleteParams::default()).await?;
            seedsweep_tests::helpers::wait_for_deletion(&s.sweeps(), "ck2", Duration::from_secs(120))
                .await?;
            ensure!(!dir.exists(), "{} is left after the sweep was deleted", dir.display());
            drop(op);
            Api::<k8s_openapi::api::core::v1::PersistentVolume>::all(s.client.clone())
                .delete(&pv, &DeleteParams::default())
                .await?;
            Ok(())
        })
    })
    .await
}
