//! The comparison's pages: the sweeps' table, their expected-best curves and whose is higher, and the weight-init
//! seeds ranked across them, rendered by [`crate::sweep_report::document`]. Every number shown comes from the
//! [`Comparison`]; this module only formats.

use super::figure::EXPECTED_MAX;
use super::{ComparedSweep, Comparison, WeightInitRanking};
use crate::sweep_report::document::{self, Block, opt, percent, score, table};
use crate::sweep_report::figures::Figure;
use crate::sweep_report::findings;
use seedsweep_crds::sweep::Direction;

/// One self-contained HTML page: styles inline, the figure as inline SVG.
pub fn html(comparison: &Comparison, figures: &[Figure]) -> String {
    document::html(&title(comparison), document(comparison), figures)
}

/// Markdown, the figure referenced as the PNG file beside it.
pub fn markdown(comparison: &Comparison, figures: &[Figure]) -> String {
    document::markdown(&title(comparison), document(comparison), figures)
}

fn title(comparison: &Comparison) -> String {
    let names: Vec<&str> = comparison.sweeps.iter().map(|s| s.name.as_str()).collect();
    format!("SeedSweep comparison: {}", names.join(", "))
}

fn document(comparison: &Comparison) -> Vec<Block> {
    let metric = comparison.metric;
    let mut doc = vec![Block::Para(format!(
        "{} sweeps compared on {metric}: {}.",
        comparison.sweeps.len(),
        (comparison.sweeps.iter())
            .map(|s| format!("**{}** ({})", s.name, s.origin))
            .collect::<Vec<_>>()
            .join(", ")
    ))];
    if !comparison.missing.is_empty() {
        doc.push(Block::Heading(
            "What this comparison cannot show yet".into(),
        ));
        doc.push(Block::List(comparison.missing.clone()));
    }

    doc.push(Block::Heading("The sweeps".into()));
    doc.push(Block::Para(format!(
        "Final {metric} of the trials trained to completion (mean ± standard deviation); expected standard deviation \
         due to each seed and the two-way ANOVA verdicts (p < {}) on each sweep's complete WI × DO grid of finished \
         trials; Spearman's rho between the score at the earliest evaluation point and the final score; the share \
         of training steps early discarding saved.",
        findings::ALPHA
    )));
    doc.push(table(
        &[
            "sweep",
            "origin",
            "task",
            "metric",
            "trials",
            "finished",
            "best trial",
            "mean ± std",
            "std due to WI",
            "std due to DO",
            "WI (two-way ANOVA)",
            "DO (two-way ANOVA)",
            "early vs final",
            "compute saved",
        ],
        comparison.sweeps.iter().map(sweep_row).collect(),
    ));

    doc.push(Block::Heading(
        "Expected best score vs number of trials".into(),
    ));
    doc.push(Block::Figure(EXPECTED_MAX));
    doc.push(Block::Para(
        "Whose curve is higher, from which n on: each pair of sweeps over the n both curves have (all n up to the \
         smaller sweep's finished trials; past 1024 finished trials the engine keeps only some n, and only those \
         both curves have are compared)."
            .into(),
    ));
    doc.push(Block::List(
        (comparison.curve_orders.iter())
            .map(|o| {
                if o.crossings > 1 {
                    format!("{} (the curves cross {} times)", o.statement, o.crossings)
                } else {
                    o.statement.clone()
                }
            })
            .collect(),
    ));

    if let Some(ranked) = &comparison.weight_init {
        weight_init(&mut doc, ranked, metric.as_str());
    }
    doc
}

fn sweep_row(s: &ComparedSweep) -> Vec<String> {
    let direction = match s.objective.direction {
        Direction::Maximize => "max",
        Direction::Minimize => "min",
    };
    let effects = s.seed_effects.as_ref();
    vec![
        s.name.clone(),
        s.origin.clone(),
        s.task.to_string(),
        format!("{} ({direction})", s.objective.metric),
        s.counts.total.to_string(),
        s.finished_trials.to_string(),
        opt(s.best_trial.as_ref(), |b| {
            format!("{} ({})", b.name, score(b.score))
        }),
        opt(s.scores.as_ref(), |sc| match sc.std {
            Some(std) => format!("{} ± {}", score(sc.mean), score(std)),
            None => format!("{} (one trial)", score(sc.mean)),
        }),
        opt(effects, |e| score(e.expected_std_due_to_wi)),
        opt(effects, |e| score(e.expected_std_due_to_do)),
        opt(effects, |e| findings::verdict(&e.weight_init)),
        opt(effects, |e| findings::verdict(&e.data_order)),
        opt(s.earliest_early_vs_final.as_ref(), |p| {
            format!(
                "rho {} at {} ({} trials)",
                opt(p.rho, |r| format!("{r:.2}")),
                percent(p.progress),
                p.n
            )
        }),
        opt(s.saving_fraction, percent),
    ]
}

fn weight_init(doc: &mut Vec<Block>, ranked: &WeightInitRanking, metric: &str) {
    let ranking = &ranked.ranking;
    let Some(best) = ranking.seeds.first() else {
        return;
    };
    doc.push(Block::Heading("Weight-init seeds across the sweeps".into()));
    doc.push(Block::Para(format!(
        "Each sweep ranks its weight-init seeds by their mean latest {metric} (1: the best); across sweeps a seed's \
         standing is its mean relative rank, (rank − 1) / (seeds ranked − 1): 0 for the best seed of every sweep, \
         1 for the worst. Seeds ranked in more sweeps come first. Best across the sweeps: **seed {}** (mean \
         relative rank {:.2}, ranked in {} of {} sweeps).",
        ranked.best_seed,
        best.mean_relative_rank,
        best.sweeps_ranked,
        ranking.sweeps.len()
    )));
    let mut header = vec![
        "seed".to_string(),
        "mean relative rank".into(),
        "sweeps ranked".into(),
    ];
    header.extend((ranking.sweeps.iter()).map(|s| format!("{s}: rank/of (score)")));
    let rows = (ranking.seeds.iter())
        .map(|seed| {
            let mut row = vec![
                seed.seed.to_string(),
                format!("{:.3}", seed.mean_relative_rank),
                seed.sweeps_ranked.to_string(),
            ];
            row.extend(seed.ranks.iter().map(|r| {
                opt(r.as_ref(), |r| {
                    format!("{}/{} ({})", rank(r.rank), r.of, score(r.score))
                })
            }));
            row
        })
        .collect();
    doc.push(Block::Table { header, rows });
    let from = &ranked.from_sweeps;
    let top: Vec<String> = (ranking.seeds.iter())
        .take(from.top as usize)
        .map(|s| s.seed.to_string())
        .collect();
    doc.push(Block::Para(format!(
        "To reuse them, a new sweep's `spec.seeds.weightInit.fromSweeps: {{sweeps: [{}], top: {}}}` takes the top {} \
         seeds of this ranking ({}) — or any `top: k` — ranked the same way when it starts (locally the sweeps' \
         state directories must sit beside the new sweep's, named as the sweeps; in a cluster the SeedSweeps must \
         be in its namespace).",
        from.sweeps.join(", "),
        from.top,
        from.top,
        top.join(", ")
    )));
}

/// A rank as the engine gives it: whole, or halfway between two for a tie.
fn rank(r: f64) -> String {
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}
