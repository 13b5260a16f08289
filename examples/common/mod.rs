//! Small helpers the examples share: flags, accuracy, line plots.
#![allow(dead_code)]

pub mod cnn;
pub mod mnist;
pub mod training;

use plotters::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tapegrad::{Element, Tensor};

/// Command-line options, parsed by `lexopt`: `--name value`,
/// `--name=value` and bare `--switches`. The options an example accepts are
/// the ones its usage text lists (`--epochs N` takes a value, `--quick`
/// does not), so the help and the parser cannot disagree; anything else is
/// an error that prints the usage.
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
    usage: &'static str,
}

/// The options `usage` lists: name, and whether it takes a value (an
/// upper-case placeholder after it).
fn options(usage: &str) -> Vec<(String, bool)> {
    let words: Vec<&str> = usage
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<(String, bool)> = Vec::new();
    for (k, w) in words.iter().enumerate() {
        let Some(name) = w.strip_prefix("--") else {
            continue;
        };
        // `cargo run --release --example NAME --` in the usage line is
        // cargo's, not the example's.
        let cargo = ["release", "example"].contains(&name);
        if name.is_empty() || cargo || out.iter().any(|(n, _)| n == name) {
            continue;
        }
        let takes = words.get(k + 1).is_some_and(|next| {
            next.chars().all(|c| c.is_ascii_uppercase() || c == '_') && next.len() <= 8
        });
        out.push((name.to_string(), takes));
    }
    out
}

impl Args {
    /// Reads the process arguments; `--help` prints `usage` and exits, an
    /// unknown option or a missing value prints what is wrong and the
    /// usage, and exits with status 2.
    pub fn parse(usage: &'static str) -> Self {
        match Self::try_parse(usage, std::env::args_os().skip(1)) {
            Ok(args) => args,
            Err(e) if e == "help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("error: {e}\n\n{usage}");
                std::process::exit(2);
            }
        }
    }

    fn try_parse(
        usage: &'static str,
        argv: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Self, String> {
        use lexopt::Arg;
        let known = options(usage);
        let mut parser = lexopt::Parser::from_args(argv);
        let mut args = Args {
            values: HashMap::new(),
            switches: Vec::new(),
            usage,
        };
        while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
            match arg {
                Arg::Long("help") | Arg::Short('h') => return Err("help".into()),
                Arg::Long(name) => {
                    let name = name.to_string();
                    match known.iter().find(|(n, _)| *n == name) {
                        Some((_, true)) => {
                            let v = parser
                                .value()
                                .map_err(|_| format!("--{name} needs a value"))?;
                            let v = v
                                .into_string()
                                .map_err(|_| format!("--{name}: not UTF-8"))?;
                            args.values.insert(name, v);
                        }
                        Some((_, false)) => args.switches.push(name),
                        None => return Err(format!("unknown option --{name}")),
                    }
                }
                other => return Err(other.unexpected().to_string()),
            }
        }
        Ok(args)
    }

    /// Whether `--name` was given, or the environment asks for quick runs
    /// (`TAPEGRAD_QUICK=1`, what CI sets) when `name` is `quick`.
    pub fn flag(&self, name: &str) -> bool {
        self.switches.iter().any(|a| a == name)
            || (name == "quick" && std::env::var("TAPEGRAD_QUICK").is_ok_and(|v| v == "1"))
    }

    /// The value of `--name`, parsed, or `default`.
    pub fn value<V: FromStr>(&self, name: &str, default: V) -> V {
        match self.values.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("error: --{name} {v}: not a valid value\n\n{}", self.usage);
                std::process::exit(2);
            }),
        }
    }

    /// A count that must be at least 1 (`--epochs 0` would train nothing:
    /// it ends at once with a message instead).
    pub fn count(&self, name: &str, default: usize) -> usize {
        let n: usize = self.value(name, default);
        if n == 0 {
            eprintln!(
                "error: --{name} 0: nothing to do; give at least 1\n\n{}",
                self.usage
            );
            std::process::exit(2);
        }
        n
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

/// Each 28×28 image (a row of 784 pixels) moved by a random whole number
/// of pixels, up to two in each direction (pixels shifted in are blank).
pub fn jitter(x: &Tensor<f32>, seed: u64) -> Tensor<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Tensor::zeros(x.shape());
    for (src, dst) in x
        .data()
        .chunks_exact(784)
        .zip(out.data_mut().chunks_exact_mut(784))
    {
        let (dx, dy): (i32, i32) = (rng.random_range(-2..=2), rng.random_range(-2..=2));
        for r in 0..28 {
            for c in 0..28 {
                let (sr, sc) = (r - dy, c - dx);
                if (0..28).contains(&sr) && (0..28).contains(&sc) {
                    dst[(r * 28 + c) as usize] = src[(sr * 28 + sc) as usize];
                }
            }
        }
    }
    out
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
    let integer_x = p
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .all(|q| q.0.fract() == 0.0);
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
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(p.x_label)
                .y_desc(p.y_label)
                .y_label_formatter(&tick);
            if integer_x {
                // Whole-number x (epochs): a tick per step, no fractions.
                let n = ((x1 - x0) as usize + 1).min(12);
                mesh.x_labels(n).x_label_formatter(&|v: &f64| {
                    if v.fract().abs() < 1e-9 {
                        format!("{v:.0}")
                    } else {
                        String::new()
                    }
                });
            }
            if p.log_y {
                // A log axis's minor lines crowd the picture: major only.
                mesh.light_line_style(TRANSPARENT);
            }
            mesh.draw()?;
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
