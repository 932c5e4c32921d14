//! Charts of a report, drawn with plotters as SVG text and PNG bytes (the caller writes
//! them). Text is laid out with DejaVu Sans, compiled in: no system font is needed.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use serde::Serialize;

use crate::ReportError;
use crate::format::short;
use crate::output::{QueryReport, Report};

/// The font compiled into the crate (DejaVu Sans; licence in `assets/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

const WIDTH: u32 = 800;
const HEIGHT: u32 = 450;

/// One chart, as SVG and as PNG.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// A file-name stem, e.g. `by_country-error-vs-epsilon`.
    pub name: String,
    /// The query it belongs to.
    pub query: String,
    /// Its title.
    pub title: String,
    /// The SVG document.
    pub svg: String,
    /// The PNG image.
    #[serde(skip)]
    pub png: Vec<u8>,
}

fn register() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // The font is valid (it is a fixed asset); if it were not, text would fail to
        // draw and the chart would report that error.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Something drawable on any backend.
trait Draw {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn render<D: Draw>(
    name: String,
    query: &str,
    title: String,
    drawing: &D,
) -> Result<Chart, ReportError> {
    register();
    let failure = |reason: String| ReportError::Chart {
        chart: name.clone(),
        reason,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        drawing.draw(&root).map_err(failure)?;
        root.present().map_err(|e| failure(e.to_string()))?;
    }
    let mut pixels = vec![0_u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        drawing.draw(&root).map_err(failure)?;
        root.present().map_err(|e| failure(e.to_string()))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| failure(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| failure(e.to_string()))?;
    }
    Ok(Chart {
        name,
        query: query.to_string(),
        title,
        svg,
        png: png_bytes,
    })
}

fn color(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[index % COLORS.len()]
}

/// A file-name stem from a query name.
pub(crate) fn stem(query: &str) -> String {
    query
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> String {
    error.to_string()
}

/// Median relative error against ε, per aggregate: lines analytic, dots Monte Carlo.
struct ErrorVsEpsilon<'a> {
    query: &'a QueryReport,
    epsilons: &'a [f64],
}

impl Draw for ErrorVsEpsilon<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(error)?;
        let low = self.epsilons.first().copied().unwrap_or(0.1);
        let high = self.epsilons.last().copied().unwrap_or(1.0).max(low * 1.01);
        let top = self
            .query
            .aggregates
            .iter()
            .flat_map(|aggregate| aggregate.sweep.iter())
            .flat_map(|at| {
                [
                    at.analytic.median_relative,
                    at.empirical.map_or(0.0, |stats| stats.median_relative),
                ]
            })
            .filter(|value| value.is_finite())
            .fold(0.0_f64, f64::max)
            .clamp(0.01, 10.0)
            * 110.0;
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{}: median relative error vs ε", self.query.name),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((low * 0.9..high * 1.1).log_scale(), 0.0..top)
            .map_err(error)?;
        chart
            .configure_mesh()
            .x_desc("ε")
            .y_desc("median relative error (%)")
            .x_label_formatter(&|value| short(*value))
            .draw()
            .map_err(error)?;
        for (index, aggregate) in self.query.aggregates.iter().enumerate() {
            let colour = color(index);
            let points: Vec<(f64, f64)> = aggregate
                .sweep
                .iter()
                .filter(|at| at.analytic.median_relative.is_finite())
                .map(|at| (at.epsilon, at.analytic.median_relative * 100.0))
                .collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(error)?
                .label(aggregate.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            let measured: Vec<(f64, f64)> = aggregate
                .sweep
                .iter()
                .filter_map(|at| {
                    at.empirical
                        .map(|stats| (at.epsilon, stats.median_relative))
                })
                .filter(|(_, value)| value.is_finite())
                .map(|(epsilon, value)| (epsilon, value * 100.0))
                .collect();
            chart
                .draw_series(
                    measured
                        .into_iter()
                        .map(|point| Circle::new(point, 4, colour.filled())),
                )
                .map_err(error)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(error)?;
        Ok(())
    }
}

const PARTS: [&str; 5] = ["clamping", "L∞ rows", "L0 groups", "noise", "selection"];

/// Where the expected squared error comes from at the reference ε: one stacked bar per
/// aggregate.
struct Decomposition<'a> {
    query: &'a QueryReport,
    reference: usize,
    epsilon: f64,
}

impl Draw for Decomposition<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(error)?;
        let names: Vec<String> = self
            .query
            .aggregates
            .iter()
            .map(|aggregate| aggregate.name.clone())
            .collect();
        let count = names.len().max(1);
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{}: where the error comes from (ε = {})",
                    self.query.name,
                    short(self.epsilon)
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((0..count - 1).into_segmented(), 0.0..100.0)
            .map_err(error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("share of expected squared error (%)")
            .x_label_formatter(&|value| match value {
                SegmentValue::CenterOf(index) | SegmentValue::Exact(index) => {
                    names.get(*index).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(error)?;
        for (part_index, part) in PARTS.iter().enumerate() {
            let colour = color(part_index + 3);
            let bars: Vec<Rectangle<(SegmentValue<usize>, f64)>> = self
                .query
                .aggregates
                .iter()
                .enumerate()
                .filter_map(|(index, aggregate)| {
                    let at = aggregate.sweep.get(self.reference)?;
                    let shares = [
                        at.decomposition.clamping,
                        at.decomposition.linf,
                        at.decomposition.l0,
                        at.decomposition.noise,
                        at.decomposition.selection,
                    ];
                    let below: f64 = shares[..part_index].iter().sum::<f64>() * 100.0;
                    let height = shares[part_index] * 100.0;
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(index), below),
                            (SegmentValue::Exact(index + 1), below + height),
                        ],
                        colour.filled(),
                    );
                    bar.set_margin(0, 0, 12, 12);
                    Some(bar)
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(error)?
                .label(*part)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(error)?;
        Ok(())
    }
}

/// Median relative error by group size at the reference ε.
struct BySize<'a> {
    query: &'a QueryReport,
    reference: usize,
    epsilon: f64,
}

impl Draw for BySize<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(error)?;
        let labels: Vec<String> = self
            .query
            .aggregates
            .first()
            .and_then(|aggregate| aggregate.sweep.get(self.reference))
            .map(|at| at.by_size.iter().map(|slice| slice.label.clone()).collect())
            .unwrap_or_default();
        let count = labels.len().max(1);
        let top = self
            .query
            .aggregates
            .iter()
            .filter_map(|aggregate| aggregate.sweep.get(self.reference))
            .flat_map(|at| at.by_size.iter().map(|slice| slice.median_relative))
            .filter(|value| value.is_finite())
            .fold(0.0_f64, f64::max)
            .clamp(0.01, 10.0)
            * 110.0;
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{}: median relative error by group size (ε = {})",
                    self.query.name,
                    short(self.epsilon)
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((0..count - 1).into_segmented(), 0.0..top)
            .map_err(error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("distinct units in the group")
            .y_desc("median relative error (%)")
            .x_label_formatter(&|value| match value {
                SegmentValue::CenterOf(index) | SegmentValue::Exact(index) => {
                    labels.get(*index).cloned().unwrap_or_default()
                }
                SegmentValue::Last => String::new(),
            })
            .draw()
            .map_err(error)?;
        for (index, aggregate) in self.query.aggregates.iter().enumerate() {
            let colour = color(index);
            let Some(at) = aggregate.sweep.get(self.reference) else {
                continue;
            };
            let points: Vec<(SegmentValue<usize>, f64)> = at
                .by_size
                .iter()
                .enumerate()
                .filter(|(_, slice)| slice.median_relative.is_finite())
                .map(|(bucket, slice)| {
                    (
                        SegmentValue::CenterOf(bucket),
                        slice.median_relative * 100.0,
                    )
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(error)?
                .label(aggregate.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|point| Circle::new(point, 4, colour.filled())),
                )
                .map_err(error)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(error)?;
        Ok(())
    }
}

/// Every chart of a report: per query, error vs ε, its decomposition and its spread by
/// group size.
///
/// # Errors
/// [`ReportError::Chart`] if drawing fails.
pub fn charts(report: &Report) -> Result<Vec<Chart>, ReportError> {
    let reference = crate::sweep::nearest(&report.epsilons, report.reference_epsilon);
    let mut charts = Vec::new();
    for query in &report.queries {
        let stem = stem(&query.name);
        charts.push(render(
            format!("{stem}-error-vs-epsilon"),
            &query.name,
            "Median relative error vs ε (lines: analytic; dots: Monte Carlo)".into(),
            &ErrorVsEpsilon {
                query,
                epsilons: &report.epsilons,
            },
        )?);
        charts.push(render(
            format!("{stem}-decomposition"),
            &query.name,
            "Where the error comes from".into(),
            &Decomposition {
                query,
                reference,
                epsilon: report.reference_epsilon,
            },
        )?);
        charts.push(render(
            format!("{stem}-group-size"),
            &query.name,
            "Error by group size".into(),
            &BySize {
                query,
                reference,
                epsilon: report.reference_epsilon,
            },
        )?);
    }
    Ok(charts)
}
