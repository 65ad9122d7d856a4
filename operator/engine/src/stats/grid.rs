//! The complete WI × DO sub-grid of finished trials that the grid analyses (spread, ANOVAs) run on.

use super::*;

/// A complete WI × DO grid of scores: one finite score per cell, `scores[row * do_seeds.len() + column]`.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedGrid {
    wi_seeds: Vec<u64>,
    do_seeds: Vec<u64>,
    scores: Vec<f64>,
}

impl SeedGrid {
    /// `None` unless there is a finite score for every cell (row-major) and at least one seed on each axis.
    pub fn new(wi_seeds: Vec<u64>, do_seeds: Vec<u64>, scores: Vec<f64>) -> Option<Self> {
        let cells = wi_seeds.len().checked_mul(do_seeds.len())?;
        if cells == 0 || scores.len() != cells || !scores.iter().all(|s| s.is_finite()) {
            return None;
        }
        Some(SeedGrid {
            wi_seeds,
            do_seeds,
            scores,
        })
    }

    pub fn wi_seeds(&self) -> &[u64] {
        &self.wi_seeds
    }

    pub fn do_seeds(&self) -> &[u64] {
        &self.do_seeds
    }

    /// Scores of one WI seed across the DO seeds.
    pub fn row(&self, row: usize) -> &[f64] {
        let width = self.do_seeds.len();
        self.scores
            .get(row * width..(row + 1) * width)
            .unwrap_or(&[])
    }

    /// Scores of one DO seed across the WI seeds.
    pub fn column(&self, column: usize) -> Vec<f64> {
        (0..self.wi_seeds.len())
            .filter_map(|row| self.row(row).get(column).copied())
            .collect()
    }

    pub fn scores(&self) -> &[f64] {
        &self.scores
    }
}

/// The complete sub-grid [`select_complete_grid`] chose, with the bookkeeping the status reports.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSelection {
    pub grid: SeedGrid,
    /// Distinct WI / DO seeds among all trials.
    pub all_wi_seeds: usize,
    pub all_do_seeds: usize,
    /// Cells of the full grid with no finished trial.
    pub missing_cells: usize,
    /// Finished trials inside / outside the sub-grid.
    pub trials_used: usize,
    pub finished_trials_left_out: usize,
    /// Finished trials beyond the first in their cell (over the whole grid).
    pub duplicate_trials: usize,
}

/// Sort key of a line in [`select_complete_grid`]'s greedy phase: (missing cells, fewer present cells, is a row,
/// seed); the line with the largest key is dropped.
type DropKey = (usize, Reverse<usize>, bool, u64);

/// Which line of the grid the greedy rule considers dropping.
#[derive(Clone, Copy)]
enum Line {
    Row(usize),
    Column(usize),
}

/// Chooses the complete WI × DO sub-grid the grid analyses run on.
///
/// The full grid's axes are the distinct WI and DO seeds of *all* trials (finished or not); a cell is present when
/// at least one finished trial has its seeds, and its value is the mean of those trials' final scores (summed in
/// sorted order, so the value does not depend on the trials' order). ANOVA needs every cell, so this greedy rule
/// repeatedly drops the row or column with the most missing cells among the remaining lines, breaking ties by
/// (1) the line that still holds fewer present cells (less data lost), (2) a WI row before a DO column, (3) the
/// larger seed; it stops when no remaining line misses a cell, then adds back every dropped line that is complete
/// over the kept lines (its missing cells were all in lines dropped later). The result is deterministic; it is the largest
/// complete sub-grid when the missing cells are confined to few lines, but greedy in general (finding the maximum
/// complete sub-grid is the NP-hard maximum edge biclique problem).
///
/// Errors with a reason when no finished trial exists or fewer than 2 rows or 2 columns remain.
pub fn select_complete_grid(trials: &[TrialScores]) -> Result<GridSelection, String> {
    let rows: Vec<u64> = trials
        .iter()
        .map(|t| t.wi_seed)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let columns: Vec<u64> = trials
        .iter()
        .map(|t| t.do_seed)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cells: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    for trial in trials {
        let (Some(score), Ok(row), Ok(column)) = (
            trial.finite_final(),
            rows.binary_search(&trial.wi_seed),
            columns.binary_search(&trial.do_seed),
        ) else {
            continue;
        };
        cells.entry((row, column)).or_default().push(score);
    }
    let finished: usize = cells.values().map(Vec::len).sum();
    if finished == 0 {
        return Err("no trial has a finite final score".to_owned());
    }

    // Present cells per line, counted over the lines still active; updated as lines are dropped so each step costs
    // O(rows + columns) instead of rescanning the grid.
    let mut row_cells: Vec<Vec<usize>> = vec![Vec::new(); rows.len()];
    let mut column_cells: Vec<Vec<usize>> = vec![Vec::new(); columns.len()];
    for &(row, column) in cells.keys() {
        row_cells[row].push(column);
        column_cells[column].push(row);
    }
    let mut row_present: Vec<usize> = row_cells.iter().map(Vec::len).collect();
    let mut column_present: Vec<usize> = column_cells.iter().map(Vec::len).collect();
    let mut row_active = vec![true; rows.len()];
    let mut column_active = vec![true; columns.len()];
    let (mut active_rows, mut active_columns) = (rows.len(), columns.len());
    loop {
        // Key of a line: larger is dropped first (see the tie-breaking rules above).
        let mut worst: Option<(DropKey, Line)> = None;
        let mut consider = |key: DropKey, line: Line| {
            if key.0 > 0 && worst.as_ref().is_none_or(|(best, _)| key > *best) {
                worst = Some((key, line));
            }
        };
        for (row, &seed) in rows.iter().enumerate().filter(|(row, _)| row_active[*row]) {
            let present = row_present[row];
            consider(
                (
                    active_columns.saturating_sub(present),
                    Reverse(present),
                    true,
                    seed,
                ),
                Line::Row(row),
            );
        }
        for (column, &seed) in columns
            .iter()
            .enumerate()
            .filter(|(column, _)| column_active[*column])
        {
            let present = column_present[column];
            consider(
                (
                    active_rows.saturating_sub(present),
                    Reverse(present),
                    false,
                    seed,
                ),
                Line::Column(column),
            );
        }
        match worst {
            None => break,
            Some((_, Line::Row(row))) => {
                row_active[row] = false;
                active_rows -= 1;
                for &column in &row_cells[row] {
                    column_present[column] = column_present[column].saturating_sub(1);
                }
            }
            Some((_, Line::Column(column))) => {
                column_active[column] = false;
                active_columns -= 1;
                for &row in &column_cells[column] {
                    row_present[row] = row_present[row].saturating_sub(1);
                }
            }
        }
    }

    // A line dropped early may have missed cells only in lines dropped later; such a line is now complete over the
    // kept lines, so adding it back is pure gain (ascending seed, rows first, until nothing changes).
    let present = |row: usize, column: usize| cells.contains_key(&(row, column));
    let mut changed = active_rows > 0 && active_columns > 0;
    while changed {
        changed = false;
        for (row, active) in row_active.iter_mut().enumerate() {
            if !*active && (0..columns.len()).all(|c| !column_active[c] || present(row, c)) {
                *active = true;
                changed = true;
            }
        }
        for (column, active) in column_active.iter_mut().enumerate() {
            if !*active && (0..rows.len()).all(|r| !row_active[r] || present(r, column)) {
                *active = true;
                changed = true;
            }
        }
    }

    let kept_rows: Vec<usize> = (0..rows.len()).filter(|&r| row_active[r]).collect();
    let kept_columns: Vec<usize> = (0..columns.len()).filter(|&c| column_active[c]).collect();
    let missing_cells = rows
        .len()
        .saturating_mul(columns.len())
        .saturating_sub(cells.len());
    if kept_rows.len() < 2 || kept_columns.len() < 2 {
        return Err(format!(
            "the largest complete sub-grid found has {} WI x {} DO seeds, fewer than the 2 x 2 the grid analyses \
             need ({} finished trials on a {} x {} grid with {} missing cells)",
            kept_rows.len(),
            kept_columns.len(),
            finished,
            rows.len(),
            columns.len(),
            missing_cells
        ));
    }
    let mut scores = Vec::with_capacity(kept_rows.len() * kept_columns.len());
    let mut trials_used = 0;
    for &row in &kept_rows {
        for &column in &kept_columns {
            let cell = cells.get(&(row, column)).map(Vec::as_slice).unwrap_or(&[]);
            trials_used += cell.len();
            scores.push(mean(cell).unwrap_or(f64::NAN));
        }
    }
    let grid = SeedGrid::new(
        kept_rows.iter().map(|&r| rows[r]).collect(),
        kept_columns.iter().map(|&c| columns[c]).collect(),
        scores,
    )
    .ok_or_else(|| {
        "a cell mean of the selected sub-grid is not finite (scores too large to average)"
            .to_owned()
    })?;
    Ok(GridSelection {
        grid,
        all_wi_seeds: rows.len(),
        all_do_seeds: columns.len(),
        missing_cells,
        trials_used,
        finished_trials_left_out: finished - trials_used,
        duplicate_trials: finished - cells.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::test_support::*;

    fn finished_grid(rows: &[u64], columns: &[u64], missing: &[(u64, u64)]) -> Vec<TrialScores> {
        let mut trials = Vec::new();
        for &wi in rows {
            for &data_order in columns {
                let score = (!missing.contains(&(wi, data_order)))
                    .then(|| 0.5 + 0.01 * (wi + 3 * data_order) as f64);
                trials.push(trial(wi, data_order, score));
            }
        }
        trials
    }

    #[test]
    fn incomplete_grid_drops_the_most_missing_line_first() {
        // Row 4 misses two cells and goes first; then row 2 and column 30 each miss one cell, and column 30 is
        // dropped because it holds fewer present cells (2 vs 3), which keeps a 3 × 3 grid.
        let trials = finished_grid(
            &[1, 2, 3, 4],
            &[10, 20, 30, 40],
            &[(4, 10), (4, 20), (2, 30)],
        );
        let selection = select_complete_grid(&trials).unwrap();
        assert_eq!(selection.grid.wi_seeds(), &[1, 2, 3]);
        assert_eq!(selection.grid.do_seeds(), &[10, 20, 40]);
        assert_eq!(
            (
                selection.all_wi_seeds,
                selection.all_do_seeds,
                selection.missing_cells
            ),
            (4, 4, 3)
        );
        assert_eq!(
            (
                selection.trials_used,
                selection.finished_trials_left_out,
                selection.duplicate_trials
            ),
            (9, 4, 0)
        );
        // The order of the trials must not matter.
        let mut reversed = trials.clone();
        reversed.reverse();
        assert_eq!(select_complete_grid(&reversed).unwrap(), selection);
    }

    #[test]
    fn incomplete_grid_tie_breaks() {
        // One missing cell (2, 20): row 2 and column 20 tie on missing (1) and present (2) cells: the row goes.
        let selection =
            select_complete_grid(&finished_grid(&[1, 2, 3], &[10, 20, 30], &[(2, 20)])).unwrap();
        assert_eq!(
            (selection.grid.wi_seeds(), selection.grid.do_seeds()),
            (&[1, 3][..], &[10, 20, 30][..])
        );
        // Missing (1, 10) and (3, 30): rows 1 and 3 tie completely and the larger seed (3) goes; then column 10
        // (1 present cell) goes before row 1 (2 present cells).
        let selection = select_complete_grid(&finished_grid(
            &[1, 2, 3],
            &[10, 20, 30],
            &[(1, 10), (3, 30)],
        ))
        .unwrap();
        assert_eq!(
            (selection.grid.wi_seeds(), selection.grid.do_seeds()),
            (&[1, 2][..], &[20, 30][..])
        );
        assert_eq!(
            (selection.trials_used, selection.finished_trials_left_out),
            (4, 3)
        );
    }

    #[test]
    fn incomplete_grid_adds_back_lines_that_became_complete() {
        // Found by a randomized search over small grids: the greedy phase ends with WI {3, 5} × DO {10, 20, 60},
        // having dropped DO 50 early for its missing cells in WI rows 1 and 4, which were dropped later. DO 50 is
        // then complete over the kept rows, and the add-back pass must restore it (8 cells instead of 6).
        let missing = [
            (0, 0),
            (0, 3),
            (0, 4),
            (1, 0),
            (1, 2),
            (1, 5),
            (2, 2),
            (3, 1),
            (3, 3),
            (3, 4),
            (4, 3),
        ];
        let missing: Vec<(u64, u64)> = missing
            .iter()
            .map(|&(r, c)| (r + 1, (c + 1) * 10))
            .collect();
        let trials = finished_grid(&[1, 2, 3, 4, 5], &[10, 20, 30, 40, 50, 60], &missing);
        let selection = select_complete_grid(&trials).unwrap();
        assert_eq!(selection.grid.wi_seeds(), &[3, 5]);
        assert_eq!(selection.grid.do_seeds(), &[10, 20, 50, 60]);
        assert_maximal(&trials, &selection);
    }

    #[test]
    fn incomplete_grid_errors_say_why() {
        let reason =
            select_complete_grid(&[trial(1, 1, None), trial(1, 2, Some(f64::NAN))]).unwrap_err();
        assert!(
            reason.contains("no trial has a finite final score"),
            "{reason}"
        );
        let one_row = [
            trial(1, 1, Some(0.5)),
            trial(1, 2, Some(0.6)),
            trial(2, 1, None),
        ];
        let reason = select_complete_grid(&one_row).unwrap_err();
        assert!(reason.contains("1 WI x 2 DO"), "{reason}");
        let statistics = compute(&one_row);
        assert_eq!(
            (statistics.grid, statistics.grid_unavailable_reason),
            (None, Some(reason))
        );
    }

    #[test]
    fn duplicate_cells_are_averaged_and_counted() {
        let mut trials = finished_grid(&[1, 2], &[1, 2], &[]);
        trials.push(trial(1, 1, Some(0.0)));
        trials.push(trial(1, 1, Some(1.0)));
        let selection = select_complete_grid(&trials).unwrap();
        let first = 0.5 + 0.01 * 4.0;
        assert_close(
            selection.grid.row(0)[0],
            (first + 0.0 + 1.0) / 3.0,
            1e-12,
            "cell mean",
        );
        assert_eq!(
            (
                selection.trials_used,
                selection.duplicate_trials,
                selection.finished_trials_left_out
            ),
            (6, 2, 0)
        );
    }
}
