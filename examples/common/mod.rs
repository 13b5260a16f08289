//! Small helpers the examples share: flags, accuracy, line plots.
#![allow(dead_code)]

use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tapegrad::{Element, Tensor};

/// Command-line flags: `--name value` pairs and bare `--switches`.
pub struct Args {
    args: Vec<String>,
    usage: &'static str,
}

impl Args {
    /// Reads the process arguments; `--help` prints `usage` and exits.
    pub fn parse(usage: &'static str) -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "--help" || a == "-h") {
            println!("{usage}");
            std::process::exit(0);
        }
        Args { args, usage }
    }

    /// Whether `--name` was given, or the environment asks for quick runs
    /// (`TAPEGRAD_QUICK=1`, what CI sets) when `name` is `quick`.
    pub fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == &format!("--{name}"))
            || (name == "quick" && std::env::var("TAPEGRAD_QUICK").is_ok_and(|v| v == "1"))
    }

    /// The value after `--name`, parsed, or `default`.
    pub fn value<V: FromStr>(&self, name: &str, default: V) -> V {
        let key = format!("--{name}");
        match self.args.iter().position(|a| *a == key) {
            None => default,
            Some(i) => match self.args.get(i + 1).map(|v| v.parse()) {
                Some(Ok(v)) => v,
                _ => {
                    eprintln!("{key} needs a value\n\n{}", self.usage);
                    std::process::exit(2);
                }
            },
        }
    }

    /// The directory for output files (`--out DIR`, default `out/`),
    /// created if needed.
    pub fn out_dir(&self) -> PathBuf {
        let dir = PathBuf::from(self.value("out", "out".to_string()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    }
}

/// The index of the largest entry of each row.
pub fn argmax_rows<T: Element>(scores: &Tensor<T>) -> Vec<usize> {
    let c = scores.shape()[1];
    scores
        .data()
        .chunks_exact(c)
        .map(|row| (0..c).fold(0, |best, k| if row[k] > row[best] { k } else { best }))
        .collect()
}

/// Fraction of predictions equal to the labels.
pub fn accuracy(pred: &[usize], labels: &[usize]) -> f64 {
    pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / labels.len().max(1) as f64
}

/// One line of a plot: a name and its points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, axis labels, its lines, and whether y is logarithmic.
pub struct Panel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
    pub log_y: bool,
}

/// Short tick labels: at most four significant digits, no float noise.
fn tick(v: &f64) -> String {
    if v.abs() < 1e-12 {
        return "0".into();
    }
    if *v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        return format!("{v:.0e}");
    }
    let s = format!("{:.4}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &Panel<'_>,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let xs = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0));
    let ys = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.1))
        .filter(|y| y.is_finite() && (!p.log_y || *y > 0.0));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let pad = if p.log_y {
        0.0
    } else {
        (y1 - y0).max(1e-12) * 0.05
    };
    let mut builder = ChartBuilder::on(area);
    let chart = builder
        .caption(p.title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60);
    let colors = [
        RED,
        BLUE,
        GREEN,
        MAGENTA,
        BLACK,
        CYAN,
        RGBColor(230, 140, 0),
        RGBColor(120, 60, 160),
    ];
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(p.x_label)
                .y_desc(p.y_label)
                .y_label_formatter(&tick)
                .draw()?;
            for (i, s) in p.series.iter().enumerate() {
                let color = colors[i % colors.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))?
                    .label(s.name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }};
    }
    if p.log_y {
        finish!(chart.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?);
    } else {
        finish!(chart.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?);
    }
    Ok(())
}

/// Draws the panels side by side into one SVG file.
pub fn save_panels(path: &Path, panels: &[Panel<'_>]) {
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let rows = if panels.len() > 2 { 2 } else { 1 };
        let cols = panels.len().div_ceil(rows);
        let root =
            SVGBackend::new(path, (640 * cols as u32, 460 * rows as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        for (area, panel) in root.split_evenly((rows, cols)).iter().zip(panels) {
            draw_panel(area, panel)?;
        }
        root.present()?;
        Ok(())
    };
    if let Err(e) = draw() {
        eprintln!("could not draw {}: {e}", path.display());
    }
}
