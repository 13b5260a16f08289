//! Levenberg–Marquardt on all 27 NIST StRD nonlinear least-squares problems
//! (`data/nist-strd/`, certified values from NIST) from both published
//! starts with the default options. Prints the table that
//! `docs/solvers.md` keeps: `cargo test --release --test nist -- --nocapture`.

use std::f64::consts::PI;
use tapegrad::optim::{self, LevenbergMarquardt};
use tapegrad::{Tensor, Var};

type Model = for<'t> fn(Var<'t, f64>, &[Var<'t, f64>]) -> Var<'t, f64>;

fn b(v: Var<'_, f64>, i: usize) -> Var<'_, f64> {
    v.narrow(0, i, 1)
}

/// Each problem's model, as NIST states it (`x` the predictor columns).
const MODELS: [(&str, Model); 27] = [
    ("Misra1a", exponential_rise),
    ("Chwirut2", chwirut),
    ("Chwirut1", chwirut),
    ("Lanczos3", lanczos),
    ("Gauss1", gauss),
    ("Gauss2", gauss),
    ("DanWood", |p, x| b(p, 0) * x[0].pow(b(p, 1))),
    ("Misra1b", |p, x| {
        b(p, 0) * (1.0 - (1.0 + b(p, 1) * x[0] * 0.5).powf(-2.0))
    }),
    ("Kirby2", |p, x| {
        let x = x[0];
        (b(p, 0) + b(p, 1) * x + b(p, 2) * x.square()) / (1.0 + b(p, 3) * x + b(p, 4) * x.square())
    }),
    ("Hahn1", rational_cubic),
    ("Nelson", |p, x| {
        b(p, 0) - b(p, 1) * x[0] * (-b(p, 2) * x[1]).exp()
    }),
    ("MGH17", |p, x| {
        b(p, 0) + b(p, 1) * (-x[0] * b(p, 3)).exp() + b(p, 2) * (-x[0] * b(p, 4)).exp()
    }),
    ("Lanczos1", lanczos),
    ("Lanczos2", lanczos),
    ("Gauss3", gauss),
    ("Misra1c", |p, x| {
        b(p, 0) * (1.0 - (1.0 + 2.0 * b(p, 1) * x[0]).powf(-0.5))
    }),
    ("Misra1d", |p, x| {
        b(p, 0) * b(p, 1) * x[0] / (1.0 + b(p, 1) * x[0])
    }),
    ("Roszman1", |p, x| {
        b(p, 0) - b(p, 1) * x[0] - (b(p, 2) / (x[0] - b(p, 3))).atan() / PI
    }),
    ("ENSO", |p, x| {
        let w = x[0] * (2.0 * PI);
        b(p, 0)
            + b(p, 1) * (w / 12.0).cos()
            + b(p, 2) * (w / 12.0).sin()
            + b(p, 4) * (w / b(p, 3)).cos()
            + b(p, 5) * (w / b(p, 3)).sin()
            + b(p, 7) * (w / b(p, 6)).cos()
            + b(p, 8) * (w / b(p, 6)).sin()
    }),
    ("MGH09", |p, x| {
        let x = x[0];
        b(p, 0) * (x.square() + x * b(p, 1)) / (x.square() + x * b(p, 2) + b(p, 3))
    }),
    ("Thurber", rational_cubic),
    ("BoxBOD", exponential_rise),
    ("Rat42", |p, x| {
        b(p, 0) / (1.0 + (b(p, 1) - b(p, 2) * x[0]).exp())
    }),
    ("MGH10", |p, x| b(p, 0) * (b(p, 1) / (x[0] + b(p, 2))).exp()),
    ("Eckerle4", |p, x| {
        (b(p, 0) / b(p, 1)) * (((x[0] - b(p, 2)) / b(p, 1)).square() * -0.5).exp()
    }),
    ("Rat43", |p, x| {
        b(p, 0) / (1.0 + (b(p, 1) - b(p, 2) * x[0]).exp()).pow(1.0 / b(p, 3))
    }),
    ("Bennett5", |p, x| {
        b(p, 0) * (b(p, 1) + x[0]).pow(-1.0 / b(p, 2))
    }),
];

/// Misra1a and BoxBOD: `b1·(1 − e^(−b2·x))`.
fn exponential_rise<'t>(p: Var<'t, f64>, x: &[Var<'t, f64>]) -> Var<'t, f64> {
    b(p, 0) * (1.0 - (-b(p, 1) * x[0]).exp())
}

/// Chwirut1 and Chwirut2: `e^(−b1·x) / (b2 + b3·x)`.
fn chwirut<'t>(p: Var<'t, f64>, x: &[Var<'t, f64>]) -> Var<'t, f64> {
    (-b(p, 0) * x[0]).exp() / (b(p, 1) + b(p, 2) * x[0])
}

fn lanczos<'t>(p: Var<'t, f64>, x: &[Var<'t, f64>]) -> Var<'t, f64> {
    let x = x[0];
    b(p, 0) * (-b(p, 1) * x).exp() + b(p, 2) * (-b(p, 3) * x).exp() + b(p, 4) * (-b(p, 5) * x).exp()
}

fn gauss<'t>(p: Var<'t, f64>, x: &[Var<'t, f64>]) -> Var<'t, f64> {
    let x = x[0];
    let bump =
        |a: usize, at: usize, w: usize| b(p, a) * (-((x - b(p, at)) / b(p, w)).square()).exp();
    b(p, 0) * (-b(p, 1) * x).exp() + bump(2, 3, 4) + bump(5, 6, 7)
}

fn rational_cubic<'t>(p: Var<'t, f64>, x: &[Var<'t, f64>]) -> Var<'t, f64> {
    let x = x[0];
    let (x2, x3) = (x.square(), x.square() * x);
    (b(p, 0) + b(p, 1) * x + b(p, 2) * x2 + b(p, 3) * x3)
        / (1.0 + b(p, 4) * x + b(p, 5) * x2 + b(p, 6) * x3)
}

struct Problem {
    x: Vec<Tensor<f64>>,
    y: Tensor<f64>,
    starts: [Vec<f64>; 2],
    certified: Vec<f64>,
    rss: f64,
}

fn load(name: &str) -> Problem {
    let path = format!("{}/data/nist-strd/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let list = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let column = |k: &str| {
        let c = list(&v[k]);
        Tensor::from_vec(c.clone(), [c.len()])
    };
    let x = if v.get("x").is_some() {
        vec![column("x")]
    } else {
        vec![column("x1"), column("x2")]
    };
    let mut y = list(&v["y"]);
    if name == "Nelson" {
        // NIST's Nelson model is for log(y).
        y.iter_mut().for_each(|y| *y = y.ln());
    }
    Problem {
        x,
        y: Tensor::from_vec(y.clone(), [y.len()]),
        starts: [list(&v["start1"]), list(&v["start2"])],
        certified: list(&v["certified"]["params"]),
        rss: v["certified"]["rss"].as_f64().unwrap(),
    }
}

/// Correct digits of `got` against `want`: −log10 of the relative error,
/// at most 15.
fn digits(got: f64, want: f64) -> f64 {
    let rel = ((got - want) / want).abs();
    if rel == 0.0 {
        15.0
    } else {
        (-rel.log10()).min(15.0)
    }
}

#[test]
fn every_nist_problem_from_both_starts() {
    println!("| problem | start | digits (worst parameter) | digits (RSS) | residual evaluations | Jacobians | stopped |");
    println!("|---|---|---|---|---|---|---|");
    let mut short = Vec::new();
    for (name, model) in MODELS {
        let d = load(name);
        for (k, start) in d.starts.iter().enumerate() {
            let fit = optim::Problem::least_squares(|p| {
                let tape = p.tape();
                let x: Vec<Var<'_, f64>> = d.x.iter().map(|c| tape.constant(c)).collect();
                model(p, &x) - tape.constant(&d.y)
            });
            let r = LevenbergMarquardt::new().solve(&fit, start).unwrap();
            let worst =
                r.x.iter()
                    .zip(&d.certified)
                    .map(|(g, w)| digits(*g, *w))
                    .fold(15.0, f64::min);
            // Lanczos1's certified RSS (1.4e-25) is below what f64 residuals
            // of size 1e-13 can sum to: count it exact at rounding level.
            let rss = if (r.f - d.rss).abs() < 1e-20 {
                15.0
            } else {
                digits(r.f, d.rss)
            };
            println!(
                "| {name} | {} | {worst:.1} | {rss:.1} | {} | {} | {:?} |",
                k + 1,
                r.evaluations.f,
                r.evaluations.g,
                r.termination
            );
            if worst < 6.0 || rss < 6.0 {
                short.push(format!("{name} start {}: {worst:.1} digits\n{r}", k + 1));
            }
        }
    }
    assert!(short.is_empty(), "below 6 digits: {short:#?}");
}
