//! `seedsweep report`: a sweep's analyses as pictures and tables — expected best score vs trials, the WI × DO grid,
//! seed effects, learning curves, compute and what-if discarding — for a local state directory or a SeedSweep in a
//! cluster; with `--compare`, several sweeps side by side ([`compare`]). Every number comes from the engine
//! ([`model`]); figures ([`figures`]) and pages ([`page`], rendered by [`document`]) only draw and format them.

pub mod compare;
pub mod document;
pub mod figures;
pub mod findings;
pub mod model;
pub mod page;
pub mod source;

use anyhow::Context;
use clap::{ArgGroup, ValueEnum};
use figures::Figure;
use source::SweepSource;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["state_dir", "sweep", "compare"])))]
#[command(group(ArgGroup::new("cluster").args(["sweep", "compare"])))]
pub struct ReportArgs {
    /// A local sweep's state directory (as `seedsweep run --state-dir` used).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// A SeedSweep in the cluster, by name.
    #[arg(long)]
    pub sweep: Option<String>,
    /// Compare several sweeps: each a state directory, or ssw/NAME (seedsweep/NAME) for a SeedSweep in the cluster.
    #[arg(long, num_args = 2.., value_name = "SRC")]
    pub compare: Option<Vec<SweepSource>>,
    /// The SeedSweeps' namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, requires = "cluster")]
    pub namespace: Option<String>,
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The directory to write into (default: ./report-<sweep>, with --compare ./report-compare).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write only this page (html and md come with their figures; default: all three).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Html,
    Md,
    Json,
}

/// Reads the sweep (or, with `--compare`, the sweeps), writes the report, and says where. Exit status 1 for a
/// partial report (a sweep with no trial trained to completion yet), after writing what the data allow.
pub fn run(args: ReportArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let source = match (&args.state_dir, &args.sweep, &args.compare) {
        (_, _, Some(sources)) => return run_compare(sources, &args, out),
        (Some(dir), _, None) => SweepSource::StateDir(dir.clone()),
        (None, Some(name), None) => SweepSource::Cluster(name.clone()),
        (None, None, None) => {
            anyhow::bail!("pass --state-dir DIR, --sweep NAME or --compare SRC SRC...")
        }
    };
    let loaded = source.load(args.namespace.as_deref(), args.kubeconfig.as_deref())?;
    let report = model::build(&loaded);
    let dir =
        (args.out.clone()).unwrap_or_else(|| PathBuf::from(format!("report-{}", report.sweep)));
    let written = write(&report, &dir, args.format)?;
    writeln!(
        out,
        "report of sweep {} ({}) in {}: {}",
        report.sweep,
        loaded.origin,
        dir.display(),
        written.join(", ")
    )?;
    if report.has_finished_trial() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("partial report of sweep {}:", report.sweep);
    for line in &report.missing {
        eprintln!("  {line}");
    }
    Ok(ExitCode::from(1))
}

/// `--compare`: reads every source (refusing one given twice before reading any), compares them and writes the
/// comparison.
fn run_compare(
    sources: &[SweepSource],
    args: &ReportArgs,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    for (i, a) in sources.iter().enumerate() {
        if let Some(b) = sources[i + 1..]
            .iter()
            .find(|b| b.identity() == a.identity())
        {
            anyhow::bail!("--compare: the same sweep is given twice ({a} and {b})");
        }
    }
    let loaded = (sources.iter())
        .map(|s| s.load(args.namespace.as_deref(), args.kubeconfig.as_deref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let comparison = compare::build(&loaded)?;
    let dir = (args.out.clone()).unwrap_or_else(|| PathBuf::from("report-compare"));
    let written = write_compare(&comparison, &dir, args.format)?;
    writeln!(
        out,
        "comparison of sweeps {} in {}: {}",
        (comparison.sweeps.iter())
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        dir.display(),
        written.join(", ")
    )?;
    if comparison.missing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "{}",
        if comparison.is_partial() {
            "partial comparison:"
        } else {
            "the comparison leaves out:"
        }
    );
    for line in &comparison.missing {
        eprintln!("  {line}");
    }
    Ok(ExitCode::from(if comparison.is_partial() { 1 } else { 0 }))
}

/// Writes the report's pages (all, or the one `format` names) and the figures they show; returns the files' names.
pub fn write(
    report: &model::SweepReport,
    dir: &Path,
    format: Option<Format>,
) -> anyhow::Result<Vec<String>> {
    let pages = Pages {
        stem: "report",
        figures: &|| figures::all(report),
        html: &|f| page::html(report, f),
        markdown: &|f| page::markdown(report, f),
        json: &|| serde_json::to_vec_pretty(report),
    };
    pages.write(dir, format)
}

/// Writes the comparison's pages (all, or the one `format` names) and its figure; returns the files' names.
pub fn write_compare(
    comparison: &compare::Comparison,
    dir: &Path,
    format: Option<Format>,
) -> anyhow::Result<Vec<String>> {
    let pages = Pages {
        stem: "compare",
        figures: &|| compare::figure::all(comparison),
        html: &|f| compare::page::html(comparison, f),
        markdown: &|f| compare::page::markdown(comparison, f),
        json: &|| serde_json::to_vec_pretty(comparison),
    };
    pages.write(dir, format)
}

/// What a report writes: `<stem>.html`, `<stem>.md`, `<stem>.json`, and the figures the first two show.
struct Pages<'a> {
    stem: &'a str,
    figures: &'a dyn Fn() -> anyhow::Result<Vec<Figure>>,
    html: &'a dyn Fn(&[Figure]) -> String,
    markdown: &'a dyn Fn(&[Figure]) -> String,
    json: &'a dyn Fn() -> serde_json::Result<Vec<u8>>,
}

impl Pages<'_> {
    fn write(&self, dir: &Path, format: Option<Format>) -> anyhow::Result<Vec<String>> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the report directory {}", dir.display()))?;
        let mut written = Vec::new();
        let mut put = |name: String, bytes: &[u8]| -> anyhow::Result<()> {
            let path = dir.join(&name);
            std::fs::write(&path, bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written.push(name);
            Ok(())
        };
        let wants = |f: Format| format.is_none_or(|only| only == f);
        let stem = self.stem;
        if wants(Format::Html) || wants(Format::Md) {
            let figures = (self.figures)()?;
            for f in &figures {
                put(format!("{}.svg", f.name), f.svg.as_bytes())?;
                put(format!("{}.png", f.name), &f.png)?;
            }
            if wants(Format::Html) {
                put(format!("{stem}.html"), (self.html)(&figures).as_bytes())?;
            }
            if wants(Format::Md) {
                put(format!("{stem}.md"), (self.markdown)(&figures).as_bytes())?;
            }
        }
        if wants(Format::Json) {
            put(format!("{stem}.json"), &(self.json)()?)?;
        }
        Ok(written)
    }
}
