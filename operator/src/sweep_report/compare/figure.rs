//! The comparison's figure: every sweep's expected-best-score curve on one chart, drawn with the single report's
//! frame, fonts and legend ([`crate::sweep_report::figures`]).

use super::Comparison;
use crate::sweep_report::figures::{
    Draw, Drawn, Figure, draw_legend, empty, frame, mesh, render, score_range,
};
use plotters::coord::Shift;
use plotters::prelude::*;

/// The name of the figure's files (`.svg`, `.png`) and of its place in the pages.
pub const EXPECTED_MAX: &str = "compare_expected_max";

/// Matplotlib's tab10: ten colours told apart at a glance; more sweeps than that reuse them in order.
const SERIES: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Every figure of a comparison.
pub fn all(comparison: &Comparison) -> anyhow::Result<Vec<Figure>> {
    Ok(vec![render(
        EXPECTED_MAX,
        "Expected best score vs number of trials, per sweep".into(),
        format!(
            "For each sweep, the {} you can expect from the best of n of its trials trained to completion (line), \
             ±1 standard deviation (band), estimated from that sweep's finished trials. A sweep without finished \
             trials has no curve.",
            comparison.metric
        ),
        ExpectedMaxCurves,
        comparison,
    )?])
}

struct ExpectedMaxCurves;

impl Draw<Comparison> for ExpectedMaxCurves {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, of: &Comparison) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let curves: Vec<_> = (of.sweeps.iter().enumerate())
            .filter(|(_, s)| !s.expected_max.is_empty())
            .map(|(i, s)| (SERIES[i % SERIES.len()], s))
            .collect();
        if curves.is_empty() {
            return empty(area, "no sweep has a trial trained to completion yet");
        }
        let n_max = (curves.iter())
            .filter_map(|(_, s)| s.expected_max.last())
            .map(|p| p.n)
            .max()
            .unwrap_or(1);
        let y = score_range(
            (curves.iter())
                .flat_map(|(_, s)| s.expected_max.iter())
                .flat_map(|p| [p.mean - p.std, p.mean + p.std]),
        );
        let mut chart = frame(area, (45, 70), 1.0..f64::from(n_max.max(2)), y)?;
        mesh(&mut chart, 14)
            .x_desc("trials trained to completion (n)")
            .x_label_formatter(&|n: &f64| format!("{n:.0}"))
            .y_desc(format!("expected best {}", of.metric))
            .draw()?;
        for &(color, sweep) in &curves {
            let curve = &sweep.expected_max;
            let band: Vec<(f64, f64)> = (curve.iter())
                .map(|p| (f64::from(p.n), p.mean + p.std))
                .chain(curve.iter().rev().map(|p| (f64::from(p.n), p.mean - p.std)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.15))))?;
        }
        // Lines over every band, so no band hides another sweep's line.
        for &(color, sweep) in &curves {
            let curve = &sweep.expected_max;
            chart
                .draw_series(LineSeries::new(
                    curve.iter().map(|p| (f64::from(p.n), p.mean)),
                    color.stroke_width(2),
                ))?
                .label(format!(
                    "{} ({} finished)",
                    sweep.name, sweep.finished_trials
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            // A one-trial curve is a single point, which a line does not show.
            if let [only] = curve.as_slice() {
                chart.draw_series(std::iter::once(Circle::new(
                    (f64::from(only.n), only.mean),
                    4,
                    color.filled(),
                )))?;
            }
        }
        draw_legend(&mut chart, 14)?;
        Ok(())
    }
}
