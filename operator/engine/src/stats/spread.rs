//! Per-factor spread: the expected standard deviation due to WI and due to DO (Dodge et al. 2020 §4).

use super::*;

/// Per-factor spread of a complete grid (Dodge et al. 2020 §4), standard deviations with ddof = [`STD_DDOF`]:
/// the expected std due to DO is the mean over WI seeds of the std across DO seeds, and vice versa. `None` unless
/// the grid has at least 2 × 2 seeds.
pub fn factor_spread(grid: &SeedGrid) -> Option<FactorSpread> {
    let (rows, columns) = (grid.wi_seeds().len(), grid.do_seeds().len());
    if rows < 2 || columns < 2 {
        return None;
    }
    let row_stds: Vec<f64> = (0..rows).filter_map(|r| sample_std(grid.row(r))).collect();
    let column_stds: Vec<f64> = (0..columns)
        .filter_map(|c| sample_std(&grid.column(c)))
        .collect();
    Some(FactorSpread {
        ddof: STD_DDOF,
        expected_std_due_to_do: finite(mean(&row_stds)?)?,
        expected_std_due_to_wi: finite(mean(&column_stds)?)?,
        std: finite(sample_std(grid.scores())?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::*;

    #[test]
    fn factor_spread_matches_numpy() {
        // numpy, ddof=1: mean(grid.std(axis=1)) = 0.01041682196847903 (across DO seeds per WI seed),
        // mean(grid.std(axis=0)) = 0.01928617687734455, grid.std() = 0.01890386364228385.
        let spread = factor_spread(&reference_grid()).unwrap();
        assert_eq!(spread.ddof, 1);
        assert_close(
            spread.expected_std_due_to_do,
            0.01041682196847903,
            1e-12,
            "std due to DO",
        );
        assert_close(
            spread.expected_std_due_to_wi,
            0.01928617687734455,
            1e-12,
            "std due to WI",
        );
        assert_close(spread.std, 0.01890386364228385, 1e-12, "overall std");
    }
}
