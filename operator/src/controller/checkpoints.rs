//! Checkpoints in a cluster: where a sweep's trials keep them on the checkpoint volume, and the Jobs that remove
//! them once no trial can continue from them. The operator never mounts a volume itself, so removal runs as a
//! small Job with the trial image (`rm`), the checkpoint volume and no accelerator.

use super::job::{
    LABEL_MANAGED_BY, LABEL_SWEEP, MANAGER, TrainerImage, container_security, owner_reference,
    pod_spec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use seedsweep_crds::sweep::{SeedSweep, SeedSweepSpec, TrialTemplate};
use std::collections::BTreeMap;

/// Marks the operator's checkpoint-removal Jobs (they carry the sweep's label, not a trial's).
pub const LABEL_ROLE: &str = "seedsweep.dev/role";
pub const ROLE_CLEANUP: &str = "checkpoint-cleanup";
/// The trials whose checkpoints a removal Job removes, comma-separated; [`WHOLE_SWEEP`] for the sweep's directory.
pub const ANNOTATION_TRIALS: &str = "seedsweep.dev/trials";
pub const WHOLE_SWEEP: &str = "*";
/// Trials per removal Job: keeps the command line and the annotation small.
pub const MAX_TRIALS_PER_JOB: usize = 100;

/// The directory of a sweep's checkpoints inside its pods, on the checkpoint volume's mount; each trial has a
/// subdirectory named after it. `None` without checkpoints, or when the volume is not mounted read-write (the
/// manifest's validation refuses that).
pub fn sweep_dir(spec: &SeedSweepSpec, namespace: Option<&str>, sweep: &str) -> Option<String> {
    let volume = spec.checkpoints.as_ref()?.volume.as_ref()?;
    let mount = spec
        .trial_template
        .volume_mounts
        .iter()
        .find(|m| &m.name == volume && !m.read_only && m.sub_path.is_none())?;
    Some(format!(
        "{}/seedsweep-checkpoints/{}/{sweep}",
        mount.mount_path.trim_end_matches('/'),
        namespace.unwrap_or("default")
    ))
}

/// A removal Job's name: the sweep's, and a digest of what it removes, so that an operator restarted in between
/// finds the Job it made rather than making another.
fn cleanup_job_name(sweep: &str, trials: &[String]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for byte in trials.join(",").bytes() {
        h ^= u32::from(byte);
        h = h.wrapping_mul(0x0100_0193);
    }
    let prefix: String = sweep.chars().take(40).collect();
    format!("{}-ckpt-rm-{h:08x}", prefix.trim_end_matches('-'))
}

/// The Job that removes the checkpoints of `trials` (all of them and the sweep's directory for `[WHOLE_SWEEP]`)
/// under `dir`, owned by the sweep.
pub fn cleanup_job(
    sweep: &SeedSweep,
    spec: &SeedSweepSpec,
    image: &TrainerImage,
    dir: &str,
    trials: &[String],
) -> Job {
    let sweep_name = sweep.metadata.name.clone().unwrap_or_default();
    let labels: BTreeMap<String, String> = [
        (LABEL_MANAGED_BY, MANAGER.to_string()),
        (
            "app.kubernetes.io/name",
            "seedsweep-checkpoint-cleanup".into(),
        ),
        (LABEL_SWEEP, sweep_name.clone()),
        (LABEL_ROLE, ROLE_CLEANUP.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let paths: Vec<String> = if trials == [WHOLE_SWEEP] {
        vec![dir.to_string()]
    } else {
        trials.iter().map(|t| format!("{dir}/{t}")).collect()
    };
    let template = &spec.trial_template;
    let volume = spec
        .checkpoints
        .as_ref()
        .and_then(|c| c.volume.clone())
        .unwrap_or_default();
    // Only the checkpoint volume, no resources (no GPU slot), the trial's image and scheduling settings.
    let only_volume = TrialTemplate {
        volumes: template
            .volumes
            .iter()
            .filter(|v| v.name == volume)
            .cloned()
            .collect(),
        volume_mounts: Vec::new(),
        resources: None,
        ..template.clone()
    };
    let mounts = template
        .volume_mounts
        .iter()
        .filter(|m| m.name == volume)
        .map(|m| VolumeMount {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            ..Default::default()
        })
        .collect();
    let container = Container {
        name: "cleanup".into(),
        image: Some(image.for_template(template)),
        image_pull_policy: template.image_pull_policy.clone(),
        command: Some(
            ["rm", "-rf", "--"]
                .into_iter()
                .map(String::from)
                .chain(paths)
                .collect(),
        ),
        volume_mounts: Some(mounts),
        security_context: Some(container_security()),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(cleanup_job_name(&sweep_name, trials)),
            namespace: sweep.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(
                ANNOTATION_TRIALS.to_string(),
                trials.join(","),
            )])),
            owner_references: Some(owner_reference(sweep).into_iter().collect()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(pod_spec(&only_volume, container)),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Whether `job` is one of the operator's removal Jobs; the trials it removes.
pub fn cleanup_trials(job: &Job) -> Option<Vec<String>> {
    let labels = job.metadata.labels.as_ref()?;
    if labels.get(LABEL_ROLE).map(String::as_str) != Some(ROLE_CLEANUP) {
        return None;
    }
    let trials = job.metadata.annotations.as_ref()?.get(ANNOTATION_TRIALS)?;
    Some(trials.split(',').map(str::to_string).collect())
}

/// On sweeps with a checkpoint volume: deleting one waits until its checkpoints are removed.
pub const FINALIZER: &str = "seedsweep.dev/checkpoints";

pub fn has_finalizer(sweep: &SeedSweep) -> bool {
    sweep
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

/// A finished Job's success.
pub fn succeeded(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.succeeded)
        .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(extra: &str) -> SeedSweep {
        let text = format!(
            r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata: {{name: s, namespace: team, uid: u1}}
spec:
  task: {{name: mrpc, dataDir: /data}}
  model: {{path: /model}}
  seeds: {{weightInit: {{count: 2}}, dataOrder: {{count: 2}}}}
{extra}"#
        );
        serde_yaml::from_str(&text).unwrap()
    }

    const WITH_VOLUME: &str = r#"  checkpoints: {volume: ckpt}
  trialTemplate:
    image: trainer:1
    resources: {limits: {nvidia.com/gpu: "1"}}
    volumes:
      - {name: ckpt, persistentVolumeClaim: {claimName: shared}}
      - {name: models, persistentVolumeClaim: {claimName: models}}
    volumeMounts:
      - {name: ckpt, mountPath: /ckpt/}
      - {name: models, mountPath: /models, readOnly: true}
"#;

    #[test]
    fn a_sweeps_checkpoints_live_in_its_own_directory_on_the_volume() {
        let s = sweep(WITH_VOLUME);
        assert_eq!(
            sweep_dir(&s.spec, Some("team"), "s").as_deref(),
            Some("/ckpt/seedsweep-checkpoints/team/s")
        );
        assert_eq!(sweep_dir(&sweep("").spec, Some("team"), "s"), None);
    }

    #[test]
    fn a_removal_job_mounts_only_the_checkpoint_volume_and_takes_no_gpu() {
        let s = sweep(WITH_VOLUME);
        let image = TrainerImage {
            default_image: "default:1".into(),
            command: vec!["seedsweep-trainer".into()],
        };
        let trials = vec!["s-w1-d1".to_string(), "s-w2-d1".to_string()];
        let job = cleanup_job(
            &s,
            &s.spec,
            &image,
            "/ckpt/seedsweep-checkpoints/team/s",
            &trials,
        );
        assert_eq!(cleanup_trials(&job), Some(trials.clone()));
        let pod = job.spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.command.as_ref().unwrap(),
            &[
                "rm",
                "-rf",
                "--",
                "/ckpt/seedsweep-checkpoints/team/s/s-w1-d1",
                "/ckpt/seedsweep-checkpoints/team/s/s-w2-d1"
            ]
        );
        assert_eq!(c.image.as_deref(), Some("trainer:1"));
        assert!(c.resources.is_none());
        let mounts = c.volume_mounts.as_ref().unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_path, "/ckpt/");
        let volumes: Vec<&str> = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        assert!(volumes.contains(&"ckpt") && !volumes.contains(&"models"));
        // The same trials always make the same Job; others another.
        let again = cleanup_job(&s, &s.spec, &image, "/d", &trials);
        assert_eq!(job.metadata.name, again.metadata.name);
        let whole = cleanup_job(&s, &s.spec, &image, "/d", &[WHOLE_SWEEP.to_string()]);
        assert_ne!(job.metadata.name, whole.metadata.name);
        assert_eq!(
            whole.spec.unwrap().template.spec.unwrap().containers[0]
                .command
                .as_ref()
                .unwrap()[3],
            "/d"
        );
    }
}
