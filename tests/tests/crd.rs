//! The committed CRD on a real apiserver (1.20): it installs, the example manifest is accepted with the schema's
//! defaults filled in, and the simple constraints the schema encodes are enforced there, not only by
//! `seedsweep validate`. (The 1.20 apiserver names list items without their index: `spec.earlyDiscard.rungs.atFraction`.)

use anyhow::{Context, Result, ensure};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use seedsweep_tests::helpers::{apply_crd_yaml, create_namespace, delete_namespace};
use seedsweep_tests::shared;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn sweeps(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("seedsweep.dev", "v1alpha1", "SeedSweep");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn object(yaml: &str) -> DynamicObject {
    serde_yaml::from_str(yaml).expect("test manifests are valid YAML")
}

const MINIMAL: &str = r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata: {name: minimal}
spec:
  task: {name: rte, dataDir: /data/RTE}
  model: {path: /models/bert}
  seeds:
    weightInit: {start: 1, count: 3}
    dataOrder: {values: [7, 8]}
"#;

#[tokio::test]
async fn the_crd_installs_and_its_schema_is_enforced() -> Result<()> {
    let Some(cluster) = shared().ready_or_skip() else {
        return Ok(());
    };
    let client = cluster.client().await?;
    apply_crd_yaml(&client, &repo().join("crds/seedsweep.yaml")).await?;
    let ns = create_namespace(&client, "crd").await?;
    let api = sweeps(&client, &ns);

    let example = std::fs::read_to_string(repo().join("examples/mrpc-sweep.yaml"))?;
    api.create(&PostParams::default(), &object(&example))
        .await
        .context("the example is accepted")?;

    // Defaults come from the schema: the paper's hyperparameters, parallelism 1, metrics port 9090.
    let created = api.create(&PostParams::default(), &object(MINIMAL)).await?;
    let spec = &created.data["spec"];
    ensure!(
        spec["training"]["evalsPerEpoch"] == 10,
        "defaults not applied: {spec}"
    );
    ensure!(spec["training"]["learningRate"] == 2e-5, "{spec}");
    ensure!(spec["parallelism"] == 1, "{spec}");
    ensure!(spec["trialTemplate"]["metricsPort"] == 9090, "{spec}");

    // The status subresource takes server-side apply (what the operator will use) on 1.20.
    let status = serde_json::json!({
        "apiVersion": "seedsweep.dev/v1alpha1", "kind": "SeedSweep",
        "status": {"phase": "Pending", "counts": {"total": 6, "pending": 6, "running": 0, "succeeded": 0,
                   "discarded": 0, "diverged": 0, "failed": 0}}
    });
    let patched = api
        .patch_status(
            "minimal",
            &PatchParams::apply("seedsweep-test").force(),
            &Patch::Apply(&status),
        )
        .await?;
    ensure!(
        patched.data["status"]["phase"] == "Pending",
        "{}",
        patched.data
    );

    for (change, field) in [
        (
            "  seeds:\n",
            "  parallelism: 0\n  seeds:\n",
            "spec.parallelism",
        ),
        ("name: rte", "name: qqp", "spec.task.name"),
        (
            "{start: 1, count: 3}",
            "{start: 1, count: 0}",
            "spec.seeds.weightInit.count",
        ),
        (
            "  seeds:\n",
            "  training: {learningRate: 0}\n  seeds:\n",
            "spec.training.learningRate",
        ),
        (
            "  seeds:\n",
            "  earlyDiscard: {rungs: [{atFraction: 1.0, keepFraction: 1.5}]}\n  seeds:\n",
            "spec.earlyDiscard.rungs.atFraction",
        ),
        (
            "  seeds:\n",
            "  earlyDiscard: {rungs: [{atFraction: 0.5, keepFraction: 1.5}]}\n  seeds:\n",
            "spec.earlyDiscard.rungs.keepFraction",
        ),
        (
            "  seeds:\n",
            "  earlyDiscard: {mode: eager, rungs: [{atFraction: 0.5, keepCount: 1}]}\n  seeds:\n",
            "spec.earlyDiscard.mode",
        ),
    ]
    .map(|(from, to, field)| ((from, to), field))
    {
        let yaml = MINIMAL
            .replacen("name: minimal", "name: bad", 1)
            .replacen(change.0, change.1, 1);
        let err = api.create(&PostParams::default(), &object(&yaml)).await;
        let message = match err {
            Err(kube::Error::Api(status)) => status.message,
            other => anyhow::bail!("{field}: expected the apiserver to reject it, got {other:?}"),
        };
        ensure!(
            message.contains(field),
            "{field}: the apiserver's message does not name it: {message}"
        );
    }
    delete_namespace(&client, &ns).await?;
    Ok(())
}
