//! How full an executor kept its trial slots, from when attempts started and ended: the fraction of slots running
//! while trials remained to be started, and how long a freed slot stayed empty. Both executors' benchmarks use it —
//! the cluster's from what its watches saw (Jobs created, pods ended), the local one from the stand-ins' event log.

/// When one attempt held a slot: `start` (for a Job, its creation) and, once it ended, `end` (its pod ended or was
/// deleted, or its Job was deleted, whichever came first), in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Attempt {
    pub start: f64,
    pub end: Option<f64>,
    /// Whether trials were left to start when it ended.
    pub ended_while_remaining: bool,
}

/// Seconds each freed slot stayed empty, for the slots freed while trials were left to start. All slots are alike, so they are matched first in, first out: the first `capacity`
/// starts fill empty slots and the k-th slot freed is refilled by start number `capacity + k`. Whatever the
/// matching, the delays sum to the slot-seconds left empty; a negative delay is a refill the observer saw before the
/// end it replaced (two watch streams, or two log writers, in no common order). Freed slots never refilled are left
/// out: the executor had nothing left to start.
pub fn refill_delays(capacity: usize, attempts: &[Attempt]) -> Vec<f64> {
    let mut starts: Vec<f64> = attempts.iter().map(|a| a.start).collect();
    starts.sort_by(f64::total_cmp);
    let mut ends: Vec<(f64, bool)> = attempts
        .iter()
        .filter_map(|a| Some((a.end?, a.ended_while_remaining)))
        .collect();
    ends.sort_by(|a, b| a.0.total_cmp(&b.0));
    ends.iter()
        .enumerate()
        .filter(|(_, (_, remaining))| *remaining)
        .filter_map(|(k, (end, _))| Some(starts.get(capacity + k)? - end))
        .collect()
}

/// The number of attempts holding a slot at `t`.
pub fn running_at(attempts: &[Attempt], t: f64) -> usize {
    attempts
        .iter()
        .filter(|a| a.start <= t && a.end.is_none_or(|e| t < e))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(start: f64, end: f64) -> Attempt {
        Attempt {
            start,
            end: Some(end),
            ended_while_remaining: end < 20.0,
        }
    }

    #[test]
    fn the_kth_freed_slot_is_refilled_by_the_start_after_the_first_capacity() {
        // Two slots: attempts 1 and 2 fill them; 1 ends at 10, refilled at 10.5; 2 ends at 12, refilled at 11.9
        // (seen before its end); the last two ends are after everything was started.
        let attempts = [a(0.0, 10.0), a(0.1, 12.0), a(10.5, 30.0), a(11.9, 31.0)];
        let delays = refill_delays(2, &attempts);
        assert_eq!(delays.len(), 2);
        assert!((delays[0] - 0.5).abs() < 1e-9 && (delays[1] + 0.1).abs() < 1e-9);
        // Ends while nothing remained are not refills, whatever follows.
        let none_left = attempts.map(|a| Attempt {
            ended_while_remaining: false,
            ..a
        });
        assert!(refill_delays(2, &none_left).is_empty());
        assert_eq!(running_at(&attempts, 11.0), 2);
        assert_eq!(running_at(&attempts, 10.2), 1);
        let open = [Attempt {
            start: 1.0,
            end: None,
            ended_while_remaining: true,
        }];
        assert_eq!(running_at(&open, 1e9), 1);
    }
}
