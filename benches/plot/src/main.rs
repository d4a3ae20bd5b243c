//! Draws the SVG plots of `BENCHMARKS.md` from the JSON that
//! `benches/report.py` writes (the medians are computed there; this only
//! draws them):
//!
//! ```text
//! cargo run --release --manifest-path benches/plot/Cargo.toml -- plots.json OUT_DIR
//! ```
//!
//! - `ratios.svg`: one horizontal bar per compared row, grouped by
//!   primitive: the time ratio verisync / competitor on a log scale, drawn
//!   from 1× (parity; left of it verisync is faster), green when the row
//!   meets its target, red when it misses it, grey when it has none; a
//!   black tick marks the target.
//! - one file per figure in `figures` (throughput against thread count):
//!   a panel per workload, a line per implementation.
//!
//! A smoke run's banner ("SMOKE RUN — not measurements") goes into every
//! title. SVG only, with plotters' built-in text sizing: no font files.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use plotters::coord::combinators::IntoLogRange;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use serde::Deserialize;

/// What `benches/report.py` writes.
#[derive(Deserialize)]
struct Plots {
    /// Set for a smoke run: shown in every title.
    banner: Option<String>,
    /// The machine, for the subtitle.
    machine: String,
    ratios: Vec<RatioRow>,
    figures: Vec<Figure>,
}

/// One compared row of the table.
#[derive(Deserialize)]
struct RatioRow {
    label: String,
    /// verisync's median time / the competitor's.
    ratio: f64,
    /// The most the ratio may be to meet the target, if there is one.
    limit: Option<f64>,
}

/// Throughput against thread count: one file, a panel per workload.
#[derive(Deserialize)]
struct Figure {
    file: String,
    title: String,
    x_label: String,
    y_label: String,
    panels: Vec<Panel>,
}

#[derive(Deserialize)]
struct Panel {
    title: String,
    series: Vec<Series>,
}

/// One implementation: (threads, throughput) points.
#[derive(Deserialize)]
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

const PASS: RGBColor = RGBColor(46, 139, 87);
const FAIL: RGBColor = RGBColor(200, 40, 40);
const INFO: RGBColor = RGBColor(150, 150, 150);
/// The lines of a throughput figure, one per implementation: Tableau's ten
/// categorical colors, chosen to be told apart (plotters' `Palette99` put
/// two yellows side by side).
const SERIES_COLORS: [RGBColor; 10] = [
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

fn title(plots: &Plots, text: &str) -> String {
    match &plots.banner {
        Some(banner) => format!("{banner}: {text}"),
        None => text.to_owned(),
    }
}

fn draw_ratios(plots: &Plots, path: &Path) -> Result<(), Box<dyn Error>> {
    let rows = &plots.ratios;
    if rows.is_empty() {
        return Ok(());
    }
    let height = 110 + 26 * rows.len() as u32;
    let root = SVGBackend::new(path, (1400, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let values = rows
        .iter()
        .flat_map(|row| std::iter::once(row.ratio).chain(row.limit))
        .chain([1.0]);
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(low, high), value| {
        (low.min(value), high.max(value))
    });
    let count = rows.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            title(
                plots,
                "time ratio verisync / competitor (log scale; < 1× = verisync faster)",
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(700)
        .build_cartesian_2d(
            ((low / 1.5).max(1e-3)..high * 1.5).log_scale(),
            // `into_segmented` counts both ends: `count` segments.
            (0..count - 1).into_segmented(),
        )?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(plots.machine.as_str())
        .x_label_formatter(&|ratio| {
            // Only the round values: the log scale's ticks are dense.
            let nice = [
                0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
            ];
            if nice
                .iter()
                .any(|value| ((ratio - value) / value).abs() < 1e-6)
            {
                format!("{ratio}×")
            } else {
                String::new()
            }
        })
        .y_labels(rows.len())
        .y_label_formatter(&|value| match value {
            // Row 0 at the top.
            SegmentValue::CenterOf(index) => rows
                .get((count - 1 - index) as usize)
                .map_or(String::new(), |row| row.label.clone()),
            _ => String::new(),
        })
        .y_label_style(("sans-serif", 12))
        .draw()?;
    // Row `index` from the top: its segment's two edges.
    let at = |index: usize| (count - 1 - index as i32, count - index as i32);
    chart.draw_series(rows.iter().enumerate().map(|(index, row)| {
        let color = match row.limit {
            None => INFO,
            Some(limit) if row.ratio <= limit => PASS,
            Some(_) => FAIL,
        };
        let (bottom, top) = at(index);
        let mut bar = Rectangle::new(
            [
                (1.0, SegmentValue::Exact(bottom)),
                (row.ratio, SegmentValue::Exact(top)),
            ],
            color.filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        bar
    }))?;
    // The target of each row: a black tick across its bar.
    chart.draw_series(rows.iter().enumerate().filter_map(|(index, row)| {
        let (bottom, top) = at(index);
        row.limit.map(|limit| {
            PathElement::new(
                vec![
                    (limit, SegmentValue::Exact(bottom)),
                    (limit, SegmentValue::Exact(top)),
                ],
                BLACK.stroke_width(3),
            )
        })
    }))?;
    // Parity.
    chart.draw_series(std::iter::once(PathElement::new(
        vec![
            (1.0, SegmentValue::Exact(0)),
            (1.0, SegmentValue::Exact(count)),
        ],
        BLACK.stroke_width(1),
    )))?;
    root.present()?;
    Ok(())
}

fn draw_figure(plots: &Plots, figure: &Figure, path: &Path) -> Result<(), Box<dyn Error>> {
    let panels = figure.panels.len().max(1);
    let width = (420 * panels as u32 + 40).max(800);
    let root = SVGBackend::new(path, (width, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&title(plots, &figure.title), ("sans-serif", 18))?;
    let areas = root.split_evenly((1, panels));
    // One color per implementation across the panels.
    let mut names: Vec<&str> = figure
        .panels
        .iter()
        .flat_map(|panel| panel.series.iter().map(|series| series.name.as_str()))
        .collect();
    // verisync's own lines first, so they take the first two colors.
    names.sort_unstable_by_key(|name| (!name.starts_with("verisync"), *name));
    names.dedup();
    let color_of = |name: &str| {
        let index = names.iter().position(|known| *known == name).unwrap_or(0);
        SERIES_COLORS[index % SERIES_COLORS.len()]
    };
    for (panel, area) in figure.panels.iter().zip(areas.iter()) {
        let points = || panel.series.iter().flat_map(|series| &series.points);
        let (x_low, x_high) = points().fold((f64::MAX, f64::MIN), |(low, high), &(x, _)| {
            (low.min(x), high.max(x))
        });
        let y_high = points().fold(0.0f64, |high, &(_, y)| high.max(y));
        if x_low > x_high {
            continue; // no points: nothing was measured for this panel
        }
        let pad = ((x_high - x_low) * 0.1).max(0.5);
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title.as_str(), ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            // Headroom above the highest point for the legend, a line per series.
            .build_cartesian_2d(
                x_low - pad..x_high + pad,
                0.0..y_high * (1.15 + 0.08 * panel.series.len() as f64),
            )?;
        chart
            .configure_mesh()
            .x_desc(figure.x_label.as_str())
            .y_desc(figure.y_label.as_str())
            .x_labels(8)
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-9 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .draw()?;
        for series in &panel.series {
            let color = color_of(&series.name);
            chart
                .draw_series(LineSeries::new(
                    series.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(series.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(PointSeries::of_element(
                series.points.iter().copied(),
                4,
                color.filled(),
                &|point, size, style| EmptyElement::at(point) + Circle::new((0, 0), size, style),
            ))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(input), Some(out_dir)) = (args.next(), args.next()) else {
        return Err("usage: verisync-bench-plots PLOTS.json OUT_DIR".into());
    };
    let plots: Plots = serde_json::from_str(&fs::read_to_string(&input)?)?;
    let out_dir = PathBuf::from(out_dir);
    fs::create_dir_all(&out_dir)?;
    let ratios = out_dir.join("ratios.svg");
    draw_ratios(&plots, &ratios)?;
    println!("wrote {}", ratios.display());
    for figure in &plots.figures {
        let path = out_dir.join(&figure.file);
        draw_figure(&plots, figure, &path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
