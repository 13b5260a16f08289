//! The classical solvers on problems with known answers: the standard
//! unconstrained test functions, Levenberg–Marquardt's evaluation and
//! termination rules (the 27 NIST StRD problems are in `tests/nist.rs`),
//! and constrained problems with known multipliers.

use tapegrad::optim::{
    CgVariant, InteriorPoint, LevenbergMarquardt, Method, Minimizer, OptimError, Problem,
    Termination,
};
use tapegrad::{Tensor, Var};

fn at(v: Var<'_, f64>, i: usize) -> Var<'_, f64> {
    v.narrow(0, i, 1)
}

fn rosenbrock(v: Var<'_, f64>) -> Var<'_, f64> {
    let n = v.shape()[0];
    let (a, b) = (v.narrow(0, 0, n - 1), v.narrow(0, 1, n - 1));
    ((b - a.square()).square() * 100.0 + (a - 1.0).square()).sum()
}

/// Beale: (1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)², minimum (3, 0.5).
fn beale(v: Var<'_, f64>) -> Var<'_, f64> {
    let (x, y) = (at(v, 0), at(v, 1));
    ((1.5 - x + x * y).square()
        + (2.25 - x + x * y.square()).square()
        + (2.625 - x + x * y.powf(3.0)).square())
    .sum()
}

/// Powell singular, minimum 0 at the origin (singular Hessian there).
fn powell(v: Var<'_, f64>) -> Var<'_, f64> {
    let (a, b, c, d) = (at(v, 0), at(v, 1), at(v, 2), at(v, 3));
    ((a + b * 10.0).square()
        + (c - d).square() * 5.0
        + (b - c * 2.0).powf(4.0)
        + (a - d).powf(4.0) * 10.0)
        .sum()
}

/// Wood, minimum 0 at (1, 1, 1, 1).
fn wood(v: Var<'_, f64>) -> Var<'_, f64> {
    let (a, b, c, d) = (at(v, 0), at(v, 1), at(v, 2), at(v, 3));
    ((b - a.square()).square() * 100.0
        + (1.0 - a).square()
        + (d - c.square()).square() * 90.0
        + (1.0 - c).square()
        + ((b - 1.0).square() + (d - 1.0).square()) * 10.1
        + (b - 1.0) * (d - 1.0) * 19.8)
        .sum()
}

struct Case {
    name: &'static str,
    f: fn(Var<'_, f64>) -> Var<'_, f64>,
    x0: Vec<f64>,
    xstar: Vec<f64>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "Rosenbrock 2-D",
            f: rosenbrock,
            x0: vec![-1.2, 1.0],
            xstar: vec![1.0; 2],
        },
        Case {
            name: "Rosenbrock 100-D",
            f: rosenbrock,
            x0: (0..100)
                .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
                .collect(),
            xstar: vec![1.0; 100],
        },
        Case {
            name: "Beale",
            f: beale,
            x0: vec![1.0, 1.0],
            xstar: vec![3.0, 0.5],
        },
        Case {
            name: "Powell singular",
            f: powell,
            x0: vec![3.0, -1.0, 0.0, 1.0],
            xstar: vec![0.0; 4],
        },
        Case {
            name: "Wood",
            f: wood,
            x0: vec![-3.0, -1.0, -3.0, -1.0],
            xstar: vec![1.0; 4],
        },
    ]
}

fn methods() -> Vec<Method> {
    vec![
        Method::Bfgs,
        Method::Lbfgs,
        Method::ConjugateGradient(CgVariant::PolakRibierePlus),
        Method::ConjugateGradient(CgVariant::FletcherReeves),
        Method::Newton,
    ]
}

fn solve(method: Method, case: &Case) -> tapegrad::optim::Report {
    let problem = Problem::minimize(case.f);
    // Powell's minimum is singular (f grows like |x|⁴), so |x - x*| = 1e-6
    // needs a gradient near 1e-18: the tolerance follows.
    let grad_tol = if case.name == "Powell singular" {
        1e-20
    } else {
        1e-13
    };
    Minimizer::new(method)
        .grad_tol(grad_tol)
        .step_tol(0.0)
        .max_iter(20_000)
        .solve(&problem, &case.x0)
        .unwrap()
}

fn max_err(x: &[f64], xstar: &[f64]) -> f64 {
    x.iter()
        .zip(xstar)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn every_solver_finds_every_known_minimiser_to_1e_6() {
    let mut table = String::from(
        "problem            method                  iters    f evals  g evals  H evals  |x-x*|\n",
    );
    for case in cases() {
        for method in methods() {
            let r = solve(method, &case);
            if case.name == "Rosenbrock 100-D" && method == Method::Newton {
                // From this start, Newton's path leads to the other local
                // minimiser of the chained Rosenbrock function in n >= 4,
                // near (-1, 1, ..., 1) with f = 3.98662: check that it is one.
                assert_is_local_minimiser(&r, 3.986_62);
                continue;
            }
            let err = max_err(&r.x, &case.xstar);
            table += &format!(
                "{:<18} {:<22} {:>6} {:>9} {:>8} {:>8}  {:.1e}\n",
                case.name,
                r.method,
                r.iterations,
                r.evaluations.f,
                r.evaluations.g,
                r.evaluations.h,
                err
            );
            assert!(
                err < 1e-6,
                "{} with {}: |x - x*| = {err:e}\n{r}",
                case.name,
                r.method
            );
            assert!(r.evaluations.g >= r.iterations && r.evaluations.f >= r.iterations);
            assert_eq!(r.evaluations.h > 0, method == Method::Newton);
        }
    }
    // The evaluation counts, for comparison with SciPy and MINPACK
    // (`cargo test --test optim -- --nocapture`).
    println!("{table}");
}

fn assert_is_local_minimiser(r: &tapegrad::optim::Report, f_expected: f64) {
    assert!(
        r.grad_norm < 1e-10 && (r.f - f_expected).abs() < 1e-5,
        "{r}"
    );
    assert!(r.x[0] < -0.99 && r.x[0] > -1.0, "{r}");
    let n = r.x.len();
    let h = tapegrad::grad::hessian(rosenbrock, &Tensor::from_vec(r.x.clone(), [n]));
    let h = nalgebra::DMatrix::from_row_slice(n, n, h.data());
    assert!(
        nalgebra::Cholesky::new(h).is_some(),
        "the Hessian must be positive definite at a minimiser"
    );
}

#[test]
fn gradient_descent_reaches_the_minimum_of_well_conditioned_problems() {
    // Steepest descent applies where the conditioning is moderate; on
    // Rosenbrock it needs far more iterations than the other methods.
    let bowl = Problem::minimize(|v| {
        (v.square()
            * v.tape()
                .constant(Tensor::from_vec(vec![1.0, 4.0, 9.0], [3])))
        .sum()
    });
    let r = Minimizer::new(Method::GradientDescent)
        .grad_tol(1e-12)
        .solve(&bowl, &[1.0, -2.0, 0.5])
        .unwrap();
    assert!(max_err(&r.x, &[0.0; 3]) < 1e-12, "{r}");
    // The default iteration limit is enough for gradient descent here.
    let r = Minimizer::new(Method::GradientDescent)
        .grad_tol(1e-9)
        .solve(&Problem::minimize(beale), &[1.0, 1.0])
        .unwrap();
    assert!(max_err(&r.x, &[3.0, 0.5]) < 1e-6, "{r}");
}

/// With nothing but the method chosen, every method solves the 2-d and
/// 10-d Rosenbrock functions from their standard starts: the default
/// iteration limits fit the method (gradient descent needs 16,231 and
/// 26,010 iterations, far past a uniform 1,000).
#[test]
fn default_options_solve_rosenbrock_with_every_method() {
    for n in [2usize, 10] {
        let p = Problem::minimize(move |v| {
            let (a, b) = (v.narrow(0, 0, n - 1), v.narrow(0, 1, n - 1));
            ((b - a.square()).square() * 100.0 + (a - 1.0).square()).sum()
        });
        let x0: Vec<f64> = (0..n)
            .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
            .collect();
        for m in Method::ALL {
            let r = Minimizer::new(m).solve(&p, &x0).unwrap();
            assert!(r.termination.converged(), "{} n={n}: {r}", m.name());
            // For n >= 4 the extended function has a second local minimum,
            // f = 3.98658 near (-1, 1, ..., 1), which Newton's method
            // reaches from this start; it is a right answer too.
            let local = n >= 4 && (r.f - 3.986579112).abs() < 1e-8;
            assert!(
                local || max_err(&r.x, &vec![1.0; n]) < 1e-6,
                "{} n={n}: {r}",
                m.name()
            );
        }
    }
    // Line-search trials rejected on their value cost no gradient: the
    // strong-Wolfe methods evaluate fewer gradients than values here.
    let p = Problem::minimize(|v| {
        let (x, y) = (v.at(0), v.at(1));
        (y - x.square()).square() * 100.0 + (x - 1.0).square()
    });
    for m in [
        Method::Bfgs,
        Method::Lbfgs,
        Method::ConjugateGradient(CgVariant::FletcherReeves),
    ] {
        let r = Minimizer::new(m).solve(&p, &[-1.2, 1.0]).unwrap();
        assert!(r.evaluations.g < r.evaluations.f, "{r}");
    }
    let short = Minimizer::new(Method::Lbfgs).history(1).solve(
        &Problem::minimize(|v| (v - 3.0).square().sum()),
        &[0.0, 1.0],
    );
    assert!(max_err(&short.unwrap().x, &[3.0, 3.0]) < 1e-8);
}

/// Where the minimum value is far from zero, `f` stops resolving a
/// decrease long before the gradient is small: the searches then judge a
/// trial by its slope, so every method still reaches `grad_tol` (gradient
/// descent used to wander at ‖∇f‖ ≈ 1e-7 until its 100,000 iterations ran
/// out), with bounds too.
#[test]
fn a_flat_objective_far_from_zero_still_converges() {
    let w = Tensor::from_vec((1..=10).map(f64::from).collect(), [10]);
    let w = &w;
    let f = tapegrad::grad::func(move |v| ((v - 1.0).square() * v.tape().constant(w)).sum() + 6.25);
    for m in Method::ALL {
        let r = Minimizer::new(m)
            .solve(&Problem::minimize(f), &[5.0; 10])
            .unwrap();
        assert_eq!(
            r.termination,
            Termination::GradientTolerance,
            "{} {r}",
            m.name()
        );
        assert!(
            max_err(&r.x, &[1.0; 10]) < 1e-8 && r.iterations < 1000,
            "{} {r}",
            m.name()
        );
    }
    let lo: Vec<f64> = (0..10)
        .map(|i| if i % 2 == 0 { 1.5 } else { f64::NEG_INFINITY })
        .collect();
    let p = Problem::minimize(f).bounds(&lo, &[f64::INFINITY; 10]);
    for m in [Method::GradientDescent, Method::Lbfgs, Method::Bfgs] {
        let r = Minimizer::new(m).solve(&p, &[5.0; 10]).unwrap();
        assert_eq!(
            r.termination,
            Termination::GradientTolerance,
            "{} {r}",
            m.name()
        );
        let want: Vec<f64> = (0..10)
            .map(|i| if i % 2 == 0 { 1.5 } else { 1.0 })
            .collect();
        assert!(
            max_err(&r.x, &want) < 1e-8 && r.iterations < 1000,
            "{} {r}",
            m.name()
        );
    }
    // Freudenstein and Roth from (0.5, -2) (Moré, Garbow and Hillstrom,
    // problem 2) ends in its local minimum f = 48.9842536792, where the
    // strong Wolfe searches bracket by slope (L-BFGS used to fail its line
    // search there after 179 evaluations of f).
    let p = Problem::minimize(|v| {
        let (x, y) = (v.at(0), v.at(1));
        (x - 13.0 + ((y * -1.0 + 5.0) * y - 2.0) * y).square()
            + (x - 29.0 + ((y + 1.0) * y - 14.0) * y).square()
    });
    for m in Method::ALL {
        let r = Minimizer::new(m).solve(&p, &[0.5, -2.0]).unwrap();
        assert_eq!(
            r.termination,
            Termination::GradientTolerance,
            "{} {r}",
            m.name()
        );
        assert!((r.f - 48.9842536792).abs() < 1e-8, "{} {r}", m.name());
        assert!(
            r.evaluations.f < 200 || m == Method::GradientDescent,
            "{} {r}",
            m.name()
        );
    }
}

#[test]
fn newton_needs_few_iterations_and_survives_an_indefinite_hessian() {
    // Wood's Hessian is indefinite at (-3, -1, -3, -1).
    let r = solve(Method::Newton, &cases()[4]);
    assert!(r.iterations < 60, "{r}");
    let r = solve(Method::Newton, &cases()[0]);
    assert!(
        r.iterations < 40 && r.termination == Termination::GradientTolerance,
        "{r}"
    );
}

#[test]
fn maximize_negates_and_reports_the_objective_as_posed() {
    let p = Problem::maximize(|v| 3.0 - (v - 2.0).square().sum());
    let mut seen = vec![];
    let r = Minimizer::new(Method::Bfgs)
        .observe(|p| seen.push(p.f))
        .solve(&p, &[0.0, 5.0])
        .unwrap();
    assert!(max_err(&r.x, &[2.0, 2.0]) < 1e-8 && (r.f - 3.0).abs() < 1e-12);
    assert!(
        !seen.is_empty() && seen.windows(2).all(|w| w[1] >= w[0]),
        "{seen:?}"
    );
}

#[test]
fn a_start_where_f_is_not_finite_is_an_error() {
    let p = Problem::minimize(|v| v.ln().sum());
    let e = Minimizer::new(Method::Bfgs)
        .solve(&p, &[-1.0, 2.0])
        .unwrap_err();
    assert!(matches!(e, OptimError::NonFiniteStart { .. }));
    assert!(
        e.to_string()
            .starts_with("the objective is not finite at the start point [-1.0, 2.0]"),
        "{e}"
    );
    let constrained = Problem::minimize(|v| v.sum()).inequalities(|v| v - 1.0);
    assert!(matches!(
        Minimizer::new(Method::Bfgs).solve(&constrained, &[0.0]),
        Err(OptimError::Unsupported(_))
    ));
}

// ---- Interior point ----------------------------------------------------------

#[test]
fn hock_schittkowski_71() {
    // min x1 x4 (x1 + x2 + x3) + x3  s.t.  x1 x2 x3 x4 >= 25,  Σ xi² = 40,  1 <= xi <= 5.
    let p = Problem::minimize(|v| {
        let (a, b, c, d) = (at(v, 0), at(v, 1), at(v, 2), at(v, 3));
        (a * d * (a + b + c) + c).sum()
    })
    .inequalities(|v| {
        let product = (at(v, 0) * at(v, 1) * at(v, 2) * at(v, 3)).reshape([1]);
        Var::concat(&[25.0 - product, 1.0 - v, v - 5.0], 0)
    })
    .equalities(|v| (v.square().sum() - 40.0).reshape([1]));
    let r = InteriorPoint::new()
        .solve(&p, &[1.0, 5.0, 5.0, 1.0])
        .unwrap();
    assert!((r.f - 17.0140173).abs() < 1e-6, "{r}");
    let xstar = [1.0, 4.742_999_63, 3.821_149_98, 1.379_408_29];
    assert!(max_err(&r.x, &xstar) < 1e-6, "{r}");
    // Active: the product constraint and the bound x1 >= 1 (index 1).
    assert_eq!(r.constrained().active, vec![0, 1], "{r}");
    assert!(
        (r.constrained().inequality_multipliers[0] - 0.552_293_66).abs() < 1e-6,
        "{r}"
    );
    assert!(
        (r.constrained().inequality_multipliers[1] - 1.087_871_21).abs() < 1e-6,
        "{r}"
    );
    assert!(
        (r.constrained().equality_multipliers[0] - 0.161_468_57).abs() < 1e-6,
        "{r}"
    );
    assert!(
        r.constrained().constraint_violation < 1e-9
            && r.termination == Termination::GradientTolerance
    );
}

#[test]
fn quadratic_program_with_one_active_inequality() {
    // min (x - 1)² + (y - 2.5)²  s.t.  x + y <= 2 (active), x <= 3 (inactive), x - y = -1... no:
    // min (x - 1)² + (y - 2.5)² s.t. x + y <= 2, -x <= 0, x - 3 <= 0.
    // Solution (0.25, 1.75) with λ = 1.5 on x + y <= 2, others inactive.
    let p = Problem::minimize(|v| ((at(v, 0) - 1.0).square() + (at(v, 1) - 2.5).square()).sum())
        .inequalities(|v| {
            let (x, y) = (at(v, 0), at(v, 1));
            Var::concat(&[x + y - 2.0, -x, x - 3.0], 0)
        });
    let r = InteriorPoint::new().solve(&p, &[0.5, 0.5]).unwrap();
    assert!(max_err(&r.x, &[0.25, 1.75]) < 1e-8, "{r}");
    assert_eq!(r.constrained().active, vec![0]);
    assert!((r.constrained().inequality_multipliers[0] - 1.5).abs() < 1e-8);
    assert!(
        r.constrained().inequality_multipliers[1].abs() < 1e-8
            && r.constrained().inequality_multipliers[2].abs() < 1e-8
    );
    // With an equality instead: x - y = -1 moves the optimum to (0.5, 1.5).
    let q = Problem::minimize(|v| ((at(v, 0) - 1.0).square() + (at(v, 1) - 2.5).square()).sum())
        .inequalities(|v| (at(v, 0) + at(v, 1) - 2.0).reshape([1]))
        .equalities(|v| (at(v, 0) - at(v, 1) + 1.0).reshape([1]));
    let r = InteriorPoint::new().solve(&q, &[3.0, -3.0]).unwrap();
    assert!(max_err(&r.x, &[0.5, 1.5]) < 1e-8, "{r}");
}

/// Solves a Hock–Schittkowski problem from its standard start with the
/// default options and checks x, f and the multipliers against the
/// published optimum (multipliers from the KKT conditions there).
#[track_caller]
fn hock_schittkowski(
    name: &str,
    p: &Problem<'_>,
    x0: &[f64],
    xstar: &[f64],
    fstar: f64,
    nu: &[f64],
    tol_x: f64,
) {
    let r = InteriorPoint::new().solve(p, x0).unwrap();
    let c = r.evaluations;
    println!(
        "| {name} | {} | {} | {} | {} | {} | {:.1e} | {:.1e} |",
        r.iterations,
        c.f,
        c.g,
        c.h,
        c.constraints,
        max_err(&r.x, xstar),
        r.constrained().kkt_residual
    );
    assert!(r.termination.converged(), "{name}: {r}");
    assert!(max_err(&r.x, xstar) < tol_x, "{name}: x\n{r}");
    assert!(
        (r.f - fstar).abs() < 1e-8 * (1.0 + fstar.abs()),
        "{name}: f\n{r}"
    );
    assert!(
        max_err(&r.constrained().equality_multipliers, nu) < 1e-5,
        "{name}: ν\n{r}"
    );
    assert!(
        r.constrained().constraint_violation < 1e-8,
        "{name}: violation\n{r}"
    );
    assert!(r.iterations < 100, "{name}: {} iterations", r.iterations);
}

#[test]
fn hs6_rosenbrock_on_a_parabola() {
    let p = Problem::minimize(|v| (1.0 - at(v, 0)).square().sum())
        .equalities(|v| (at(v, 1) - at(v, 0).square()) * 10.0);
    hock_schittkowski("HS6", &p, &[-1.2, 1.0], &[1.0, 1.0], 0.0, &[0.0], 1e-6);
}

#[test]
fn hs7_log_objective_on_a_quartic_curve() {
    let p = Problem::minimize(|v| ((1.0 + at(v, 0).square()).ln() - at(v, 1)).sum())
        .equalities(|v| (1.0 + at(v, 0).square()).square() + at(v, 1).square() - 4.0);
    let nu = 1.0 / (2.0 * 3f64.sqrt());
    hock_schittkowski(
        "HS7",
        &p,
        &[2.0, 2.0],
        &[0.0, 3f64.sqrt()],
        -3f64.sqrt(),
        &[nu],
        1e-6,
    );
}

#[test]
fn hs26_degenerate_quartic() {
    let p = Problem::minimize(|v| {
        ((at(v, 0) - at(v, 1)).square() + (at(v, 1) - at(v, 2)).powf(4.0)).sum()
    })
    .equalities(|v| (1.0 + at(v, 1).square()) * at(v, 0) + at(v, 2).powf(4.0) - 3.0);
    // f is quartic at the optimum: x is only determined to about f^(1/4).
    hock_schittkowski(
        "HS26",
        &p,
        &[-2.6, 2.0, 2.0],
        &[1.0, 1.0, 1.0],
        0.0,
        &[0.0],
        1e-4,
    );
}

#[test]
fn hs27_penalised_rosenbrock() {
    let p = Problem::minimize(|v| {
        ((at(v, 0) - 1.0).square() * 0.01 + (at(v, 1) - at(v, 0).square()).square()).sum()
    })
    .equalities(|v| at(v, 0) + at(v, 2).square() + 1.0);
    hock_schittkowski(
        "HS27",
        &p,
        &[2.0, 2.0, 2.0],
        &[-1.0, 1.0, 0.0],
        0.04,
        &[0.04],
        1e-5,
    );
}

/// The case: a linear objective with two equalities, where the
/// undamped method ran to x ≈ (−97, −924930, 0, −967).
#[test]
fn hs39_linear_objective_with_two_equalities() {
    let p = Problem::minimize(|v| -at(v, 0).sum()).equalities(|v| {
        let (x1, x2, x3, x4) = (at(v, 0), at(v, 1), at(v, 2), at(v, 3));
        Var::concat(
            &[
                x2 - x1.powf(3.0) - x3.square(),
                x1.square() - x2 - x4.square(),
            ],
            0,
        )
    });
    let x0 = [2.0; 4];
    hock_schittkowski(
        "HS39",
        &p,
        &x0,
        &[1.0, 1.0, 0.0, 0.0],
        -1.0,
        &[-1.0, -1.0],
        1e-6,
    );
}

#[test]
fn hs40_product_with_three_equalities() {
    let p =
        Problem::minimize(|v| -(at(v, 0) * at(v, 1) * at(v, 2) * at(v, 3)).sum()).equalities(|v| {
            let (x1, x2, x3, x4) = (at(v, 0), at(v, 1), at(v, 2), at(v, 3));
            Var::concat(
                &[
                    x1.powf(3.0) + x2.square() - 1.0,
                    x1.square() * x4 - x3,
                    x4.square() - x2,
                ],
                0,
            )
        });
    let xstar = [-1.0 / 3.0, -0.5, -11.0 / 12.0, -0.25].map(|e| 2f64.powf(e));
    let nu = [0.5, -(2f64.powf(-13.0 / 12.0)), 0.5 / 2f64.sqrt()];
    hock_schittkowski("HS40", &p, &[0.8; 4], &xstar, -0.25, &nu, 1e-6);
}

#[test]
fn hs46_degenerate_sixth_power() {
    let p = Problem::minimize(|v| {
        let (x1, x2, x3, x4, x5) = (at(v, 0), at(v, 1), at(v, 2), at(v, 3), at(v, 4));
        ((x1 - x2).square() + (x3 - 1.0).square() + (x4 - 1.0).powf(4.0) + (x5 - 1.0).powf(6.0))
            .sum()
    })
    .equalities(|v| {
        let (x1, x2, x3, x4, x5) = (at(v, 0), at(v, 1), at(v, 2), at(v, 3), at(v, 4));
        Var::concat(
            &[
                x1.square() * x4 + (x4 - x5).sin() - 1.0,
                x2 + x3.powf(4.0) * x4.square() - 2.0,
            ],
            0,
        )
    });
    let x0 = [0.5 * 2f64.sqrt(), 1.75, 0.5, 2.0, 2.0];
    // Flat to sixth order in x5 at the optimum.
    hock_schittkowski("HS46", &p, &x0, &[1.0; 5], 0.0, &[0.0, 0.0], 1e-3);
}

/// min −x s.t. x² + y² = 1 from (0.5, 0.5): the first undamped iterate was
/// (5e7, −5e7).
#[test]
fn linear_objective_on_the_circle_stays_bounded() {
    let p = Problem::minimize(|v| -at(v, 0).sum())
        .equalities(|v| (v.square().sum() - 1.0).reshape([1]));
    let mut largest = 0.0f64;
    let r = InteriorPoint::new()
        .observe(|s| largest = largest.max(s.x.iter().fold(0.0f64, |m, v| m.max(v.abs()))))
        .solve(&p, &[0.5, 0.5])
        .unwrap();
    assert!(max_err(&r.x, &[1.0, 0.0]) < 1e-7, "{r}");
    assert!(
        (r.constrained().equality_multipliers[0] - 0.5).abs() < 1e-7,
        "{r}"
    );
    assert!(largest < 10.0, "an iterate reached |x| = {largest}");
}

/// The barrier options change the path, not the answer; bad values are
/// refused at the call.
#[test]
fn barrier_options_change_the_path_not_the_optimum() {
    let p = Problem::minimize(|v| ((at(v, 0) - 1.0).square() + (at(v, 1) - 2.5).square()).sum())
        .inequalities(|v| Var::concat(&[at(v, 0) + at(v, 1) - 2.0, -at(v, 0)], 0));
    let default = InteriorPoint::new().solve(&p, &[0.5, 0.5]).unwrap();
    let slow = InteriorPoint::new()
        .initial_barrier(10.0)
        .barrier_decrease(0.5)
        .solve(&p, &[0.5, 0.5])
        .unwrap();
    assert!(max_err(&slow.x, &[0.25, 1.75]) < 1e-8, "{slow}");
    assert!(slow.iterations > default.iterations, "{slow}\n{default}");
}

#[test]
#[should_panic(expected = "InteriorPoint::initial_barrier: needs a positive barrier, got 0")]
fn a_zero_barrier_is_refused() {
    let _ = InteriorPoint::new().initial_barrier(0.0);
}

#[test]
#[should_panic(expected = "InteriorPoint::barrier_decrease: needs a factor in (0, 1), got 1")]
fn a_barrier_that_does_not_decrease_is_refused() {
    let _ = InteriorPoint::new().barrier_decrease(1.0);
}

/// Each trial point's residuals are evaluated once: the Jacobian of an
/// accepted point comes from the same recording (before, 6 of the doc
/// example's 13 residual calls repeated the previous x).
#[test]
fn levenberg_marquardt_evaluates_each_point_once() {
    let t: Vec<f64> = (0..10).map(|i| i as f64 * 0.3).collect();
    let y: Vec<f64> = t
        .iter()
        .map(|t| 2.0 * (-0.5 * t).exp() + 0.01 * t.sin())
        .collect();
    let seen = std::cell::RefCell::new(Vec::<Vec<f64>>::new());
    let (t, y) = (Tensor::from_vec(t, [10]), Tensor::from_vec(y, [10]));
    let fit = Problem::least_squares(|p| {
        seen.borrow_mut().push(p.value().to_vec());
        let tape = p.tape();
        p.at(0) * (p.at(1) * tape.constant(&t)).exp() - tape.constant(&y)
    });
    let r = LevenbergMarquardt::new().solve(&fit, &[1.0, 0.0]).unwrap();
    drop(fit);
    let seen = seen.into_inner();
    assert_eq!(seen.len(), r.evaluations.f, "{r}");
    for (i, x) in seen.iter().enumerate() {
        assert!(!seen[..i].contains(x), "x = {x:?} evaluated twice\n{r}");
    }
    assert!(r.termination.converged(), "{r}");
}

/// Tolerances of zero cannot be met in floating point: the solver says so
/// instead of claiming convergence.
#[test]
fn unreachable_tolerances_are_not_convergence() {
    let r = LevenbergMarquardt::new()
        .f_tol(0.0)
        .step_tol(0.0)
        .solve(
            &Problem::least_squares(|p| {
                Var::concat(&[at(p, 0) - 1.0, at(p, 0) + 1.0, at(p, 1).exp()], 0)
            }),
            &[3.0, 0.0],
        )
        .unwrap();
    assert_eq!(r.termination, Termination::NoFurtherProgress, "{r}");
    assert!(!r.termination.converged());
    assert!(r.termination.message().starts_with("not converged"));
    assert!(r.x[0].abs() < 1e-8, "{r}");
}

#[test]
#[should_panic(
    expected = "LevenbergMarquardt::initial_step_bound: needs a positive factor, got -1"
)]
fn a_negative_step_bound_is_refused() {
    let _ = LevenbergMarquardt::new().initial_step_bound(-1.0);
}

/// Rosenbrock on the box [-1.5, 0.5] × [-1.5, 2]: the minimum moves to the
/// bound x = 0.5, y = x² = 0.25, f = 0.25, where ∂f/∂x = -1, so the upper
/// bound's multiplier is 1. Projected L-BFGS and the interior point agree.
#[test]
fn bounds_with_projected_lbfgs_and_the_interior_point() {
    let p = Problem::minimize(|v| {
        let (x, y) = (v.at(0), v.at(1));
        (y - x.square()).square() * 100.0 + (x - 1.0).square()
    })
    .bounds(&[-1.5, -1.5], &[0.5, 2.0]);
    for m in [Method::Lbfgs, Method::Bfgs] {
        let r = Minimizer::new(m).solve(&p, &[-1.2, 1.0]).unwrap();
        assert!(r.termination.converged(), "{r}");
        assert_eq!(r.x[0], 0.5, "{r}");
        assert!(
            (r.x[1] - 0.25).abs() < 1e-8 && (r.f - 0.25).abs() < 1e-12,
            "{r}"
        );
    }
    // A start outside the box is projected into it first.
    let r = Minimizer::new(Method::Lbfgs)
        .solve(&p, &[3.0, -4.0])
        .unwrap();
    assert!((r.x[1] - 0.25).abs() < 1e-8, "{r}");
    let r = InteriorPoint::new().solve(&p, &[-1.2, 1.0]).unwrap();
    let c = r.constrained();
    assert!(
        (r.x[0] - 0.5).abs() < 1e-8 && (r.x[1] - 0.25).abs() < 1e-8,
        "{r}"
    );
    assert!((c.upper_bound_multipliers[0] - 1.0).abs() < 1e-6, "{r}");
    assert!(c.upper_bound_multipliers[1].abs() < 1e-6 && c.lower_bound_multipliers[0].abs() < 1e-6);
    assert!(c.inequality_multipliers.is_empty());

    // Ten variables, half of them pushed onto a bound: x_i >= 1.5 for even
    // i on a separable quadratic with minimum at 1, so those end at 1.5.
    let n = 10;
    let lo: Vec<f64> = (0..n)
        .map(|i| if i % 2 == 0 { 1.5 } else { f64::NEG_INFINITY })
        .collect();
    let q = Problem::minimize(|v| (v - 1.0).square().sum()).bounds(&lo, &vec![f64::INFINITY; n]);
    let r = Minimizer::new(Method::Lbfgs)
        .solve(&q, &vec![5.0; n])
        .unwrap();
    for i in 0..n {
        let want = if i % 2 == 0 { 1.5 } else { 1.0 };
        assert!((r.x[i] - want).abs() < 1e-9, "x[{i}]: {r}");
    }
}

/// Solvers that cannot honour bounds say so; bounds of the wrong length
/// are an error, not a silent truncation.
#[test]
fn bounds_a_solver_cannot_honour_are_refused() {
    let p = Problem::least_squares(|v| v - 2.0).bounds(&[0.0, 0.0], &[1.0, 1.0]);
    for m in [
        Method::Newton,
        Method::ConjugateGradient(CgVariant::FletcherReeves),
    ] {
        let e = Minimizer::new(m).solve(&p, &[0.5, 0.5]).unwrap_err();
        assert!(e.to_string().contains("does not handle bounds"), "{e}");
    }
    let e = LevenbergMarquardt::new()
        .solve(&p, &[0.5, 0.5])
        .unwrap_err();
    assert!(e.to_string().contains("bounds"), "{e}");
    let e = Minimizer::new(Method::Lbfgs)
        .solve(&p, &[0.5, 0.5, 0.5])
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("bounds for 2 variables but the start point has 3"),
        "{e}"
    );
    let panicked = std::panic::catch_unwind(|| {
        Problem::minimize(|v| v.sum()).bounds(&[1.0], &[0.0]);
    });
    assert!(panicked.is_err());
}
