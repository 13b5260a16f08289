//! Every solver of `tapegrad::optim` on the Rosenbrock function from
//! (-1.2, 1): iterations, evaluations, and f against iteration for each,
//! drawn in one picture (`out/solvers.svg`). Levenberg–Marquardt sees the
//! same function as the sum of squares of r = (10(y - x²), 1 - x).
//!
//! ```text
//! cargo run --release --example solvers
//! ```

mod common;

use common::{save_panels, Args, Panel, Series};
use tapegrad::optim::{LevenbergMarquardt, Method, Minimizer, Problem};
use tapegrad::Var;

const USAGE: &str = "\
Compare the classical solvers on the Rosenbrock function.

usage: cargo run --release --example solvers -- [--out DIR]";

fn rosenbrock(v: Var<'_, f64>) -> Var<'_, f64> {
    let (x, y) = (v.narrow(0, 0, 1), v.narrow(0, 1, 1));
    ((y - x.square()).square() * 100.0 + (1.0 - x).square()).sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(USAGE);
    let out = args.out_dir();
    let start = [-1.2, 1.0];
    let problem = Problem::minimize(rosenbrock);
    let f0 = 24.2;
    println!("Rosenbrock from (-1.2, 1), stopping at |grad|inf <= 1e-10\n");
    println!(
        "{:<22} {:>6} {:>8} {:>8} {:>8}  {:>12}  x",
        "method", "iters", "f evals", "g evals", "H evals", "f"
    );
    let mut curves = vec![];
    for method in Method::ALL {
        let mut points = vec![(0.0, f0)];
        let report = Minimizer::new(method)
            .grad_tol(1e-10)
            .max_iter(20_000)
            .observe(|p| points.push((p.iteration as f64, p.f.max(1e-30))))
            .solve(&problem, &start)?;
        let e = report.evaluations;
        println!(
            "{:<22} {:>6} {:>8} {:>8} {:>8}  {:>12.3e}  ({:.8}, {:.8})",
            report.method, report.iterations, e.f, e.g, e.h, report.f, report.x[0], report.x[1]
        );
        curves.push(Series {
            name: report.method,
            points,
        });
    }
    let mut points = vec![(0.0, f0)];
    let residuals = Problem::least_squares(|v| {
        Var::from_scalars(&[(v.at(1) - v.at(0).square()) * 10.0, 1.0 - v.at(0)])
    });
    let lm = LevenbergMarquardt::new()
        .observe(|p| points.push((p.iteration as f64, p.f.max(1e-30))))
        .solve(&residuals, &start)?;
    let e = lm.evaluations;
    println!(
        "{:<22} {:>6} {:>8} {:>8} {:>8}  {:>12.3e}  ({:.8}, {:.8})",
        lm.method, lm.iterations, e.f, e.g, e.h, lm.f, lm.x[0], lm.x[1]
    );
    curves.push(Series {
        name: "Levenberg-Marquardt",
        points,
    });
    // Gradient descent takes thousands of iterations: show the first 200,
    // where the others finish.
    for c in &mut curves {
        c.points.retain(|p| p.0 <= 200.0);
    }
    let svg = out.join("solvers.svg");
    save_panels(
        &svg,
        &[Panel {
            title: "Rosenbrock from (-1.2, 1): f against iteration",
            x_label: "iteration",
            y_label: "f(x)",
            series: curves,
            log_y: true,
        }],
    );
    println!("\nconvergence plot: {}", svg.display());
    Ok(())
}
