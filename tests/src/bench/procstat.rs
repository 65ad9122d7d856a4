//! A process's CPU time and memory from /proc, for the operator's footprint.

/// CPU seconds (user + system) and memory of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStats {
    pub cpu_seconds: f64,
    /// Peak resident set (VmHWM).
    pub peak_rss_bytes: u64,
    pub rss_bytes: u64,
}

pub fn read(pid: u32) -> Result<ProcStats, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    parse(&stat, &status, clock_ticks())
        .ok_or_else(|| format!("cannot read /proc/{pid}/stat and status"))
}

/// CPU seconds (user + system) of a process and of its children it has waited for. Readable from /proc while the
/// process is a zombie (not yet reaped), when its memory figures are already gone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuTimes {
    pub own: f64,
    pub children: f64,
}

pub fn cpu_times(pid: u32) -> Result<CpuTimes, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    parse_cpu(&stat, clock_ticks()).ok_or_else(|| format!("cannot read /proc/{pid}/stat"))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn parse_cpu(stat: &str, ticks: f64) -> Option<CpuTimes> {
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime, stime, cutime, cstime are fields 14 to 17 of the whole line, 12 to 15 after the name (0-based 11-14).
    let field = |i: usize| -> Option<f64> { fields.get(i)?.parse().ok() };
    Some(CpuTimes {
        own: (field(11)? + field(12)?) / ticks,
        children: (field(13)? + field(14)?) / ticks,
    })
}

fn parse(stat: &str, status: &str, ticks: f64) -> Option<ProcStats> {
    let cpu = parse_cpu(stat, ticks)?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(ProcStats {
        cpu_seconds: cpu.own,
        peak_rss_bytes: kib("VmHWM:")? * 1024,
        rss_bytes: kib("VmRSS:")? * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_the_command_name() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        let s = parse(stat, status, 100.0).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(
            parse_cpu(stat, 100.0),
            Some(CpuTimes {
                own: 3.0,
                children: 0.0
            })
        );
        assert_eq!((s.peak_rss_bytes, s.rss_bytes), (2 << 20, 1 << 20));
        let me = read(std::process::id()).unwrap();
        assert!(me.peak_rss_bytes >= me.rss_bytes && me.rss_bytes > 0);
    }
}
