//! The report's figures, drawn with plotters once per backend: SVG for the pages, PNG (the bitmap backend, text
//! rendered with an embedded font so no system font is needed) for anything that shows pictures. Each figure
//! draws only numbers of the [`SweepReport`].

use super::model::SweepReport;
use anyhow::{Context, anyhow};
use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use seedsweep_crds::sweep::TrialPhase;
use std::error::Error;

/// Pixels of every figure.
pub const SIZE: (u32, u32) = (900, 500);
const FONT_FAMILY: &str = "sans-serif";

/// One figure, ready to write as `<name>.svg` and `<name>.png`.
pub struct Figure {
    pub name: &'static str,
    pub title: String,
    pub caption: String,
    pub svg: String,
    pub png: Vec<u8>,
}

pub(super) type Drawn = Result<(), Box<dyn Error>>;

/// A figure of an `R` (a report, a comparison), drawn the same way on any backend.
pub(super) trait Draw<R> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, of: &R) -> Drawn
    where
        DB::ErrorType: 'static;
}

/// Every figure of a report.
pub fn all(report: &SweepReport) -> anyhow::Result<Vec<Figure>> {
    let metric = report.objective.metric.as_str();
    let finished = report.statistics().finished_trials;
    Ok(vec![
        render(
            "expected_max",
            "Expected best score vs number of trials".into(),
            format!(
                "The {metric} you can expect from the best of n trials trained to completion (line), ±1 standard \
                 deviation (band), estimated from the {finished} trials that finished. The marker is this sweep: its \
                 best score against the compute it spent, in full training runs."
            ),
            ExpectedMax,
            report,
        )?,
        render(
            "heatmap",
            "Weight-init × data-order grid".into(),
            format!(
                "Each cell is one trial: its final {metric}, or its latest for trials that did not finish (pale). \
                 D: discarded at a rung, X: diverged, F: failed, R: running; empty: not started."
            ),
            Heatmap,
            report,
        )?,
        render(
            "seed_effects",
            "Seed effects".into(),
            format!(
                "Final {metric} of the finished trials, by weight-initialization seed (left) and data-order seed \
                 (right). Green: the best seed, red: the worst (by mean over the grid the ANOVA used)."
            ),
            SeedEffects,
            report,
        )?,
        render(
            "learning_curves",
            "Learning curves".into(),
            format!(
                "Top: {metric} at every evaluation of every trial against the fraction of training done; trials that \
                 were stopped end with a cross, dashed lines are the rungs. Bottom: how well the score at each point \
                 ranks the trials as their final score does (Spearman's rho)."
            ),
            LearningCurves,
            report,
        )?,
        render(
            "what_if",
            "What-if discarding".into(),
            format!(
                "Best final {metric} found against the compute spent, for other rung settings replayed on this \
                 sweep's recorded curves by the engine; numbers are the rows of the table below. Hollow markers: \
                 settings that would train some trial past the end of its record (its outcome is unknown, so the \
                 point shows only what the record tells)."
            ),
            WhatIf,
            report,
        )?,
    ])
}

/// `figure` of `of`, drawn as SVG and as PNG.
pub(super) fn render<R>(
    name: &'static str,
    title: String,
    caption: String,
    figure: impl Draw<R>,
    of: &R,
) -> anyhow::Result<Figure> {
    register_font()?;
    let failed = |e: Box<dyn Error>| anyhow!("drawing {name}: {e}");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(e.into()))?;
        figure.draw(&root, of).map_err(failed)?;
        root.present().map_err(|e| failed(e.into()))?;
    }
    let (w, h) = SIZE;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(e.into()))?;
        figure.draw(&root, of).map_err(failed)?;
        root.present().map_err(|e| failed(e.into()))?;
    }
    Ok(Figure {
        name,
        title,
        caption,
        svg,
        png: encode_png(&pixels, SIZE).with_context(|| format!("encoding {name}.png"))?,
    })
}

fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// The bitmap backend draws text with ab_glyph from a registered font; this one is embedded (Ubuntu Light, from
/// egui's font crate, under the Ubuntu Font Licence) so that no system font or fontconfig is needed.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = REGISTERED.get_or_init(|| {
        plotters::style::register_font(
            FONT_FAMILY,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .is_ok()
    });
    if *ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded font cannot be read"))
    }
}

pub(super) fn font(size: u32) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&BLACK)
}

const FINISHED: RGBColor = RGBColor(31, 119, 180);
const DISCARDED: RGBColor = RGBColor(255, 127, 14);
const DIVERGED: RGBColor = RGBColor(214, 39, 40);
const OTHER: RGBColor = RGBColor(127, 127, 127);
const BEST: RGBColor = RGBColor(44, 160, 44);

fn phase_color(phase: TrialPhase) -> RGBColor {
    match phase {
        TrialPhase::Succeeded => FINISHED,
        TrialPhase::Discarded => DISCARDED,
        TrialPhase::Diverged => DIVERGED,
        _ => OTHER,
    }
}

/// A score axis around `values` with a little room, never empty.
pub(super) fn score_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = ((hi - lo) * 0.08).max(0.005);
    (lo - pad)..(hi + pad)
}

/// A message in the middle of an empty figure.
pub(super) fn empty<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, message: &str) -> Drawn
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        message.to_string(),
        (w as i32 / 2, h as i32 / 2),
        font(18).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    Ok(())
}

/// A chart whose axes are the ranges `X` and `Y`.
pub(super) type Chart<'a, DB, X, Y> = ChartContext<
    'a,
    DB,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// A chart on `area` in the frame the figures share: their margin, and `(x, y)` pixels for each axis' labels.
pub(super) fn frame<'a, DB: DrawingBackend, X: AsRangedCoord, Y: AsRangedCoord>(
    area: &'a DrawingArea<DB, Shift>,
    (x_labels, y_labels): (u32, u32),
    x: X,
    y: Y,
) -> Result<Chart<'a, DB, X, Y>, DrawingAreaErrorKind<DB::ErrorType>> {
    ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(x_labels)
        .y_label_area_size(y_labels)
        .build_cartesian_2d(x, y)
}

/// The chart's axes in the figures' fonts, `label_size` for the tick labels; the caller adds what its axes say.
pub(super) fn mesh<'a, 'b, DB, X, Y>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    label_size: u32,
) -> MeshStyle<'a, 'b, X, Y, DB>
where
    DB: DrawingBackend,
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    let mut mesh = chart.configure_mesh();
    mesh.label_style(font(label_size)).axis_desc_style(font(15));
    mesh
}

/// The legend of the chart's labelled series, boxed in its lower right corner, `label_size` for its text.
pub(super) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    label_size: u32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(font(label_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

struct ExpectedMax;

impl Draw<SweepReport> for ExpectedMax {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, report: &SweepReport) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let curve = &report.statistics().expected_max;
        if curve.is_empty() {
            return empty(area, "no trial has trained to completion yet");
        }
        let best = report.status.best_trial.as_ref();
        let spent = report.compute.full_runs_spent;
        let n_max = curve.last().map_or(1, |p| p.n) as f64;
        let x_max = n_max.max(spent.unwrap_or(0.0)).max(2.0);
        let y = score_range(
            (curve.iter())
                .flat_map(|p| [p.mean - p.std, p.mean + p.std])
                .chain(best.map(|b| b.score)),
        );
        let mut chart = frame(area, (45, 70), 1.0..x_max, y)?;
        mesh(&mut chart, 14)
            .x_desc("trials trained to completion (n), or compute in full training runs")
            .y_desc(format!(
                "expected best {}",
                report.objective.metric.as_str()
            ))
            .draw()?;
        let band: Vec<(f64, f64)> = (curve.iter())
            .map(|p| (f64::from(p.n), p.mean + p.std))
            .chain(curve.iter().rev().map(|p| (f64::from(p.n), p.mean - p.std)))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(band, FINISHED.mix(0.2))))?;
        chart
            .draw_series(LineSeries::new(
                curve.iter().map(|p| (f64::from(p.n), p.mean)),
                FINISHED.stroke_width(2),
            ))?
            .label("expected best of n (±1 std)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], FINISHED.stroke_width(2)));
        if let (Some(best), Some(spent)) = (best, spent) {
            chart
                .draw_series(std::iter::once(Circle::new(
                    (spent.max(1.0), best.score),
                    6,
                    DISCARDED.filled(),
                )))?
                .label(format!(
                    "this sweep: best {:.4} for {spent:.2} full runs",
                    best.score
                ))
                .legend(|(x, y)| Circle::new((x + 10, y), 5, DISCARDED.filled()));
        }
        draw_legend(&mut chart, 14)?;
        Ok(())
    }
}

struct Heatmap;

impl Draw<SweepReport> for Heatmap {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, report: &SweepReport) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let grid = &report.grid;
        let (columns, rows) = (grid.do_seeds.len(), grid.wi_seeds.len());
        if columns == 0 || rows == 0 {
            return empty(area, "no trials planned");
        }
        let (map, legend) = area.split_horizontally(SIZE.0 - 110);
        let range = score_range(grid.cells.iter().filter_map(|c| c.score));
        let (lo, hi) = (range.start, range.end);
        // Integer ranges are inclusive in plotters: 0..n−1 is n segments, one per seed.
        let mut chart = frame(
            &map,
            (45, 70),
            (0..columns as i32 - 1).into_segmented(),
            (0..rows as i32 - 1).into_segmented(),
        )?;
        let do_seeds = grid.do_seeds.clone();
        let wi_seeds = grid.wi_seeds.clone();
        let label = |seeds: &[u64], v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => seeds
                .get(*i as usize)
                .map_or(String::new(), |s| s.to_string()),
            _ => String::new(),
        };
        mesh(&mut chart, 13)
            .disable_mesh()
            .x_desc("data-order seed")
            .y_desc("weight-init seed")
            .x_labels(columns.min(25))
            .y_labels(rows.min(25))
            .x_label_formatter(&|v| label(&do_seeds, v))
            .y_label_formatter(&|v| label(&wi_seeds, v))
            .draw()?;
        let big = columns <= 10 && rows <= 10;
        for cell in &grid.cells {
            let (Ok(c), Ok(r)) = (
                grid.do_seeds.binary_search(&cell.data_order),
                grid.wi_seeds.binary_search(&cell.weight_init),
            ) else {
                continue;
            };
            let (c, r) = (c as i32, r as i32);
            let corner =
                |dc: i32, dr: i32| (SegmentValue::Exact(c + dc), SegmentValue::Exact(r + dr));
            let fill = match cell.score {
                Some(s) => {
                    let color = ViridisRGB::get_color_normalized(s, lo, hi);
                    if cell.is_final {
                        color.to_rgba()
                    } else {
                        color.mix(0.35)
                    }
                }
                None => WHITE.to_rgba(),
            };
            chart.draw_series(std::iter::once(Rectangle::new(
                [corner(0, 0), corner(1, 1)],
                fill.filled(),
            )))?;
            chart.draw_series(std::iter::once(Rectangle::new(
                [corner(0, 0), corner(1, 1)],
                WHITE.stroke_width(1),
            )))?;
            let mark = match cell.phase {
                TrialPhase::Discarded => "D",
                TrialPhase::Diverged => "X",
                TrialPhase::Failed => "F",
                TrialPhase::Running | TrialPhase::AwaitingDecision | TrialPhase::Stuck => "R",
                _ => "",
            };
            let text = match (cell.score, big) {
                (Some(s), true) => format!("{mark} {s:.3}").trim().to_string(),
                _ => mark.to_string(),
            };
            if !text.is_empty() {
                chart.draw_series(std::iter::once(Text::new(
                    text,
                    (SegmentValue::CenterOf(c), SegmentValue::CenterOf(r)),
                    font(if big { 14 } else { 10 }).pos(Pos::new(HPos::Center, VPos::Center)),
                )))?;
            }
        }
        // The colour scale.
        let mut scale = ChartBuilder::on(&legend)
            .margin_top(15)
            .margin_bottom(60)
            .margin_right(15)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, lo..hi)?;
        scale
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .label_style(font(12))
            .draw()?;
        let steps = 100;
        scale.draw_series((0..steps).map(|i| {
            let a = lo + (hi - lo) * f64::from(i) / f64::from(steps);
            let b = lo + (hi - lo) * f64::from(i + 1) / f64::from(steps);
            Rectangle::new(
                [(0.0, a), (1.0, b)],
                ViridisRGB::get_color_normalized((a + b) / 2.0, lo, hi).filled(),
            )
        }))?;
        Ok(())
    }
}

struct SeedEffects;

impl Draw<SweepReport> for SeedEffects {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, report: &SweepReport) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let finished: Vec<_> = (report.grid.cells.iter())
            .filter(|c| c.is_final)
            .filter_map(|c| c.score.map(|s| (c.weight_init, c.data_order, s)))
            .collect();
        if finished.is_empty() {
            return empty(area, "no trial has trained to completion yet");
        }
        let grid = report.statistics().grid.as_ref();
        let y = score_range(finished.iter().map(|f| f.2));
        let panels = area.split_evenly((1, 2));
        for (k, panel) in panels.iter().enumerate() {
            let by_wi = k == 0;
            let seeds = if by_wi {
                &report.grid.wi_seeds
            } else {
                &report.grid.do_seeds
            };
            let (best, worst) = match grid {
                Some(g) if by_wi => (
                    Some(g.wi_best_vs_worst.best_seed),
                    Some(g.wi_best_vs_worst.worst_seed),
                ),
                Some(g) => (
                    Some(g.do_best_vs_worst.best_seed),
                    Some(g.do_best_vs_worst.worst_seed),
                ),
                None => (None, None),
            };
            let others = if by_wi {
                &report.grid.do_seeds
            } else {
                &report.grid.wi_seeds
            };
            let mut chart = frame(panel, (45, 65), -0.5..(seeds.len() as f64 - 0.5), y.clone())?;
            let labels = seeds.clone();
            mesh(&mut chart, 13)
                .disable_x_mesh()
                .x_labels(seeds.len().min(13))
                .x_label_formatter(&|x| {
                    let i = x.round();
                    if (x - i).abs() < 1e-6 && i >= 0.0 {
                        labels
                            .get(i as usize)
                            .map_or(String::new(), |s| s.to_string())
                    } else {
                        String::new()
                    }
                })
                .x_desc(if by_wi {
                    "weight-init seed"
                } else {
                    "data-order seed"
                })
                .y_desc(format!("final {}", report.objective.metric.as_str()))
                .draw()?;
            chart.draw_series(finished.iter().filter_map(|&(wi, dor, s)| {
                let (seed, other) = if by_wi { (wi, dor) } else { (dor, wi) };
                let i = seeds.binary_search(&seed).ok()? as f64;
                // Spread the points of one seed sideways by the other factor's seed, so they do not hide each other.
                let j = others.binary_search(&other).ok()? as f64;
                let jitter = if others.len() > 1 {
                    (j / (others.len() - 1) as f64 - 0.5) * 0.5
                } else {
                    0.0
                };
                let color = if Some(seed) == best {
                    BEST
                } else if Some(seed) == worst {
                    DIVERGED
                } else {
                    FINISHED
                };
                Some(Circle::new((i + jitter, s), 4, color.mix(0.8).filled()))
            }))?;
        }
        Ok(())
    }
}

struct LearningCurves;

impl Draw<SweepReport> for LearningCurves {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, report: &SweepReport) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        if report.curves.iter().all(|c| c.points.is_empty()) {
            return empty(area, "no trial has been evaluated yet");
        }
        let (top, bottom) = area.split_vertically(SIZE.1 * 64 / 100);
        let y = score_range(
            report
                .curves
                .iter()
                .flat_map(|c| c.points.iter().map(|p| p.1)),
        );
        let mut chart = frame(&top, (30, 70), 0.0..1.0, y.clone())?;
        mesh(&mut chart, 13)
            .y_desc(report.objective.metric.as_str())
            .x_label_formatter(&|x: &f64| format!("{:.0}%", x * 100.0))
            .draw()?;
        for rung in &report.rungs {
            chart.draw_series(DashedLineSeries::new(
                vec![(rung.at_fraction, y.start), (rung.at_fraction, y.end)],
                6,
                4,
                BLACK.stroke_width(1),
            ))?;
        }
        // Finished trials last, so they are drawn on top.
        let mut curves: Vec<_> = report
            .curves
            .iter()
            .filter(|c| !c.points.is_empty())
            .collect();
        curves.sort_by_key(|c| c.phase == TrialPhase::Succeeded);
        let mut labelled: Vec<TrialPhase> = Vec::new();
        for curve in curves {
            let color = phase_color(curve.phase);
            let series = chart.draw_series(LineSeries::new(
                curve.points.iter().copied(),
                color.mix(0.75).stroke_width(2),
            ))?;
            if !labelled.contains(&curve.phase) {
                labelled.push(curve.phase);
                series
                    .label(format!("{:?}", curve.phase))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            if matches!(
                curve.phase,
                TrialPhase::Discarded | TrialPhase::Diverged | TrialPhase::Failed
            ) && let Some(&last) = curve.points.last()
            {
                chart.draw_series(std::iter::once(Cross::new(last, 5, color.stroke_width(2))))?;
            }
        }
        draw_legend(&mut chart, 13)?;

        let points = &report.statistics().early_vs_final;
        let mut rho = frame(&bottom, (40, 70), 0.0..1.0, -1.05..1.05)?;
        mesh(&mut rho, 13)
            .x_desc("fraction of training")
            .y_desc("rho vs final")
            .y_labels(5)
            .x_label_formatter(&|x: &f64| format!("{:.0}%", x * 100.0))
            .draw()?;
        let defined: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| p.rho.map(|r| (p.progress, r)))
            .collect();
        rho.draw_series(LineSeries::new(
            defined.iter().copied(),
            FINISHED.stroke_width(2),
        ))?;
        rho.draw_series(
            defined
                .iter()
                .map(|&p| Circle::new(p, 3, FINISHED.filled())),
        )?;
        Ok(())
    }
}

struct WhatIf;

impl Draw<SweepReport> for WhatIf {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, report: &SweepReport) -> Drawn
    where
        DB::ErrorType: 'static,
    {
        let Some(full_run) = report.compute.full_run_steps else {
            return empty(area, "no trial has reported its length yet");
        };
        // (row number in the page's table, setting, compute in full runs, best score)
        let points: Vec<_> = (report.what_if.settings.iter().enumerate())
            .filter_map(|(i, s)| {
                let best = s.best.as_ref()?;
                Some((i + 1, s, s.steps_spent as f64 / full_run as f64, best.score))
            })
            .collect();
        if points.is_empty() {
            return empty(area, "no setting trains a recorded trial to completion");
        }
        let x_max = points.iter().map(|p| p.2).fold(1.0, f64::max) * 1.08;
        let y = score_range(points.iter().map(|p| p.3));
        let mut chart = frame(area, (45, 70), 0.0..x_max, y)?;
        mesh(&mut chart, 13)
            .x_desc("compute spent, in full training runs")
            .y_desc(format!(
                "best final {} found",
                report.objective.metric.as_str()
            ))
            .draw()?;
        for &(_, setting, x, score) in &points {
            let color = if setting.own_setting {
                DISCARDED
            } else if setting.early_discard.is_none() {
                BEST
            } else {
                FINISHED
            };
            let style = if setting.beyond_record.is_empty() {
                color.filled()
            } else {
                color.stroke_width(2)
            };
            let radius = if setting.own_setting { 7 } else { 5 };
            chart.draw_series(std::iter::once(Circle::new((x, score), radius, style)))?;
        }
        // Settings that land on the same point share one label: their row numbers in the page's table.
        let mut labels: Vec<((f64, f64), Vec<String>)> = Vec::new();
        for &(row, _, x, score) in &points {
            let name = row.to_string();
            match labels.iter_mut().find(|(at, _)| *at == (x, score)) {
                Some((_, rows)) => rows.push(name),
                None => labels.push(((x, score), vec![name])),
            }
        }
        for (at, rows) in labels {
            chart.draw_series(std::iter::once(Text::new(
                format!("  {}", rows.join(", ")),
                at,
                font(12).pos(Pos::new(HPos::Left, VPos::Bottom)),
            )))?;
        }
        let legend = [
            (DISCARDED, "this sweep's setting"),
            (BEST, "no discarding"),
            (FINISHED, "one rung (numbers: rows of the table)"),
        ];
        for (color, text) in legend {
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                .label(text)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
        }
        draw_legend(&mut chart, 13)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::SweepState;
    use crate::sweep_report::{model, source::Loaded};
    use seedsweep_crds::sweep::SeedSweep;

    /// Degenerate grids (one seed on an axis, nothing recorded) still draw every figure.
    #[test]
    fn a_one_seed_sweep_with_nothing_recorded_draws_every_figure() {
        for seeds in [
            "{weightInit: {values: [7]}, dataOrder: {values: [1, 2]}}",
            "{weightInit: {values: [7]}, dataOrder: {values: [1]}}",
        ] {
            let text = format!(
                "apiVersion: seedsweep.dev/v1alpha1\nkind: SeedSweep\nmetadata: {{name: one}}\nspec:\n  task: {{name: \
                 rte, dataDir: /d}}\n  model: {{path: /m}}\n  seeds: {seeds}\n"
            );
            let spec = serde_yaml::from_str::<SeedSweep>(&text).unwrap().spec;
            let state = SweepState::new("one", &spec);
            let report = model::build(&Loaded {
                spec,
                state,
                origin: "test".into(),
            });
            let figures = all(&report).unwrap();
            assert_eq!(figures.len(), 5);
            assert!(
                figures
                    .iter()
                    .all(|f| f.svg.starts_with("<svg") && f.png.starts_with(b"\x89PNG"))
            );
        }
    }
}
