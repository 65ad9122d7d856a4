//! The report's pages: what its document shows, in order — the findings, each figure with its tables, the compute
//! and the trials — rendered by [`super::document`] as a self-contained HTML page or as Markdown. Every number
//! shown comes from the [`SweepReport`]; this module only formats.

use super::document::{self, Block, opt, percent, score, table};
use super::figures::Figure;
use super::findings::{self, p_value};
use super::model::SweepReport;
use crate::engine::whatif::WhatIfOutcome;
use seedsweep_crds::statistics::{AnovaEffect, AnovaResidual, BestVsWorst};
use seedsweep_crds::sweep::{EarlyDiscardSpec, RungSpec};

/// "25% keep 2" for a setting, "no discarding" for none.
fn describe_setting(setting: Option<&EarlyDiscardSpec>) -> String {
    let Some(setting) = setting else {
        return "no discarding".to_string();
    };
    let rung = |r: &RungSpec| match (r.keep_count, r.keep_fraction) {
        (Some(k), _) => format!("at {} keep {k}", percent(r.at_fraction)),
        (None, Some(q)) => format!("at {} keep {}", percent(r.at_fraction), percent(q)),
        (None, None) => format!("at {} keep all", percent(r.at_fraction)),
    };
    setting
        .rungs
        .iter()
        .map(rung)
        .collect::<Vec<_>>()
        .join(", then ")
}

fn document(report: &SweepReport) -> Vec<Block> {
    let statistics = report.statistics();
    let metric = report.objective.metric.as_str();
    let c = &report.status.counts;
    let mut doc = vec![Block::Para(format!(
        "Sweep **{}** ({}), objective {metric} ({:?}), phase {:?}: {} trials — {} trained to completion, {} \
         discarded, {} diverged, {} failed, {} running or waiting, {} pending.",
        report.sweep,
        report.origin,
        report.objective.direction,
        report.status.phase,
        c.total,
        c.succeeded,
        c.discarded,
        c.diverged,
        c.failed,
        c.running + c.paused + c.stuck,
        c.pending
    ))];
    doc.push(Block::Para(match &report.status.best_trial {
        Some(b) => format!(
            "Best trial: **{}** (weight-init seed {}, data-order seed {}), {metric} {}.",
            b.name,
            b.weight_init,
            b.data_order,
            score(b.score)
        ),
        None => "No trial has been kept to completion yet.".to_string(),
    }));
    let rung_fractions: Vec<f64> = report.rungs.iter().map(|r| r.at_fraction).collect();
    doc.push(Block::Heading("Findings".into()));
    doc.push(Block::List(findings::headline(statistics, &rung_fractions)));
    if !report.missing.is_empty() {
        doc.push(Block::Heading("What this report cannot show yet".into()));
        doc.push(Block::List(report.missing.clone()));
    }

    doc.push(Block::Heading(
        "Expected best score vs number of trials".into(),
    ));
    doc.push(Block::Figure("expected_max"));
    let compute = &report.compute;
    if let (Some(runs), Some(best)) = (compute.full_runs_spent, &report.status.best_trial) {
        let same = match &compute.expected_best_at_same_compute {
            Some(p) => format!(
                "Training trials to completion with the same compute ({} full runs) would be expected to find {} ± {}.",
                p.n,
                score(p.mean),
                score(p.std)
            ),
            None => "Too few trials finished to say what training everything would find with the same compute."
                .to_string(),
        };
        doc.push(Block::Para(format!(
            "What early discarding delivered: this sweep spent {} steps, as much as {runs:.2} full training runs, and \
             found {} with its best trial. {same}",
            compute.accounting.steps_spent,
            score(best.score)
        )));
    }

    doc.push(Block::Heading("Weight initialization × data order".into()));
    doc.push(Block::Figure("heatmap"));

    doc.push(Block::Heading("Seed effects".into()));
    doc.push(Block::Figure("seed_effects"));
    match &statistics.grid {
        Some(grid) => {
            doc.push(Block::Para(format!(
                "On the complete {} WI × {} DO grid of finished trials ({} trials used, {} finished trials left out, \
                 {} cells of the full grid missing). Standard deviations with ddof = {}.",
                grid.wi_seeds.len(),
                grid.do_seeds.len(),
                grid.trials_used,
                grid.finished_trials_left_out,
                grid.missing_cells,
                grid.spread.ddof
            )));
            doc.push(table(
                &["expected std due to", "value"],
                vec![
                    vec![
                        "weight initialization (WI)".into(),
                        score(grid.spread.expected_std_due_to_wi),
                    ],
                    vec![
                        "data order (DO)".into(),
                        score(grid.spread.expected_std_due_to_do),
                    ],
                    vec!["all (overall std)".into(), score(grid.spread.std)],
                ],
            ));
            let a = &grid.anova;
            doc.push(Block::Para(
                "Two-way ANOVA (additive model, one trial per cell): does the seed of each factor move the score more \
                 than chance would?"
                    .into(),
            ));
            doc.push(table(
                &[
                    "source",
                    "sum of squares",
                    "df",
                    "mean square",
                    "F",
                    "p",
                    "verdict (p < 0.05)",
                ],
                vec![
                    effect_row("weight init", &a.weight_init),
                    effect_row("data order", &a.data_order),
                    residual_row("residual", &a.residual),
                    vec![
                        "total".into(),
                        format!("{:.6}", a.total_sum_of_squares),
                        a.total_df.to_string(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ],
                ],
            ));
            doc.push(Block::Para(
                "Best vs worst seed: the seed with the best mean score against the one with the worst, by a one-way \
                 ANOVA on their scores across the other factor's seeds (optimistic: the two were picked as extremes)."
                    .into(),
            ));
            doc.push(table(
                &["factor", "best seed (mean)", "worst seed (mean)", "F", "p"],
                vec![
                    best_worst_row("weight init", &grid.wi_best_vs_worst),
                    best_worst_row("data order", &grid.do_best_vs_worst),
                ],
            ));
        }
        None => doc.push(Block::Para(format!(
            "No seed-effect analysis yet: {}.",
            statistics
                .grid_unavailable_reason
                .as_deref()
                .unwrap_or("no complete grid of finished trials")
        ))),
    }

    doc.push(Block::Heading("Learning curves".into()));
    doc.push(Block::Figure("learning_curves"));
    if statistics.early_vs_final.is_empty() {
        doc.push(Block::Para(
            "No early-vs-final correlation yet: it needs 3 finished trials evaluated at the same point.".into(),
        ));
    } else {
        doc.push(Block::Para(
            "How well the score at each evaluation point predicts the final score: Spearman's rank correlation over \
             the finished trials evaluated there (1: the ranking at that point is already the final one)."
                .into(),
        ));
        doc.push(table(
            &["progress", "trials", "rho", "p"],
            (statistics.early_vs_final.iter())
                .map(|p| {
                    vec![
                        percent(p.progress),
                        p.n.to_string(),
                        opt(p.rho, |r| format!("{r:.3}")),
                        opt(p.p_value, p_value),
                    ]
                })
                .collect(),
        ));
    }

    doc.push(Block::Heading("Compute".into()));
    let a = &compute.accounting;
    doc.push(table(
        &["", "training steps"],
        vec![
            vec!["spent".into(), a.steps_spent.to_string()],
            vec![
                "training every trial to completion".into(),
                a.steps_without_discarding.to_string(),
            ],
            vec!["saved".into(), opt(a.saving_fraction, percent)],
            vec![
                "one full training run".into(),
                opt(compute.full_run_steps, |s| s.to_string()),
            ],
        ],
    ));
    doc.push(Block::Para(format!(
        "Would the cut have lost the best trial? {}.",
        compute.best_lost_explanation
    )));

    doc.push(Block::Heading("What-if discarding".into()));
    doc.push(Block::Figure("what_if"));
    let w = &report.what_if;
    doc.push(Block::Para(format!(
        "Each setting is the engine's own policy replayed on this sweep's recorded evaluations, in the order they \
         arrived. A trial can only be ranked at a rung it was observed past: {}. A setting that would train a trial \
         past the end of its record cannot know how it ends; such settings are marked and count those trials as \
         stopped there.",
        (w.observed_past.iter())
            .map(|o| format!(
                "{} of {} trials reached {} ({} of them trained to completion)",
                o.trials,
                report.status.counts.total,
                percent(o.fraction),
                o.complete
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )));
    doc.push(table(
        &[
            "#",
            "setting",
            "kept",
            "discarded",
            "best found",
            "steps",
            "full runs",
            "best lost",
            "unknown past record",
        ],
        (w.settings.iter().enumerate())
            .map(|(i, s)| what_if_row(i + 1, s, compute.full_run_steps))
            .collect(),
    ));

    doc.push(Block::Heading("Trials".into()));
    doc.push(table(
        &[
            "trial", "WI", "DO", "phase", "final", "latest", "steps", "why",
        ],
        (report.status.trials.iter())
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.weight_init.to_string(),
                    t.data_order.to_string(),
                    format!("{:?}", t.phase),
                    opt(t.final_score, score),
                    opt(t.latest_score, score),
                    t.steps_done.to_string(),
                    t.reason.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    ));
    doc
}

fn effect_row(name: &str, e: &AnovaEffect) -> Vec<String> {
    vec![
        name.into(),
        format!("{:.6}", e.sum_of_squares),
        e.df.to_string(),
        format!("{:.6}", e.mean_square),
        opt(e.f, |f| format!("{f:.3}")),
        opt(e.p_value, p_value),
        match e.p_value {
            Some(p) if p < findings::ALPHA => "significant".into(),
            Some(_) => "not significant".into(),
            None => "undefined".into(),
        },
    ]
}

fn residual_row(name: &str, r: &AnovaResidual) -> Vec<String> {
    vec![
        name.into(),
        format!("{:.6}", r.sum_of_squares),
        r.df.to_string(),
        format!("{:.6}", r.mean_square),
        String::new(),
        String::new(),
        String::new(),
    ]
}

fn best_worst_row(name: &str, b: &BestVsWorst) -> Vec<String> {
    vec![
        name.into(),
        format!("{} ({})", b.best_seed, score(b.best_mean)),
        format!("{} ({})", b.worst_seed, score(b.worst_mean)),
        opt(b.anova.between.f, |f| format!("{f:.3}")),
        opt(b.anova.between.p_value, p_value),
    ]
}

fn what_if_row(row: usize, s: &WhatIfOutcome, full_run: Option<u64>) -> Vec<String> {
    let mut name = describe_setting(s.early_discard.as_ref());
    if s.own_setting {
        name.push_str(" (this sweep)");
    }
    vec![
        row.to_string(),
        name,
        s.kept.len().to_string(),
        s.discarded.len().to_string(),
        opt(s.best.as_ref(), |b| {
            format!("{} ({})", score(b.score), b.name)
        }),
        s.steps_spent.to_string(),
        opt(full_run, |f| {
            format!("{:.2}", s.steps_spent as f64 / f as f64)
        }),
        match s.best_lost {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => "unknown".into(),
        },
        beyond_record(&s.beyond_record),
    ]
}

/// "6 trials (records end at 25%)": how many, and where their records end (`report.json` names them).
fn beyond_record(trials: &[(String, f64)]) -> String {
    if trials.is_empty() {
        return String::new();
    }
    let mut ends: Vec<String> = trials.iter().map(|(_, end)| percent(*end)).collect();
    ends.dedup();
    ends.sort();
    ends.dedup();
    format!(
        "{} trial{} (record{} ends at {})",
        trials.len(),
        if trials.len() == 1 { "" } else { "s" },
        if trials.len() == 1 { "" } else { "s" },
        ends.join(", ")
    )
}

/// One self-contained HTML page: styles inline, figures as inline SVG.
pub fn html(report: &SweepReport, figures: &[Figure]) -> String {
    document::html(&title(report), document(report), figures)
}

/// Markdown, the figures referenced as the PNG files beside it.
pub fn markdown(report: &SweepReport, figures: &[Figure]) -> String {
    document::markdown(&title(report), document(report), figures)
}

fn title(report: &SweepReport) -> String {
    format!("SeedSweep report: {}", report.sweep)
}
