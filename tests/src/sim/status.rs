//! Pod status as the kubelet reports it, built from the simulator's view of its processes.
//!
//! Pure: `build_status` takes the previous status (to keep `PodScheduled` and stable transition times) and the
//! runtime view, and returns the whole new status, which the pod worker sends as a merge patch.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The kubelet's cap on termination messages (`MaxContainerTerminationMessageLength`).
pub const MAX_TERMINATION_MESSAGE: usize = 4096;
/// `FallbackToLogsOnError` uses at most this many bytes / lines from the end of the log.
pub const MAX_FALLBACK_BYTES: usize = 2048;
pub const MAX_FALLBACK_LINES: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    /// Set when the process died from a signal; `exit_code` is then 128 + signal, like container runtimes report.
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// The instance that ended (`sim://<pid>`), also reported in `lastState` after a restart.
    pub container_id: Option<String>,
}

impl Termination {
    pub fn new(
        exit_code: i32,
        signal: Option<i32>,
        message: Option<String>,
        started_at: Timestamp,
    ) -> Self {
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        Termination {
            exit_code,
            signal,
            reason: reason.to_string(),
            message: message.filter(|m| !m.is_empty()),
            started_at,
            finished_at: Timestamp::now(),
            container_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessState {
    /// Not started yet, or waiting for a restart; the reason is what `kubectl get pods` shows.
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated(Termination),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub state: ProcessState,
    pub restart_count: i32,
    pub last_termination: Option<Termination>,
    /// A stable id for the process (`sim://<pid>`), so clients can tell restarts apart.
    pub container_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub pod_ip: String,
    pub host_ip: String,
    pub start_time: Timestamp,
    /// `spec.restartPolicy` (the API server defaults it to Always).
    pub restart_policy: String,
    /// Run one after another before `containers`; each must exit 0.
    pub init_containers: Vec<ContainerView>,
    pub containers: Vec<ContainerView>,
}

fn succeeded(c: &ContainerView) -> bool {
    matches!(&c.state, ProcessState::Terminated(t) if t.exit_code == 0)
}

/// Go's `%s` of a `[]string`: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

impl PodView {
    /// All init containers exited 0 (vacuously true without any).
    pub fn initialized(&self) -> bool {
        self.init_containers.iter().all(succeeded)
    }

    /// The kubelet's `getPhase` (1.20), case by case: a container waiting after a termination (back-off) counts
    /// as stopped, one waiting without any (not started yet, image or config error) keeps the pod Pending.
    pub fn phase(&self) -> &'static str {
        let never = self.restart_policy == "Never";
        let (mut pending_init, mut failed_init) = (0, 0);
        for c in &self.init_containers {
            match (&c.state, &c.last_termination) {
                (ProcessState::Running { .. }, _) => pending_init += 1,
                (ProcessState::Terminated(t), _) | (ProcessState::Waiting { .. }, Some(t)) => {
                    if t.exit_code != 0 {
                        failed_init += 1;
                    }
                }
                (ProcessState::Waiting { .. }, None) => pending_init += 1,
            }
        }
        let (mut running, mut waiting, mut stopped, mut ok) = (0, 0, 0, 0);
        for c in &self.containers {
            match (&c.state, &c.last_termination) {
                (ProcessState::Running { .. }, _) => running += 1,
                (ProcessState::Terminated(t), _) => {
                    stopped += 1;
                    if t.exit_code == 0 {
                        ok += 1;
                    }
                }
                (ProcessState::Waiting { .. }, Some(_)) => stopped += 1,
                (ProcessState::Waiting { .. }, None) => waiting += 1,
            }
        }
        if failed_init > 0 && never {
            return "Failed";
        }
        if pending_init > 0 || waiting > 0 {
            "Pending"
        } else if running > 0 {
            "Running"
        } else if stopped > 0 {
            if self.restart_policy == "Always" {
                "Running"
            } else if stopped == ok {
                "Succeeded"
            } else if never {
                "Failed"
            } else {
                "Running" // OnFailure, restarting
            }
        } else {
            "Pending"
        }
    }
}

fn term_state(t: &Termination) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: Some(t.reason.clone()),
            message: t.message.clone(),
            started_at: Some(Time(t.started_at)),
            finished_at: Some(Time(t.finished_at)),
            container_id: t.container_id.clone(),
        }),
        ..Default::default()
    }
}

fn container_status(c: &ContainerView) -> ContainerStatus {
    let state = match &c.state {
        ProcessState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        ProcessState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        ProcessState::Terminated(t) => term_state(t),
    };
    let running = matches!(c.state, ProcessState::Running { .. });
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: String::new(),
        container_id: c.container_id.clone(),
        ready: running,
        started: Some(running),
        restart_count: c.restart_count,
        state: Some(state),
        last_state: c.last_termination.as_ref().map(term_state),
        ..Default::default()
    }
}

/// Condition with `lastTransitionTime` kept from the previous status when the value did not change.
fn condition(
    previous: Option<&PodStatus>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let old = previous
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let since = match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => None,
    };
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: since.or(Some(Time(now))),
        ..Default::default()
    }
}

pub fn build_status(previous: Option<&PodStatus>, view: &PodView, now: Timestamp) -> PodStatus {
    let phase = view.phase();
    // GeneratePodInitializedCondition / GenerateContainersReadyCondition / GeneratePodReadyCondition (1.20).
    let incomplete: Vec<&str> = view
        .init_containers
        .iter()
        .filter(|c| !succeeded(c))
        .map(|c| c.name.as_str())
        .collect();
    let initialized = if view.init_containers.is_empty() {
        condition(previous, "Initialized", true, None, None, now)
    } else if phase == "Succeeded" {
        condition(
            previous,
            "Initialized",
            true,
            Some("PodCompleted"),
            None,
            now,
        )
    } else if !incomplete.is_empty() {
        let message = format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        );
        let reason = Some("ContainersNotInitialized");
        condition(previous, "Initialized", false, reason, Some(message), now)
    } else {
        condition(previous, "Initialized", true, None, None, now)
    };
    let unready: Vec<&str> = view
        .containers
        .iter()
        .filter(|c| !matches!(c.state, ProcessState::Running { .. }))
        .map(|c| c.name.as_str())
        .collect();
    let ready = |type_: &str| {
        if phase == "Succeeded" {
            condition(previous, type_, false, Some("PodCompleted"), None, now)
        } else if !unready.is_empty() {
            let message = format!("containers with unready status: {}", go_list(&unready));
            let reason = Some("ContainersNotReady");
            condition(previous, type_, false, reason, Some(message), now)
        } else {
            condition(previous, type_, true, None, None, now)
        }
    };

    let scheduled = previous
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled").cloned())
        .unwrap_or_else(|| condition(None, "PodScheduled", true, None, None, now));
    let conditions = vec![
        initialized,
        ready("Ready"),
        ready("ContainersReady"),
        scheduled,
    ];

    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(view.host_ip.clone()),
        pod_ip: Some(view.pod_ip.clone()),
        pod_ips: Some(vec![PodIP {
            ip: view.pod_ip.clone(),
        }]),
        start_time: Some(Time(view.start_time)),
        container_statuses: Some(view.containers.iter().map(container_status).collect()),
        init_container_statuses: (!view.init_containers.is_empty())
            .then(|| view.init_containers.iter().map(container_status).collect()),
        qos_class: previous.and_then(|s| s.qos_class.clone()),
        ..Default::default()
    }
}

/// The container's message as the kubelet would report it: the last 4096 bytes of the termination-message file,
/// or, with `FallbackToLogsOnError` and a failed container, the tail of its log when the file is empty.
pub fn termination_message(
    file: &[u8],
    log: &[u8],
    exit_code: i32,
    fallback_to_logs: bool,
) -> Option<String> {
    let from_file = tail_bytes(file, MAX_TERMINATION_MESSAGE);
    if !from_file.is_empty() || !fallback_to_logs || exit_code == 0 {
        return (!from_file.is_empty()).then(|| String::from_utf8_lossy(from_file).into_owned());
    }
    let mut start = log.len();
    let mut lines = 0;
    // Count newlines from the end; a trailing newline does not open an extra (empty) line.
    for (i, &b) in log.iter().enumerate().rev() {
        if b == b'\n' && i + 1 != log.len() {
            lines += 1;
            if lines == MAX_FALLBACK_LINES {
                break;
            }
        }
        start = i;
    }
    let tail = tail_bytes(&log[start..], MAX_FALLBACK_BYTES);
    (!tail.is_empty()).then(|| String::from_utf8_lossy(tail).into_owned())
}

fn tail_bytes(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[bytes.len().saturating_sub(max)..]
}

/// Whether the simulator should treat this pod as terminal already (it might be re-listed after a restart).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn view(states: Vec<ProcessState>) -> PodView {
        PodView {
            pod_ip: "127.5.0.2".into(),
            host_ip: "127.0.0.1".into(),
            start_time: ts(0),
            restart_policy: "Never".into(),
            init_containers: Vec::new(),
            containers: states
                .into_iter()
                .enumerate()
                .map(|(i, state)| ContainerView {
                    name: format!("c{i}"),
                    image: "busybox".into(),
                    state,
                    restart_count: 0,
                    last_termination: None,
                    container_id: Some(format!("sim://{}", 100 + i)),
                })
                .collect(),
        }
    }

    fn term(code: i32, msg: Option<&str>) -> ProcessState {
        ProcessState::Terminated(Termination {
            exit_code: code,
            signal: None,
            reason: if code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            },
            message: msg.map(str::to_string),
            started_at: ts(1),
            finished_at: ts(2),
            container_id: Some("sim://7".into()),
        })
    }

    #[test]
    fn phases() {
        let waiting = ProcessState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        assert_eq!(view(vec![waiting.clone()]).phase(), "Pending");
        assert_eq!(
            view(vec![ProcessState::Running { started_at: ts(1) }, waiting]).phase(),
            "Pending",
            "getPhase: one container not started yet keeps the pod Pending"
        );
        assert_eq!(
            view(vec![
                ProcessState::Running { started_at: ts(1) },
                term(0, None)
            ])
            .phase(),
            "Running"
        );
        assert_eq!(
            view(vec![term(0, None), term(0, None)]).phase(),
            "Succeeded"
        );
        assert_eq!(view(vec![term(0, None), term(3, None)]).phase(), "Failed");
    }

    #[test]
    fn running_status_has_ips_and_ready() {
        let status = build_status(
            None,
            &view(vec![ProcessState::Running { started_at: ts(1) }]),
            ts(5),
        );
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.5.0.2"));
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "127.5.0.2");
        assert_eq!(status.start_time, Some(Time(ts(0))));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .running
                .as_ref()
                .unwrap()
                .started_at,
            Some(Time(ts(1)))
        );
        let ready = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
    }

    #[test]
    fn terminated_status_and_stable_conditions() {
        let mut previous = build_status(
            None,
            &view(vec![ProcessState::Running { started_at: ts(1) }]),
            ts(5),
        );
        previous
            .conditions
            .as_mut()
            .unwrap()
            .retain(|c| c.type_ != "PodScheduled");
        previous.conditions.as_mut().unwrap().push(PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(-10))),
            ..Default::default()
        });
        let status = build_status(Some(&previous), &view(vec![term(2, Some("boom"))]), ts(9));
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        let t = status.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .clone()
            .unwrap();
        assert_eq!(
            (t.exit_code, t.reason.as_deref(), t.message.as_deref()),
            (2, Some("Error"), Some("boom"))
        );
        let conds = status.conditions.unwrap();
        let get = |t: &str| conds.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(get("Ready").status, "False");
        // Only Succeeded pods say PodCompleted; a failed one lists its unready containers.
        assert_eq!(get("Ready").reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            get("ContainersReady").message.as_deref(),
            Some("containers with unready status: [c0]")
        );
        assert_eq!(get("Ready").last_transition_time, Some(Time(ts(9))));
        assert_eq!(
            get("Initialized").last_transition_time,
            Some(Time(ts(5))),
            "unchanged condition keeps its time"
        );
        assert_eq!(
            get("PodScheduled").last_transition_time,
            Some(Time(ts(-10))),
            "scheduler's condition is kept"
        );
    }

    #[test]
    fn termination_messages() {
        assert_eq!(
            termination_message(b"done\n", b"", 0, false).as_deref(),
            Some("done\n")
        );
        assert_eq!(termination_message(b"", b"log", 1, false), None);
        assert_eq!(
            termination_message(b"", b"log", 0, true),
            None,
            "fallback only on failure"
        );
        assert_eq!(
            termination_message(b"", b"a\nb\n", 1, true).as_deref(),
            Some("a\nb\n")
        );
        let big = vec![b'x'; 5000];
        assert_eq!(
            termination_message(&big, b"", 0, false).unwrap().len(),
            MAX_TERMINATION_MESSAGE
        );
        let many: String = (0..100).map(|i| format!("{i}\n")).collect();
        let msg = termination_message(b"", many.as_bytes(), 1, true).unwrap();
        assert!(msg.starts_with("20\n") && msg.ends_with("99\n"), "{msg:?}");
    }

    #[test]
    fn phases_follow_get_phase_for_failures_and_back_offs() {
        let waiting = |reason: &str, msg: &str| ProcessState::Waiting {
            reason: reason.into(),
            message: Some(msg.into()),
        };
        // Image and config errors: never started, so Pending and not ready, whatever the policy.
        for policy in ["Never", "OnFailure", "Always"] {
            let mut v = view(vec![waiting("ErrImagePull", "rpc error")]);
            v.restart_policy = policy.into();
            assert_eq!(v.phase(), "Pending", "{policy}");
        }
        // Crash loop: waiting with a lastState counts as stopped; restartable policies keep the pod Running.
        let mut v = view(vec![waiting("CrashLoopBackOff", "back-off 10s ...")]);
        v.containers[0].last_termination = match term(2, None) {
            ProcessState::Terminated(t) => Some(t),
            _ => None,
        };
        v.containers[0].restart_count = 1;
        for (policy, phase) in [("Always", "Running"), ("OnFailure", "Running")] {
            v.restart_policy = policy.into();
            assert_eq!(v.phase(), phase, "{policy}");
        }
        // Terminated before an immediate restart: Running under OnFailure/Always, Failed under Never.
        let mut v = view(vec![term(1, None)]);
        for (policy, phase) in [
            ("Always", "Running"),
            ("OnFailure", "Running"),
            ("Never", "Failed"),
        ] {
            v.restart_policy = policy.into();
            assert_eq!(v.phase(), phase, "{policy}");
        }
        v.containers[0].state = term(0, None);
        v.restart_policy = "Always".into();
        assert_eq!(v.phase(), "Running", "Always restarts even after exit 0");
        v.restart_policy = "OnFailure".into();
        assert_eq!(v.phase(), "Succeeded");

        let status = build_status(
            None,
            &view(vec![waiting(
                "CreateContainerConfigError",
                "secret \"x\" not found",
            )]),
            ts(3),
        );
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert!(!cs.ready && cs.started == Some(false));
        let w = cs.state.as_ref().unwrap().waiting.clone().unwrap();
        assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
        assert_eq!(w.message.as_deref(), Some("secret \"x\" not found"));
        let conds = status.conditions.unwrap();
        let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_deref(),
                ready.message.as_deref()
            ),
            (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [c0]")
            )
        );
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let waiting = ProcessState::Waiting {
            reason: "PodInitializing".into(),
            message: None,
        };
        let mut v = view(vec![waiting.clone()]);
        v.init_containers = view(vec![ProcessState::Running { started_at: ts(1) }]).containers;
        assert_eq!(v.phase(), "Pending");
        let status = build_status(None, &v, ts(3));
        let init = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Initialized")
            .unwrap();
        assert_eq!(
            (init.status.as_str(), init.reason.as_deref()),
            ("False", Some("ContainersNotInitialized"))
        );
        assert_eq!(
            status.init_container_statuses.as_ref().map(Vec::len),
            Some(1)
        );

        v.init_containers[0].state = term(0, None);
        v.containers[0].state = ProcessState::Running { started_at: ts(2) };
        assert_eq!(v.phase(), "Running");
        assert!(v.initialized());

        v.init_containers[0].state = term(1, None);
        v.containers[0].state = waiting;
        assert_eq!(
            v.phase(),
            "Failed",
            "failed init container without restart fails the pod"
        );
    }
}
