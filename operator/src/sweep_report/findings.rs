//! The headline findings in a few lines of plain words: the seed spreads, the ANOVA verdicts and how early scores
//! predict final ones. `seedsweep status` prints them under its summary; the report opens with them.

use seedsweep_crds::statistics::{AnovaEffect, BestVsWorst, RankCorrelationPoint, SweepStatistics};

/// The significance level the verdicts use (the paper's).
pub const ALPHA: f64 = 0.05;

/// Lines (no trailing newline) for the statistics of a sweep whose rungs sit at `rung_fractions`.
pub fn headline(statistics: &SweepStatistics, rung_fractions: &[f64]) -> Vec<String> {
    let mut lines = Vec::new();
    match &statistics.grid {
        Some(grid) => {
            let s = &grid.spread;
            lines.push(format!(
                "seed effects ({} WI × {} DO finished grid): expected std due to WI {:.4}, due to DO {:.4}, overall {:.4}",
                grid.wi_seeds.len(),
                grid.do_seeds.len(),
                s.expected_std_due_to_wi,
                s.expected_std_due_to_do,
                s.std
            ));
            lines.push(format!(
                "two-way ANOVA: weight init {}; data order {}",
                verdict(&grid.anova.weight_init),
                verdict(&grid.anova.data_order)
            ));
            lines.push(format!(
                "best vs worst seed: WI {}; DO {}",
                best_vs_worst(&grid.wi_best_vs_worst),
                best_vs_worst(&grid.do_best_vs_worst)
            ));
        }
        None => lines.push(format!(
            "seed effects: not available yet ({})",
            statistics
                .grid_unavailable_reason
                .as_deref()
                .unwrap_or("no complete grid of finished trials")
        )),
    }
    let points = early_points(&statistics.early_vs_final, rung_fractions);
    if points.is_empty() {
        lines.push(
            "early vs final: not available yet (needs 3 finished trials evaluated at the same point)".to_string(),
        );
    } else {
        let shown: Vec<String> = points
            .iter()
            .map(|p| {
                format!(
                    "rho {} at {:.0}% ({} trials)",
                    p.rho.map_or("undefined".to_string(), |r| format!("{r:.2}")),
                    p.progress * 100.0,
                    p.n
                )
            })
            .collect();
        lines.push(format!("early vs final score: {}", shown.join(", ")));
    }
    lines
}

/// "matters (F 14.99, p 0.0034)" or "no significant effect (F 3.77, p 0.087)" at [`ALPHA`].
pub fn verdict(effect: &AnovaEffect) -> String {
    match (effect.f, effect.p_value) {
        (Some(f), Some(p)) => format!(
            "{} (F {f:.2}, p {})",
            if p < ALPHA {
                "significant"
            } else {
                "not significant"
            },
            p_value(p)
        ),
        _ => "undefined (no residual variation)".to_string(),
    }
}

fn best_vs_worst(b: &BestVsWorst) -> String {
    format!(
        "{} (mean {:.4}) vs {} ({:.4}), {}",
        b.best_seed,
        b.best_mean,
        b.worst_seed,
        b.worst_mean,
        b.anova
            .between
            .p_value
            .map_or("p undefined".to_string(), |p| format!("p {}", p_value(p)))
    )
}

/// A p-value to about two significant digits, in scientific notation when tiny.
pub fn p_value(p: f64) -> String {
    if p == 0.0 {
        "0".to_string()
    } else if p < 1e-3 {
        format!("{p:.1e}")
    } else if p < 0.01 {
        format!("{p:.4}")
    } else {
        format!("{p:.3}")
    }
}

/// The correlation points worth a line: the first at or after each rung, else at a quarter, half and three
/// quarters of training; never the final evaluation itself (it predicts itself).
fn early_points(
    points: &[RankCorrelationPoint],
    rung_fractions: &[f64],
) -> Vec<RankCorrelationPoint> {
    let targets: Vec<f64> = if rung_fractions.is_empty() {
        vec![0.25, 0.5, 0.75]
    } else {
        rung_fractions.to_vec()
    };
    let mut chosen: Vec<RankCorrelationPoint> = Vec::new();
    for target in targets {
        if let Some(p) = points
            .iter()
            .filter(|p| p.progress < 1.0 - 1e-9)
            .find(|p| p.progress + 1e-9 >= target)
            && !chosen.iter().any(|c| c.progress == p.progress)
        {
            chosen.push(p.clone());
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stats::{TrialScores, compute};

    /// 4 WI × 3 DO seeds whose two-way ANOVA statsmodels puts at p 0.0034 (WI) and 0.087 (DO), each trial
    /// evaluated at half and at the end of training.
    fn statistics() -> SweepStatistics {
        #[rustfmt::skip]
        let scores = [
            0.842, 0.861, 0.853,
            0.815, 0.829, 0.840,
            0.871, 0.866, 0.880,
            0.833, 0.858, 0.845,
        ];
        let trials: Vec<TrialScores> = (0..12)
            .map(|i| TrialScores {
                wi_seed: 11 + i as u64 / 3,
                do_seed: 101 + i as u64 % 3,
                final_score: Some(scores[i]),
                evals: vec![(0.5, scores[(i + 5) % 12]), (1.0, scores[i])],
                steps_done: 100,
                total_steps: 100,
            })
            .collect();
        compute(&trials)
    }

    #[test]
    fn the_headline_gives_spreads_verdicts_and_early_rho() {
        let lines = headline(&statistics(), &[0.5]);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].starts_with(
                "seed effects (4 WI × 3 DO finished grid): expected std due to WI 0.0193"
            ),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1],
            "two-way ANOVA: weight init significant (F 14.99, p 0.0034); data order not significant (F 3.77, p 0.087)"
        );
        assert!(lines[2].starts_with(
            "best vs worst seed: WI 13 (mean 0.8723) vs 12 (0.8280), p 0.0060; DO 103"
        ));
        assert!(
            lines[3].starts_with("early vs final score: rho "),
            "{}",
            lines[3]
        );
        assert!(lines[3].ends_with("at 50% (12 trials)"), "{}", lines[3]);
    }

    #[test]
    fn without_finished_trials_the_headline_says_what_is_missing() {
        let lines = headline(&compute(&[]), &[]);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0]
                .starts_with("seed effects: not available yet (no trial has a finite final score")
        );
        assert!(lines[1].starts_with("early vs final: not available yet"));
    }

    #[test]
    fn p_values_read_at_a_glance() {
        assert_eq!(
            [0.0, 2.5e-7, 0.0034073, 0.087153, 0.5].map(p_value),
            ["0", "2.5e-7", "0.0034", "0.087", "0.500"]
        );
    }
}
