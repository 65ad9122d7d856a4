//! The controller manager's Job controller, seen through its work queue: `workqueue_*{name="job"}` from the
//! controller manager's own `/metrics`. Every trial pod waits for this queue: the Job controller syncs a Job (and
//! creates its pod) when a worker takes the Job's key, and the v1.20 controller manager runs five such workers with
//! no setting for more. Two readings give what happened in between: how many syncs, how long a key waited in the
//! queue and how long a sync took.

use super::apiserver::sample;

/// The Job work queue's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobQueue {
    pub adds: f64,
    pub wait_seconds: f64,
    pub waits: f64,
    pub work_seconds: f64,
    pub syncs: f64,
}

/// Reads the Job queue's counters from the controller manager's exposition text. A metric the text lacks is an
/// error naming it (a controller manager without its Job controller, or another program's metrics); a sample of
/// one that does not parse is an error quoting it.
pub fn read(exposition: &str) -> Result<JobQueue, String> {
    let value = |metric: &str| -> Result<f64, String> {
        for line in exposition.lines() {
            if let Some(read) = sample(line, metric) {
                let (labels, value) = read?;
                if labels.contains(&("name", "job")) {
                    return Ok(value);
                }
            }
        }
        Err(format!(
            "the controller manager's metrics have no {metric}{{name=\"job\"}}"
        ))
    };
    Ok(JobQueue {
        adds: value("workqueue_adds_total")?,
        wait_seconds: value("workqueue_queue_duration_seconds_sum")?,
        waits: value("workqueue_queue_duration_seconds_count")?,
        work_seconds: value("workqueue_work_duration_seconds_sum")?,
        syncs: value("workqueue_work_duration_seconds_count")?,
    })
}

/// What the queue did between two readings, over `wall` seconds, as the report's JSON.
pub fn report(before: &JobQueue, after: &JobQueue, wall: f64) -> serde_json::Value {
    let syncs = after.syncs - before.syncs;
    let waits = after.waits - before.waits;
    let work = after.work_seconds - before.work_seconds;
    let per = |total: f64, n: f64| if n > 0.0 { total / n } else { 0.0 };
    serde_json::json!({
        "adds": after.adds - before.adds,
        "syncs": syncs,
        "waitMeanSeconds": per(after.wait_seconds - before.wait_seconds, waits),
        "syncMeanSeconds": per(work, syncs),
        // Of the five workers, how many were syncing on average.
        "busyWorkersMean": per(work, wall),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP workqueue_adds_total [ALPHA] Total number of adds handled by workqueue
# TYPE workqueue_adds_total counter
workqueue_adds_total{name="deployment"} 9
workqueue_adds_total{name="job"} 120
workqueue_queue_duration_seconds_bucket{name="job",le="0.001"} 40
workqueue_queue_duration_seconds_sum{name="job"} 30.5
workqueue_queue_duration_seconds_count{name="job"} 118
workqueue_work_duration_seconds_sum{name="deployment"} 99
workqueue_work_duration_seconds_sum{name="job"} 4.75
workqueue_work_duration_seconds_count{name="job"} 117
"#;

    #[test]
    fn the_job_queue_is_read_and_two_readings_give_what_happened_between() {
        let before = read(SAMPLE).unwrap();
        assert_eq!(
            before,
            JobQueue {
                adds: 120.0,
                wait_seconds: 30.5,
                waits: 118.0,
                work_seconds: 4.75,
                syncs: 117.0
            }
        );
        let after = JobQueue {
            adds: 220.0,
            wait_seconds: 80.5,
            waits: 218.0,
            work_seconds: 9.75,
            syncs: 217.0,
        };
        let r = report(&before, &after, 10.0);
        assert_eq!(r["syncs"], 100.0);
        assert_eq!(r["waitMeanSeconds"], 0.5);
        assert_eq!(r["syncMeanSeconds"], 0.05);
        assert_eq!(r["busyWorkersMean"], 0.5);
        assert_eq!(report(&after, &after, 10.0)["syncMeanSeconds"], 0.0);
    }

    #[test]
    fn a_missing_or_unreadable_sample_is_named() {
        let err = read(&SAMPLE.replace(r#"workqueue_adds_total{name="job"} 120"#, "")).unwrap_err();
        assert!(err.contains(r#"workqueue_adds_total{name="job"}"#), "{err}");
        let err = read(&SAMPLE.replace("} 4.75", "} many")).unwrap_err();
        assert!(
            err.contains("cannot read this workqueue_work_duration_seconds_sum sample")
                && err.contains("many"),
            "{err}"
        );
    }
}
