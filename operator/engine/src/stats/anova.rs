//! Analyses of variance over the seed grid: two-way WI × DO, one-way, and best-vs-worst seed (Dodge et al. 2020 §4.2).

use super::*;

/// Whether a residual sum of squares is zero up to rounding: each residual carries an error of a few ulps of the
/// largest |value|, so anything below that floor is noise, and an F computed from it would be meaningless.
fn negligible(sum_of_squares: f64, observations: usize, scale: f64) -> bool {
    sum_of_squares <= observations as f64 * (8.0 * f64::EPSILON * scale).powi(2)
}

/// Builds an ANOVA effect row, with F and its p-value when the residual mean square is usable.
fn effect(
    sum_of_squares: f64,
    df: usize,
    residual: &AnovaResidual,
    residual_is_zero: bool,
) -> Option<AnovaEffect> {
    let mean_square = finite(sum_of_squares / df as f64)?;
    let f = if residual_is_zero || df == 0 || residual.df == 0 {
        None
    } else {
        finite(mean_square / residual.mean_square).filter(|f| *f >= 0.0)
    };
    let p_value = f.and_then(|f| {
        // statrs evaluates the tail at d1·f / (d1·f + d2), which is NaN (and panics inside statrs) once d1·f
        // overflows; the tail is 0 to double precision long before that.
        if !(df as f64 * f).is_finite() {
            return Some(0.0);
        }
        let distribution = FisherSnedecor::new(df as f64, f64::from(residual.df)).ok()?;
        finite(distribution.sf(f)).map(|p| p.clamp(0.0, 1.0))
    });
    Some(AnovaEffect {
        sum_of_squares,
        df: count(df),
        mean_square,
        f,
        p_value,
    })
}

/// Two-way ANOVA without replication on a complete grid (additive model, no interaction term: with one
/// observation per cell the interaction is the residual). With r WI seeds, c DO seeds, grand mean g, row means
/// rᵢ and column means cⱼ: SS_WI = c·Σ(rᵢ−g)², SS_DO = r·Σ(cⱼ−g)², SS_residual = Σ(xᵢⱼ−rᵢ−cⱼ+g)², with df r−1,
/// c−1 and (r−1)(c−1); F = MS_effect / MS_residual against F(df_effect, df_residual). F and p are `None` when the
/// residual is zero up to rounding. `None` unless the grid has at least 2 × 2 seeds.
pub fn two_way_anova(grid: &SeedGrid) -> Option<TwoWayAnova> {
    let (rows, columns) = (grid.wi_seeds().len(), grid.do_seeds().len());
    if rows < 2 || columns < 2 {
        return None;
    }
    let grand = mean(grid.scores())?;
    let row_means: Vec<f64> = (0..rows)
        .map(|r| mean(grid.row(r)))
        .collect::<Option<_>>()?;
    let column_means: Vec<f64> = (0..columns)
        .map(|c| mean(&grid.column(c)))
        .collect::<Option<_>>()?;
    let squares = |values: &mut dyn Iterator<Item = f64>| {
        sorted_sum(&values.map(|d| d * d).collect::<Vec<_>>())
    };
    let ss_wi = columns as f64 * squares(&mut row_means.iter().map(|m| m - grand));
    let ss_do = rows as f64 * squares(&mut column_means.iter().map(|m| m - grand));
    let ss_total = squares(&mut grid.scores().iter().map(|x| x - grand));
    let ss_residual = squares(&mut (0..rows * columns).map(|i| {
        let (r, c) = (i / columns, i % columns);
        grid.scores()[i] - row_means[r] - column_means[c] + grand
    }));
    let residual_df = (rows - 1) * (columns - 1);
    let residual = AnovaResidual {
        sum_of_squares: finite(ss_residual)?,
        df: count(residual_df),
        mean_square: finite(ss_residual / residual_df as f64)?,
    };
    let scale = grid.scores().iter().fold(0.0_f64, |a, x| a.max(x.abs()));
    let residual_is_zero = negligible(ss_residual, rows * columns, scale);
    Some(TwoWayAnova {
        weight_init: effect(finite(ss_wi)?, rows - 1, &residual, residual_is_zero)?,
        data_order: effect(finite(ss_do)?, columns - 1, &residual, residual_is_zero)?,
        residual,
        total_sum_of_squares: finite(ss_total)?,
        total_df: count(rows * columns - 1),
    })
}

/// One-way ANOVA over k groups: SS_between = Σ nⱼ(mⱼ−g)² with k−1 df, SS_within = ΣΣ(x−mⱼ)² with N−k df,
/// F = MS_between / MS_within against F(k−1, N−k). `None` unless there are at least 2 groups, none empty, all
/// values finite and N > k. F and p are `None` when the within-groups variation is zero up to rounding.
pub fn one_way_anova(groups: &[&[f64]]) -> Option<OneWayAnova> {
    let k = groups.len();
    let observations: usize = groups.iter().map(|g| g.len()).sum();
    if k < 2
        || observations <= k
        || groups
            .iter()
            .any(|g| g.is_empty() || !g.iter().all(|x| x.is_finite()))
    {
        return None;
    }
    let all: Vec<f64> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let grand = mean(&all)?;
    let means: Vec<f64> = groups.iter().map(|g| mean(g)).collect::<Option<_>>()?;
    let between: Vec<f64> = groups
        .iter()
        .zip(&means)
        .map(|(g, m)| g.len() as f64 * (m - grand).powi(2))
        .collect();
    let within: Vec<f64> = groups
        .iter()
        .zip(&means)
        .flat_map(|(g, m)| g.iter().map(move |x| (x - m).powi(2)))
        .collect();
    let (ss_between, ss_within) = (sorted_sum(&between), sorted_sum(&within));
    let within_df = observations - k;
    let residual = AnovaResidual {
        sum_of_squares: finite(ss_within)?,
        df: count(within_df),
        mean_square: finite(ss_within / within_df as f64)?,
    };
    let scale = all.iter().fold(0.0_f64, |a, x| a.max(x.abs()));
    let residual_is_zero = negligible(ss_within, observations, scale);
    Some(OneWayAnova {
        groups: count(k),
        observations: count(observations),
        between: effect(finite(ss_between)?, k - 1, &residual, residual_is_zero)?,
        within: residual,
    })
}

/// A factor of the seed grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    WeightInit,
    DataOrder,
}

/// Dodge et al. 2020 §4.2: the seed of `factor` with the best mean score over the grid's other-factor seeds and
/// the one with the worst, compared by [`one_way_anova`] on their scores across the other factor's seeds. Ties:
/// the smaller seed is the best; the worst is the smaller seed among the rest. `None` unless the grid has at least
/// 2 × 2 seeds. See the module docs for why the p-value is optimistic.
pub fn best_vs_worst(grid: &SeedGrid, factor: Factor) -> Option<BestVsWorst> {
    let (seeds, lines): (&[u64], Vec<Vec<f64>>) = match factor {
        Factor::WeightInit => (
            grid.wi_seeds(),
            (0..grid.wi_seeds().len())
                .map(|r| grid.row(r).to_vec())
                .collect(),
        ),
        Factor::DataOrder => (
            grid.do_seeds(),
            (0..grid.do_seeds().len()).map(|c| grid.column(c)).collect(),
        ),
    };
    if grid.wi_seeds().len() < 2 || grid.do_seeds().len() < 2 {
        return None;
    }
    let means: Vec<f64> = lines.iter().map(|l| mean(l)).collect::<Option<_>>()?;
    // Seeds are ascending, so the first extreme in index order is the smaller seed.
    let best = (0..means.len()).reduce(|a, b| if means[b] > means[a] { b } else { a })?;
    let worst = (0..means.len())
        .filter(|&i| i != best)
        .reduce(|a, b| if means[b] < means[a] { b } else { a })?;
    Some(BestVsWorst {
        best_seed: seeds[best],
        best_mean: finite(means[best])?,
        worst_seed: seeds[worst],
        worst_mean: finite(means[worst])?,
        anova: one_way_anova(&[&lines[best], &lines[worst]])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::*;

    #[test]
    fn one_way_anova_matches_scipy_mussel_example() {
        // McDonald, Handbook of Biological Statistics: shell measurements of Mytilus trossulus at five locations,
        // the example in scipy.stats.f_oneway's documentation. Reference (scipy 1.17.1):
        // F = 7.121019471642449, p = 0.00028122423145345433, df = (4, 39).
        let tillamook = [
            0.0571, 0.0813, 0.0831, 0.0976, 0.0817, 0.0859, 0.0735, 0.0659, 0.0923, 0.0836,
        ];
        let newport = [
            0.0873, 0.0662, 0.0672, 0.0819, 0.0749, 0.0649, 0.0835, 0.0725,
        ];
        let petersburg = [0.0974, 0.1352, 0.0817, 0.1016, 0.0968, 0.1064, 0.105];
        let magadan = [
            0.1033, 0.0915, 0.0781, 0.0685, 0.0677, 0.0697, 0.0764, 0.0689,
        ];
        let tvarminne = [0.0703, 0.1026, 0.0956, 0.0973, 0.1039, 0.1045];
        let anova =
            one_way_anova(&[&tillamook, &newport, &petersburg, &magadan, &tvarminne]).unwrap();
        assert_eq!(
            (
                anova.groups,
                anova.observations,
                anova.between.df,
                anova.within.df
            ),
            (5, 39, 4, 34)
        );
        assert_close(anova.between.f.unwrap(), 7.121019471642449, 1e-10, "F");
        assert_close(
            anova.between.p_value.unwrap(),
            0.00028122423145345433,
            1e-9,
            "p",
        );
    }

    #[test]
    fn one_way_anova_degenerate_inputs() {
        assert!(one_way_anova(&[]).is_none());
        assert!(one_way_anova(&[&[1.0, 2.0]]).is_none(), "one group");
        assert!(
            one_way_anova(&[&[1.0], &[2.0]]).is_none(),
            "N = k: no within df"
        );
        assert!(one_way_anova(&[&[1.0, 2.0], &[]]).is_none(), "empty group");
        assert!(
            one_way_anova(&[&[1.0, f64::NAN], &[2.0, 3.0]]).is_none(),
            "NaN"
        );
        // No within-group variation: F is infinite (or 0/0 when the groups are equal too), so it is absent.
        let separated = one_way_anova(&[&[1.0, 1.0], &[2.0, 2.0]]).unwrap();
        assert_eq!(
            (separated.between.f, separated.between.p_value),
            (None, None)
        );
        assert_close(separated.between.sum_of_squares, 1.0, 1e-12, "SS between");
        let equal = one_way_anova(&[&[0.9, 0.9], &[0.9, 0.9]]).unwrap();
        assert_eq!((equal.between.f, equal.between.p_value), (None, None));
    }

    #[test]
    fn huge_f_does_not_reach_statrs_overflow() {
        // F = 8e307 is finite but d1·F overflows, which would make statrs evaluate its beta function at NaN and
        // panic; the tail probability is 0 at that F anyway.
        let residual = AnovaResidual {
            sum_of_squares: 5.0,
            df: 10,
            mean_square: 0.5,
        };
        let row = effect(1.6e308, 4, &residual, false).unwrap();
        assert_eq!((row.f, row.p_value), (Some(8e307), Some(0.0)));
    }

    #[test]
    fn two_way_anova_matches_statsmodels() {
        // Reference: statsmodels 0.15.0, anova_lm(ols("y ~ C(wi) + C(do)")) on reference_grid():
        //   C(wi)    df 3  SS 0.003021583333333339  F 14.989251756924348  p 0.003407295416076139
        //   C(do)    df 2  SS 0.0005061666666666658 F 3.7664324100867996  p 0.08715343728786293
        //   Residual df 6  SS 0.0004031666666666674 MS 6.719444444444457e-05
        // and numpy: total SS 0.003930916666666675.
        let anova = two_way_anova(&reference_grid()).unwrap();
        assert_eq!(
            (
                anova.weight_init.df,
                anova.data_order.df,
                anova.residual.df,
                anova.total_df
            ),
            (3, 2, 6, 11)
        );
        assert_close(
            anova.weight_init.sum_of_squares,
            0.003021583333333339,
            1e-12,
            "SS WI",
        );
        assert_close(
            anova.data_order.sum_of_squares,
            0.0005061666666666658,
            1e-12,
            "SS DO",
        );
        assert_close(
            anova.residual.sum_of_squares,
            0.0004031666666666674,
            1e-12,
            "SS residual",
        );
        assert_close(
            anova.residual.mean_square,
            6.719444444444457e-05,
            1e-12,
            "MS residual",
        );
        assert_close(
            anova.total_sum_of_squares,
            0.003930916666666675,
            1e-12,
            "SS total",
        );
        assert_close(
            anova.weight_init.f.unwrap(),
            14.989251756924348,
            1e-9,
            "F WI",
        );
        assert_close(
            anova.weight_init.p_value.unwrap(),
            0.003407295416076139,
            1e-9,
            "p WI",
        );
        assert_close(
            anova.data_order.f.unwrap(),
            3.7664324100867996,
            1e-9,
            "F DO",
        );
        assert_close(
            anova.data_order.p_value.unwrap(),
            0.08715343728786293,
            1e-9,
            "p DO",
        );
    }

    #[test]
    fn two_way_anova_degenerate_grids() {
        // Exactly additive data (row effect + column effect): the residual is zero up to rounding, so F would be
        // a ratio of rounding noise; it must be absent while the effects' sums of squares stay.
        let additive: Vec<f64> = (0..3)
            .flat_map(|r| (0..4).map(move |c| 0.5 + 0.1 * f64::from(r) + 0.01 * f64::from(c)))
            .collect();
        let anova =
            two_way_anova(&SeedGrid::new(vec![1, 2, 3], vec![1, 2, 3, 4], additive).unwrap())
                .unwrap();
        assert_eq!(
            (anova.weight_init.f, anova.data_order.p_value),
            (None, None)
        );
        assert_close(
            anova.weight_init.sum_of_squares,
            4.0 * 0.02,
            1e-12,
            "SS WI of the additive grid",
        );
        // All-equal scores: every sum of squares is 0 and nothing is NaN.
        let flat =
            two_way_anova(&SeedGrid::new(vec![1, 2], vec![1, 2], vec![0.9; 4]).unwrap()).unwrap();
        assert_eq!(flat.weight_init.f, None);
        assert_eq!(flat.total_sum_of_squares, 0.0);
        // A single row or column has no ANOVA.
        assert!(
            two_way_anova(&SeedGrid::new(vec![1], vec![1, 2], vec![0.1, 0.2]).unwrap()).is_none()
        );
        assert!(
            SeedGrid::new(vec![1, 2], vec![1], vec![0.1]).is_none(),
            "wrong number of scores"
        );
        assert!(
            SeedGrid::new(vec![1], vec![1], vec![f64::NAN]).is_none(),
            "NaN cell"
        );
    }

    #[test]
    fn best_vs_worst_matches_scipy() {
        // WI: best row 13 (mean 0.8723), worst row 12 (0.8280); scipy f_oneway(row 13, row 12):
        // F = 28.43890675241158, p = 0.005953979142033827.
        let wi = best_vs_worst(&reference_grid(), Factor::WeightInit).unwrap();
        assert_eq!((wi.best_seed, wi.worst_seed), (13, 12));
        assert_close(
            wi.best_mean,
            (0.871 + 0.866 + 0.880) / 3.0,
            1e-12,
            "best mean",
        );
        assert_eq!((wi.anova.between.df, wi.anova.within.df), (1, 4));
        assert_close(wi.anova.between.f.unwrap(), 28.43890675241158, 1e-9, "F WI");
        assert_close(
            wi.anova.between.p_value.unwrap(),
            0.005953979142033827,
            1e-9,
            "p WI",
        );
        // DO: column means 0.84025, 0.8535, 0.8545 → best 103, worst 101;
        // F = 0.9401948490402238, p = 0.36967475744837075.
        let data_order = best_vs_worst(&reference_grid(), Factor::DataOrder).unwrap();
        assert_eq!((data_order.best_seed, data_order.worst_seed), (103, 101));
        assert_eq!(
            (data_order.anova.between.df, data_order.anova.within.df),
            (1, 6)
        );
        assert_close(
            data_order.anova.between.f.unwrap(),
            0.9401948490402238,
            1e-9,
            "F DO",
        );
        assert_close(
            data_order.anova.between.p_value.unwrap(),
            0.36967475744837075,
            1e-9,
            "p DO",
        );
    }

    #[test]
    fn best_vs_worst_ties_pick_the_smaller_seeds() {
        // All rows have the same mean: best is the smallest seed, worst the smallest of the others.
        let grid = SeedGrid::new(
            vec![7, 5, 9],
            vec![1, 2],
            vec![0.5, 0.7, 0.7, 0.5, 0.6, 0.6],
        )
        .unwrap();
        let result = best_vs_worst(&grid, Factor::WeightInit).unwrap();
        assert_eq!((result.best_seed, result.worst_seed), (7, 5));
    }
}
