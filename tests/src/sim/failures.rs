//! How a kubelet (1.20+, containerd/runc runtime) words the failures of containers that cannot run: image pull
//! errors, crash-loop and image-pull back-offs (a port of `client-go/util/flowcontrol.Backoff`), runtime start
//! errors. Pure, so the exact strings are unit tested here; `pod` applies them.

use std::time::Duration;

use tokio::time::Instant;

/// What containerd/runc put in front of an exec failure (`state.terminated.message`, reason `StartError`).
pub const RUNC_START_PREFIX: &str = "failed to create containerd task: failed to create shim task: OCI runtime \
                                     create failed: runc create failed: unable to start container process: ";

/// `docker.io/library/x:latest` for `x`: the fully qualified reference containerd reports (docker's
/// `ParseNormalizedNamed` + `TagNameOnly`).
pub fn normalize_image(image: &str) -> String {
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let slash = name_tag.rfind('/');
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if slash.is_none_or(|s| i > s) => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    let (domain, path) = split_domain(name);
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => {
            out.push(':');
            out.push_str(t);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    out
}

/// Registry host and repository path of an image name (without tag/digest), docker's rules: the first component
/// is a host when it has a `.` or `:` or is `localhost`.
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            let first = if first == "index.docker.io" {
                "docker.io"
            } else {
                first
            };
            (first, rest)
        }
        _ => ("docker.io", name),
    }
}

/// `*` matches any run of characters (including `/`), `?` one character; everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The error containerd returns when pulling `image` fails, or None when it can be pulled. Images whose
/// registry host is under the reserved `.invalid` TLD never resolve (on a real cluster either); `unpullable`
/// patterns (see [`glob_match`]; matched against the image as written and its normalized form) are "not found".
pub fn pull_error(image: &str, unpullable: &[String]) -> Option<String> {
    let full = normalize_image(image);
    let name = full.split('@').next().unwrap_or(&full);
    let (host, _) = split_domain(name);
    let hostname = host.split(':').next().unwrap_or(host);
    if hostname == "invalid" || hostname.ends_with(".invalid") {
        // `name[:tag]` with the tag after the last `/` (a registry port is not a tag).
        let strip_tag = |n: &str| -> (String, Option<String>) {
            match n.rfind(':') {
                Some(i) if n.rfind('/').is_none_or(|s| i > s) => {
                    (n[..i].to_string(), Some(n[i + 1..].to_string()))
                }
                _ => (n.to_string(), None),
            }
        };
        let (repo, reference) = match full.split_once('@') {
            Some((n, digest)) => (strip_tag(n).0, digest.to_string()),
            None => {
                let (repo, tag) = strip_tag(&full);
                (repo, tag.unwrap_or_else(|| "latest".into()))
            }
        };
        let path = repo
            .strip_prefix(host)
            .unwrap_or(&repo)
            .trim_start_matches('/');
        return Some(format!(
            "rpc error: code = Unknown desc = failed to pull and unpack image \"{full}\": failed to resolve \
             reference \"{full}\": failed to do request: Head \"https://{host}/v2/{path}/manifests/{reference}\": \
             dial tcp: lookup {hostname}: no such host"
        ));
    }
    if unpullable
        .iter()
        .any(|p| glob_match(p, image) || glob_match(p, &full))
    {
        return Some(format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{full}\": failed to resolve \
             reference \"{full}\": {full}: not found"
        ));
    }
    None
}

/// The program standing in for `image`'s ENTRYPOINT: the first `(pattern, program)` whose glob matches the image
/// as written or normalized.
pub fn image_entrypoint<'a>(image: &str, entrypoints: &'a [(String, String)]) -> Option<&'a str> {
    let full = normalize_image(image);
    entrypoints
        .iter()
        .find(|(p, _)| glob_match(p, image) || glob_match(p, &full))
        .map(|(_, program)| program.as_str())
}

/// `state.waiting.message` while the kubelet waits out an image pull back-off (reason `ImagePullBackOff`).
pub fn image_pull_backoff_message(image: &str) -> String {
    format!("Back-off pulling image \"{image}\"")
}

/// `state.waiting.message` under `imagePullPolicy: Never` for an absent image (reason `ErrImageNeverPull`).
pub fn never_pull_message(image: &str) -> String {
    format!("Container image \"{image}\" is not present with pull policy of Never")
}

/// `state.waiting.message` of a container in `CrashLoopBackOff` (`format.Pod` is `name_namespace(uid)`).
pub fn crash_loop_message(
    backoff: Duration,
    container: &str,
    pod: &str,
    namespace: &str,
    uid: &str,
) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={pod}_{namespace}({uid})",
        go_duration(backoff)
    )
}

/// What runc says when it cannot exec the container's program (without [`RUNC_START_PREFIX`] and the gRPC
/// `: unknown` suffix, which [`start_error_message`] adds).
pub fn exec_error(program: &str, err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound if program.contains('/') => {
            format!("exec: \"{program}\": stat {program}: no such file or directory")
        }
        std::io::ErrorKind::NotFound => {
            format!("exec: \"{program}\": executable file not found in $PATH")
        }
        std::io::ErrorKind::PermissionDenied => format!("exec: \"{program}\": permission denied"),
        _ => format!("exec: \"{program}\": {err}"),
    }
}

/// `state.terminated.message` of a container that could not be started (exit code 128, reason `StartError`).
pub fn start_error_message(runc_error: &str) -> String {
    format!("{RUNC_START_PREFIX}{runc_error}: unknown")
}

/// Go's `time.Duration.String()`: `10s`, `1m20s`, `5m0s`, `300ms`, `1.6s`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    let frac = |n: u128, unit: u128, digits: usize| {
        let (whole, rem) = (n / unit, n % unit);
        if rem == 0 {
            whole.to_string()
        } else {
            let rem = format!("{rem:0digits$}");
            format!("{whole}.{}", rem.trim_end_matches('0'))
        }
    };
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", frac(nanos, 1_000, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", frac(nanos, 1_000_000, 6));
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let s = frac(
        u128::from(s) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
        9,
    );
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// One entry of the kubelet's `flowcontrol.Backoff` (per container for crash loops, per image for pulls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub backoff: Duration,
    pub last_update: Instant,
}

impl Backoff {
    /// `Backoff.Next`: a fresh entry at `base` (also when the old one expired), else the delay doubled up to `max`.
    pub fn next(
        prev: Option<Backoff>,
        event: Instant,
        now: Instant,
        base: Duration,
        max: Duration,
    ) -> Backoff {
        let backoff = match prev {
            Some(b) if !has_expired(event, b.last_update, max) => (b.backoff * 2).min(max),
            _ => base,
        };
        Backoff {
            backoff,
            last_update: now,
        }
    }

    /// `IsInBackOffSince(eventTime)`: the crash-loop test, measured from the container's finish time.
    pub fn in_backoff_since(&self, event: Instant, now: Instant, max: Duration) -> bool {
        !has_expired(event, self.last_update, max)
            && now.saturating_duration_since(event) < self.backoff
    }

    /// `IsInBackOffSinceUpdate(now)`: the image-pull test, measured from the last failed pull.
    pub fn in_backoff_since_update(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_update) < self.backoff
    }
}

fn has_expired(event: Instant, last_update: Instant, max: Duration) -> bool {
    event.saturating_duration_since(last_update) > max * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("org/app:v1", "docker.io/org/app:v1"),
            ("docker.io/x:1", "docker.io/library/x:1"),
            ("ghcr.io/org/app", "ghcr.io/org/app:latest"),
            ("localhost:5000/app:2", "localhost:5000/app:2"),
            ("reg.example:5000/a/b", "reg.example:5000/a/b:latest"),
            ("app@sha256:abc", "docker.io/library/app@sha256:abc"),
            ("app:1@sha256:abc", "docker.io/library/app:1@sha256:abc"),
        ];
        for (image, want) in cases {
            assert_eq!(normalize_image(image), want, "{image}");
        }
    }

    #[test]
    fn image_entrypoints_by_glob() {
        let entrypoints = vec![
            (
                "ghcr.io/seedsweep/operator:*".to_string(),
                "/b/seedsweep".to_string(),
            ),
            (
                "docker.io/library/busybox:*".to_string(),
                "/bin/busybox".to_string(),
            ),
        ];
        assert_eq!(
            image_entrypoint("ghcr.io/seedsweep/operator:0.1.0", &entrypoints),
            Some("/b/seedsweep")
        );
        assert_eq!(
            image_entrypoint("busybox", &entrypoints),
            Some("/bin/busybox")
        );
        assert_eq!(
            image_entrypoint("ghcr.io/seedsweep/trainer:0.1.0", &entrypoints),
            None
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match(
            "unpullable.example/*",
            "unpullable.example/a/b:1"
        ));
        assert!(glob_match("*:missing", "docker.io/library/x:missing"));
        assert!(glob_match("x:?", "x:1"));
        assert!(glob_match("x:1", "x:1"));
        assert!(!glob_match("x:1", "x:10"));
        assert!(!glob_match("busybox*", "docker.io/library/busybox:1"));
        assert!(glob_match("*busybox*", "docker.io/library/busybox:1"));
    }

    #[test]
    fn pull_errors() {
        assert_eq!(pull_error("busybox:1.36", &[]), None);
        assert_eq!(
            pull_error("x:1", &["x:*".into()]).as_deref(),
            Some(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/x:1\": \
                 failed to resolve reference \"docker.io/library/x:1\": docker.io/library/x:1: not found"
            )
        );
        assert!(
            pull_error("x:1", &["docker.io/library/*".into()]).is_some(),
            "normalized form matches too"
        );
        assert_eq!(
            pull_error("registry.invalid/seedsweep/trainer:1", &[]).as_deref(),
            Some(
                "rpc error: code = Unknown desc = failed to pull and unpack image \
                 \"registry.invalid/seedsweep/trainer:1\": failed to resolve reference \
                 \"registry.invalid/seedsweep/trainer:1\": failed to do request: Head \
                 \"https://registry.invalid/v2/seedsweep/trainer/manifests/1\": dial tcp: lookup registry.invalid: \
                 no such host"
            )
        );
        assert!(
            pull_error("x.invalid:5000/app@sha256:ab", &[]).is_some_and(|m| m.contains(
                "https://x.invalid:5000/v2/app/manifests/sha256:ab\": dial tcp: lookup x.invalid:"
            ))
        );
        assert_eq!(
            image_pull_backoff_message("x:1"),
            "Back-off pulling image \"x:1\""
        );
    }

    #[test]
    fn go_durations() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(1600), "1.6s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(80), "1m20s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
        assert_eq!(
            crash_loop_message(Duration::from_secs(20), "main", "p", "ns", "u-1"),
            "back-off 20s restarting failed container=main pod=p_ns(u-1)"
        );
    }

    #[test]
    fn exec_errors_read_like_runc() {
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            start_error_message(&exec_error("/nonexistent/x", &nf)),
            "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create \
             failed: unable to start container process: exec: \"/nonexistent/x\": stat /nonexistent/x: no such \
             file or directory: unknown"
        );
        assert_eq!(
            exec_error("trainer", &nf),
            "exec: \"trainer\": executable file not found in $PATH"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_when_expired() {
        let t0 = Instant::now();
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(300));
        let b = Backoff::next(None, t0, t0, base, max);
        assert_eq!(b.backoff, base);
        let s = Duration::from_secs;
        // Crashed 1 s after the restart: inside the 10 s window until 11 s.
        assert!(b.in_backoff_since(t0 + s(1), t0 + s(5), max));
        assert!(!b.in_backoff_since(t0 + s(1), t0 + s(11), max));
        let mut b = Backoff::next(Some(b), t0 + s(1), t0 + s(11), base, max);
        assert_eq!(b.backoff, s(20));
        for _ in 0..10 {
            b = Backoff::next(Some(b), b.last_update, b.last_update, base, max);
        }
        assert_eq!(b.backoff, max);
        // A container that ran for longer than twice the cap starts over.
        let later = b.last_update + s(601);
        assert!(!b.in_backoff_since(later, later, max));
        assert_eq!(
            Backoff::next(Some(b), later, later, base, max).backoff,
            base
        );
        assert!(b.in_backoff_since_update(b.last_update + s(299)));
        assert!(!b.in_backoff_since_update(b.last_update + s(300)));
    }
}
