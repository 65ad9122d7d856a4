//! The apiserver's own request counter, `apiserver_request_total`, read from its `/metrics` and summed by verb and
//! resource (with subresource), so two readings give the requests made in between.
//!
//! Read here rather than with prometheus-parse (which the operator uses for a trainer's metrics): its 0.2 splits
//! labels at every `,` and `=` and silently drops a pair it cannot split, and the apiserver's values hold both
//! (`contentType="application/vnd.kubernetes.protobuf;stream=watch"`).

use std::collections::BTreeMap;

/// Requests by (verb, resource[/subresource]).
pub type RequestCounts = BTreeMap<(String, String), f64>;

/// Sums `apiserver_request_total` over every label but verb, resource and subresource. Lines of other metrics are
/// ignored; a sample of this one that does not parse is an error naming it.
pub fn request_counts(exposition: &str) -> Result<RequestCounts, String> {
    let mut counts = RequestCounts::new();
    for line in exposition.lines() {
        let Some(read) = sample(line, "apiserver_request_total") else {
            continue;
        };
        let (labels, value) = read?;
        let label = |name: &str| labels.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let verb = label("verb")
            .ok_or_else(|| format!("cannot read this apiserver_request_total sample: {line:?}"))?;
        let resource = label("resource").unwrap_or_default();
        let key = match label("subresource").unwrap_or_default() {
            "" => resource.to_string(),
            subresource => format!("{resource}/{subresource}"),
        };
        *counts.entry((verb.to_string(), key)).or_default() += value;
    }
    Ok(counts)
}

/// Objects of `resource` (no subresource) the apiserver created since it started: `POST`s answered 201 in
/// `apiserver_request_total`. Counting what was created, not what was asked for, tells a duplicate creation from
/// one the apiserver refused (409) because the object existed.
pub fn created(exposition: &str, resource: &str) -> Result<f64, String> {
    let mut total = 0.0;
    for line in exposition.lines() {
        let Some(read) = sample(line, "apiserver_request_total") else {
            continue;
        };
        let (labels, value) = read?;
        let label = |name: &str| {
            labels
                .iter()
                .find(|(k, _)| *k == name)
                .map_or("", |(_, v)| *v)
        };
        if label("verb") == "POST"
            && label("resource") == resource
            && label("subresource").is_empty()
            && label("code") == "201"
        {
            total += value;
        }
    }
    Ok(total)
}

/// Labels as (name, value without its quotes) and the value of a sample.
pub(crate) type Sample<'a> = (Vec<(&'a str, &'a str)>, f64);

/// `line` read as a sample of `metric`: `None` when it is not one (another metric, a comment), an error quoting it
/// when it is one that does not parse.
pub(crate) fn sample<'a>(line: &'a str, metric: &str) -> Option<Result<Sample<'a>, String>> {
    let rest = line.strip_prefix(metric)?.strip_prefix('{')?;
    let bad = || format!("cannot read this {metric} sample: {line:?}");
    let read = || {
        let (labels, value) = rest.rsplit_once("} ").ok_or_else(bad)?;
        let value: f64 = value.trim().parse().map_err(|_| bad())?;
        let labels = (split_labels(labels).into_iter())
            .map(|pair| {
                let (k, v) = pair.split_once('=').ok_or_else(bad)?;
                Ok((k, v.trim_matches('"')))
            })
            .collect::<Result<_, String>>()?;
        Ok((labels, value))
    };
    Some(read())
}

/// Splits `a="x",b="y,z"` at the commas between labels (values may hold commas).
fn split_labels(labels: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            '\\' if quoted => escaped = !escaped,
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                out.push(&labels[start..i]);
                start = i + 1;
            }
            _ => escaped = false,
        }
        if c != '\\' {
            escaped = false;
        }
    }
    if start < labels.len() {
        out.push(&labels[start..]);
    }
    out
}

/// `after - before`, dropping what did not change.
pub fn difference(before: &RequestCounts, after: &RequestCounts) -> RequestCounts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="batch",resource="jobs",scope="namespace",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="409",component="apiserver",contentType="application/json",dry_run="",group="batch",resource="jobs",scope="namespace",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="seedsweep.dev",resource="seedsweeps",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 7
apiserver_request_total{code="0",component="apiserver",contentType="application/vnd.kubernetes.protobuf;stream=watch",dry_run="",group="batch",resource="jobs",scope="namespace",subresource="",verb="WATCH",version="v1"} 2
apiserver_request_count{verb="GET"} 99
"#;

    #[test]
    fn counts_are_summed_by_verb_and_resource() {
        let c = request_counts(SAMPLE).unwrap();
        assert_eq!(c[&("POST".into(), "jobs".into())], 4.0);
        assert_eq!(c[&("PATCH".into(), "seedsweeps/status".into())], 7.0);
        // A label value holding `=` and `;` (what prometheus-parse 0.2 would drop).
        assert_eq!(c[&("WATCH".into(), "jobs".into())], 2.0);
        assert_eq!(c.len(), 3);
        let before = c.clone();
        let after = request_counts(&SAMPLE.replace("} 7", "} 10")).unwrap();
        let d = difference(&before, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d[&("PATCH".into(), "seedsweeps/status".into())], 3.0);
    }

    #[test]
    fn creations_are_posts_answered_201() {
        let text = SAMPLE.replace("code=\"200\",component=\"apiserver\",contentType=\"application/json\",dry_run=\"\",group=\"batch\"", "code=\"201\",component=\"apiserver\",contentType=\"application/json\",dry_run=\"\",group=\"batch\"");
        assert_eq!(created(&text, "jobs").unwrap(), 3.0);
        assert_eq!(created(&text, "pods").unwrap(), 0.0);
        assert!(created("apiserver_request_total{verb=\"POST\"} x\n", "jobs").is_err());
    }

    #[test]
    fn a_sample_that_does_not_parse_is_named() {
        let e = request_counts("apiserver_request_total{verb=\"GET\"} x\n").unwrap_err();
        assert!(e.contains("verb=\\\"GET\\\""), "{e}");
        let labels = split_labels(r#"a="x,y",b="\"q\"",c="""#);
        assert_eq!(labels, vec![r#"a="x,y""#, r#"b="\"q\"""#, r#"c="""#]);
    }
}
