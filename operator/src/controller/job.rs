//! A trial attempt's Job, built from the sweep's spec: a pure function, so the whole pod a trial gets can be checked
//! without an apiserver.

use crate::engine::plan::PlannedTrial;
use crate::trainer_args::{TrialPaths, trainer_args};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use seedsweep_crds::sweep::{SCRATCH_DIR, SCRATCH_VOLUME, SeedSweep, SeedSweepSpec, TrialTemplate};
use std::collections::BTreeMap;

pub const LABEL_SWEEP: &str = "seedsweep.dev/sweep";
pub const LABEL_TRIAL: &str = "seedsweep.dev/trial";
pub const LABEL_ATTEMPT: &str = "seedsweep.dev/attempt";
pub const LABEL_WI_SEED: &str = "seedsweep.dev/wi-seed";
pub const LABEL_DO_SEED: &str = "seedsweep.dev/do-seed";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Put on a trial Job that has finished once the state records how it ended: the operator lists only Jobs without
/// it, so what it reads per reconciliation stays bounded by the running trials, not by every trial kept so far.
pub const LABEL_RECORDED: &str = "seedsweep.dev/recorded";
pub const MANAGER: &str = "seedsweep-operator";
pub const CONTAINER: &str = "trainer";
pub const TERMINATION_LOG: &str = "/dev/termination-log";
/// An unprivileged user that needs no entry in the image's /etc/passwd (distroless's `nonroot`).
pub(super) const NON_ROOT_UID: i64 = 65532;

/// How the operator runs trainers, whatever the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerImage {
    /// Image for sweeps whose `trialTemplate.image` is unset.
    pub default_image: String,
    /// The container's command; the trainer's arguments follow it.
    pub command: Vec<String>,
}

impl TrainerImage {
    /// The image a sweep's pods run: its `trialTemplate.image`, else the operator's default.
    pub fn for_template(&self, template: &TrialTemplate) -> String {
        template
            .image
            .clone()
            .unwrap_or_else(|| self.default_image.clone())
    }
}

/// The Job for attempt `attempt` (1-based) of `trial`.
pub fn job_name(trial: &str, attempt: u32) -> String {
    format!("{trial}-{attempt}")
}

/// Labels that select every Job and pod of one sweep.
pub fn sweep_selector(sweep: &str) -> String {
    format!("{LABEL_SWEEP}={sweep},{LABEL_MANAGED_BY}={MANAGER}")
}

/// Labels that select the Jobs of one sweep the operator still needs to read: those not [`LABEL_RECORDED`].
pub fn unrecorded_selector(sweep: &str) -> String {
    format!("{},!{LABEL_RECORDED}", sweep_selector(sweep))
}

/// The Job that runs `attempt` of `trial`. `spec` is the plan's spec (as first seen), `sweep` the live object (its
/// name, namespace and uid own the Job).
pub fn build_job(
    sweep: &SeedSweep,
    spec: &SeedSweepSpec,
    trial: &PlannedTrial,
    attempt: u32,
    image: &TrainerImage,
) -> Job {
    let sweep_name = sweep.metadata.name.clone().unwrap_or_default();
    let labels = labels(&sweep_name, trial, attempt);
    let paths = TrialPaths {
        data_dir: spec.task.data_dir.clone(),
        model_dir: spec.model.path.clone(),
        // Each pod binds its own IP: pods sharing a network namespace (or a node simulator's loopback) must not
        // collide on the port.
        metrics_addr: format!("$(POD_IP):{}", spec.trial_template.metrics_port),
        termination_log: TERMINATION_LOG.to_string(),
        output: Some(format!("{SCRATCH_DIR}/history.json")),
        checkpoint_dir: super::checkpoints::sweep_dir(
            spec,
            sweep.metadata.namespace.as_deref(),
            &sweep_name,
        )
        .map(|d| format!("{d}/{}", trial.name)),
    };
    let args = trainer_args(&sweep_name, spec, trial, &paths);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&trial.name, attempt)),
            namespace: sweep.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(owner_reference(sweep).into_iter().collect()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(spec.backoff_limit as i32),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(prometheus_annotations(spec.trial_template.metrics_port)),
                    ..Default::default()
                }),
                spec: Some(pod_spec(
                    &spec.trial_template,
                    trainer_container(&spec.trial_template, image, args),
                )),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The sweep as the controlling owner: deleting the sweep deletes its Jobs (and their pods) through the garbage
/// collector, and a foreground deletion of the sweep waits for them.
pub(super) fn owner_reference(sweep: &SeedSweep) -> Option<OwnerReference> {
    sweep.controller_owner_ref(&()).map(|owner| OwnerReference {
        block_owner_deletion: Some(true),
        ..owner
    })
}

fn labels(sweep: &str, trial: &PlannedTrial, attempt: u32) -> BTreeMap<String, String> {
    [
        (LABEL_MANAGED_BY, MANAGER.to_string()),
        ("app.kubernetes.io/name", "seedsweep-trial".to_string()),
        (LABEL_SWEEP, sweep.to_string()),
        (LABEL_TRIAL, trial.name.clone()),
        (LABEL_ATTEMPT, attempt.to_string()),
        (LABEL_WI_SEED, trial.weight_init.to_string()),
        (LABEL_DO_SEED, trial.data_order.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Prometheus' usual pod annotations, so a cluster's Prometheus (and the Grafana dashboards) see every trial.
fn prometheus_annotations(port: u16) -> BTreeMap<String, String> {
    [
        ("prometheus.io/scrape", "true".to_string()),
        ("prometheus.io/port", port.to_string()),
        ("prometheus.io/path", "/metrics".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The trainer container: non-root, read-only root filesystem with the scratch volume, all capabilities dropped.
fn trainer_container(
    template: &TrialTemplate,
    image: &TrainerImage,
    args: Vec<String>,
) -> Container {
    let mut env = vec![
        EnvVar {
            name: "POD_IP".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "status.podIP".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        // Libraries that write caches or temporary files find a writable place.
        env_value("HOME", SCRATCH_DIR),
        env_value("TMPDIR", SCRATCH_DIR),
    ];
    env.extend(template.env.iter().cloned());
    let mut volume_mounts = vec![VolumeMount {
        name: SCRATCH_VOLUME.into(),
        mount_path: SCRATCH_DIR.into(),
        ..Default::default()
    }];
    volume_mounts.extend(template.volume_mounts.iter().map(|m| VolumeMount {
        name: m.name.clone(),
        mount_path: m.mount_path.clone(),
        read_only: m.read_only.then_some(true),
        sub_path: m.sub_path.clone(),
        ..Default::default()
    }));
    Container {
        name: CONTAINER.into(),
        image: Some(image.for_template(template)),
        image_pull_policy: template.image_pull_policy.clone(),
        command: Some(image.command.clone()),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: i32::from(template.metrics_port),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: template.resources.clone(),
        volume_mounts: Some(volume_mounts),
        termination_message_path: Some(TERMINATION_LOG.into()),
        termination_message_policy: Some("File".into()),
        security_context: Some(container_security()),
        ..Default::default()
    }
}

/// Non-root, no privilege, read-only root filesystem, no capabilities: every container the operator creates.
pub(super) fn container_security() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT_UID),
        run_as_group: Some(NON_ROOT_UID),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

/// The trial pod around the trainer container: the template's scheduling settings and volumes, never restarted in
/// place (the Job retries), no service-account token.
pub(super) fn pod_spec(template: &TrialTemplate, container: Container) -> PodSpec {
    let mut volumes = vec![Volume {
        name: SCRATCH_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    volumes.extend(template.volumes.iter().map(|v| Volume {
        name: v.name.clone(),
        persistent_volume_claim: v.persistent_volume_claim.clone(),
        config_map: v.config_map.clone(),
        secret: v.secret.clone(),
        empty_dir: v.empty_dir.clone(),
        ..Default::default()
    }));
    PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        service_account_name: template.service_account_name.clone(),
        // The trainer never talks to the apiserver.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        node_selector: (!template.node_selector.is_empty()).then(|| template.node_selector.clone()),
        tolerations: (!template.tolerations.is_empty()).then(|| template.tolerations.clone()),
        affinity: template.affinity.clone(),
        priority_class_name: template.priority_class_name.clone(),
        image_pull_secrets: (!template.image_pull_secrets.is_empty())
            .then(|| template.image_pull_secrets.clone()),
        volumes: Some(volumes),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(NON_ROOT_UID),
            run_as_group: Some(NON_ROOT_UID),
            // Volumes (a PVC with the model, say) become readable by the trainer's group.
            fs_group: Some(NON_ROOT_UID),
            seccomp_profile: Some(runtime_default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
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

/// The trial and attempt a Job of this sweep runs, from its labels.
pub fn job_identity(job: &Job) -> Option<(String, u32)> {
    let labels = job.metadata.labels.as_ref()?;
    let trial = labels.get(LABEL_TRIAL)?.clone();
    let attempt = labels.get(LABEL_ATTEMPT)?.parse().ok()?;
    Some((trial, attempt))
}
