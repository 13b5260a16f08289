//! The unconstrained driver: direction, line search, stopping rules,
//! progress and the report, shared by every method.

pub use super::directions::CgVariant;
use super::directions::{Bfgs, ConjugateGradient, Direction, Lbfgs, Newton, Steepest};
use super::line_search::{self, Armijo, LineSearch};
use super::problem::{
    dot, norm_inf, Evaluator, Observer, OptimError, Problem, Progress, Report, Solver, Termination,
};

/// An unconstrained method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Steepest descent with Armijo backtracking.
    GradientDescent,
    /// BFGS with a dense inverse-Hessian approximation.
    Bfgs,
    /// Limited-memory BFGS keeping the last [`Minimizer::history`] steps
    /// (10 unless set, as in SciPy).
    Lbfgs,
    /// Nonlinear conjugate gradients.
    ConjugateGradient(CgVariant),
    /// Newton's method with the exact Hessian from the engine.
    Newton,
}

impl Method {
    /// Every method, from first order to second.
    pub const ALL: [Method; 6] = [
        Method::GradientDescent,
        Method::ConjugateGradient(CgVariant::FletcherReeves),
        Method::ConjugateGradient(CgVariant::PolakRibierePlus),
        Method::Bfgs,
        Method::Lbfgs,
        Method::Newton,
    ];

    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Method::GradientDescent => "gradient descent",
            Method::Bfgs => "BFGS",
            Method::Lbfgs => "L-BFGS",
            Method::ConjugateGradient(CgVariant::FletcherReeves) => "CG (Fletcher-Reeves)",
            Method::ConjugateGradient(CgVariant::PolakRibierePlus) => "CG (Polak-Ribiere+)",
            Method::Newton => "Newton",
        }
    }

    /// The iteration limit a [`Minimizer`] uses unless told otherwise:
    /// gradient descent needs tens of thousands of iterations on
    /// Rosenbrock-like valleys (16,231 on the 2-d Rosenbrock function from
    /// (-1.2, 1)), conjugate gradients more than quasi-Newton methods.
    ///
    /// | method | default `max_iter` |
    /// |---|---|
    /// | gradient descent | 100,000 |
    /// | conjugate gradients | 20,000 |
    /// | BFGS, L-BFGS | 15,000 (SciPy's L-BFGS-B default) |
    /// | Newton | 1,000 |
    pub fn default_max_iter(&self) -> usize {
        match self {
            Method::GradientDescent => 100_000,
            Method::ConjugateGradient(_) => 20_000,
            Method::Bfgs | Method::Lbfgs => 15_000,
            Method::Newton => 1_000,
        }
    }

    fn direction(&self, history: usize) -> Box<dyn Direction> {
        match *self {
            Method::GradientDescent => Box::new(Steepest),
            Method::Bfgs => Box::new(Bfgs::new()),
            Method::Lbfgs => Box::new(Lbfgs::new(history)),
            Method::ConjugateGradient(v) => Box::new(ConjugateGradient::new(v)),
            Method::Newton => Box::new(Newton),
        }
    }

    fn default_line_search(&self) -> LineSearch {
        match self {
            Method::GradientDescent | Method::Newton => LineSearch::BACKTRACKING,
            Method::Bfgs | Method::Lbfgs => LineSearch::WOLFE,
            Method::ConjugateGradient(_) => LineSearch::WOLFE_CG,
        }
    }
}

/// Minimises an unconstrained [`Problem`] with a chosen [`Method`].
///
/// Stops when `‖∇f‖∞ <= grad_tol` (default 1e-8), when a step is shorter
/// than `step_tol·(1 + ‖x‖∞)` (default 1e-14), when `f` decreases by less
/// than `f_tol·max(1, |f|)` (default 0: off), or after `max_iter`
/// iterations (default per method: [`Method::default_max_iter`]). An
/// iteration is one accepted step; line-search trials within it do not
/// count.
pub struct Minimizer<'o> {
    method: Method,
    max_iter: usize,
    history: usize,
    grad_tol: f64,
    step_tol: f64,
    f_tol: f64,
    line_search: LineSearch,
    observer: Option<Observer<'o>>,
}

impl<'o> Minimizer<'o> {
    /// A minimiser with the default tolerances and the method's usual line
    /// search (backtracking for gradient descent and Newton, strong Wolfe
    /// with c2 = 0.9 for BFGS and L-BFGS, c2 = 0.1 for CG).
    pub fn new(method: Method) -> Self {
        Minimizer {
            method,
            max_iter: method.default_max_iter(),
            history: 10,
            grad_tol: 1e-8,
            step_tol: 1e-14,
            f_tol: 0.0,
            line_search: method.default_line_search(),
            observer: None,
        }
    }

    /// Iteration limit.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// How many (s, y) pairs L-BFGS keeps (default 10; other methods
    /// ignore it).
    ///
    /// # Panics
    /// If `m` is 0.
    #[track_caller]
    pub fn history(mut self, m: usize) -> Self {
        assert!(
            m > 0,
            "Minimizer::history: L-BFGS needs at least one (s, y) pair"
        );
        self.history = m;
        self
    }

    /// Stop when `‖∇f‖∞` is at most this.
    pub fn grad_tol(mut self, tol: f64) -> Self {
        self.grad_tol = tol;
        self
    }

    /// Stop when a step is shorter than this, relative to `1 + ‖x‖∞`.
    pub fn step_tol(mut self, tol: f64) -> Self {
        self.step_tol = tol;
        self
    }

    /// Stop when `f` decreases by less than this, relative to `max(1, |f|)`.
    pub fn f_tol(mut self, tol: f64) -> Self {
        self.f_tol = tol;
        self
    }

    /// Another line search.
    pub fn line_search(mut self, ls: LineSearch) -> Self {
        self.line_search = ls;
        self
    }

    /// Calls `f` after every iteration (for progress output or plots).
    pub fn observe(mut self, f: impl FnMut(&Progress<'_>) + 'o) -> Self {
        self.observer = Some(Box::new(f));
        self
    }

    /// Minimises `problem` from `x0`.
    ///
    /// # Errors
    /// [`OptimError::NonFiniteStart`] if `f` or its gradient is not finite
    /// at `x0`; [`OptimError::Unsupported`] if the problem has constraints.
    pub fn solve(&mut self, problem: &Problem<'_>, x0: &[f64]) -> Result<Report, OptimError> {
        if problem.is_constrained() {
            return Err(OptimError::Unsupported(format!(
                "{} handles unconstrained problems; use InteriorPoint for constraints",
                self.method.name()
            )));
        }
        let bounds = problem.bounds_for(x0)?;
        if bounds.is_some()
            && !matches!(
                self.method,
                Method::Lbfgs | Method::Bfgs | Method::GradientDescent
            )
        {
            return Err(OptimError::Unsupported(format!(
                "{} does not handle bounds; use Method::Lbfgs (projected, L-BFGS-B style) or InteriorPoint",
                self.method.name()
            )));
        }
        let mut ev = Evaluator::new(&*problem.f);
        let mut x = x0.to_vec();
        if let Some((lo, hi)) = bounds {
            project(&mut x, lo, hi);
        }
        let stationarity = |x: &[f64], g: &[f64]| match bounds {
            None => norm_inf(g),
            Some((lo, hi)) => projected_gradient_norm(x, g, lo, hi),
        };
        let (mut f, mut g) = ev.value_grad(&x);
        if !f.is_finite() || g.iter().any(|v| !v.is_finite()) {
            return Err(OptimError::NonFiniteStart {
                x,
                f: problem.sign * f,
            });
        }
        let mut dir = self.method.direction(self.history);
        let mut previous_alpha = None;
        let mut iterations = 0;
        let termination = loop {
            if stationarity(&x, &g) <= self.grad_tol {
                break Termination::GradientTolerance;
            }
            if iterations == self.max_iter {
                break Termination::MaxIterations;
            }
            iterations += 1;
            let (x_new, f_new, g_new, alpha) = if let Some((lo, hi)) = bounds {
                let Some(accepted) =
                    projected_step(&mut *dir, &mut ev, &x, f, &g, lo, hi, previous_alpha)?
                else {
                    break Termination::LineSearchFailed;
                };
                accepted
            } else {
                let mut d = dir.direction(&x, &g, &mut ev)?;
                if dot(&g, &d) >= 0.0 {
                    dir.reset();
                    d = g.iter().map(|v| -v).collect();
                }
                let a0 = dir.first_trial(previous_alpha, &g, &d);
                let mut step = line_search::search(self.line_search, &mut ev, &x, f, &g, &d, a0);
                if step.is_none() && dot(&g, &d) != -dot(&g, &g) {
                    // One retry along the steepest direction before giving up.
                    dir.reset();
                    d = g.iter().map(|v| -v).collect();
                    let a0 = (1.0 / norm_inf(&g)).min(1.0);
                    step = line_search::search(self.line_search, &mut ev, &x, f, &g, &d, a0);
                }
                let Some(step) = step else {
                    break Termination::LineSearchFailed;
                };
                let s: Vec<f64> = d.iter().map(|d| step.alpha * d).collect();
                let y: Vec<f64> = step.g.iter().zip(&g).map(|(a, b)| a - b).collect();
                dir.update(&s, &y);
                let x_new = x.iter().zip(&s).map(|(x, s)| x + s).collect();
                (x_new, step.f, step.g, step.alpha)
            };
            let step_len = x_new
                .iter()
                .zip(&x)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            let decrease = f - f_new;
            (x, f, g) = (x_new, f_new, g_new);
            previous_alpha = Some(alpha);
            if let Some(obs) = self.observer.as_mut() {
                obs(&Progress {
                    iteration: iterations,
                    x: &x,
                    f: problem.sign * f,
                    grad_norm: stationarity(&x, &g),
                    step: step_len,
                });
            }
            if step_len <= self.step_tol * (1.0 + norm_inf(&x)) {
                break Termination::StepTolerance;
            }
            if self.f_tol > 0.0 && decrease <= self.f_tol * f.abs().max(1.0) {
                break Termination::FunctionTolerance;
            }
        };
        Ok(Report {
            method: self.method.name(),
            grad_norm: stationarity(&x, &g),
            x,
            f: problem.sign * f,
            iterations,
            evaluations: ev.counts,
            termination,
            constrained: None,
        })
    }
}

/// Clips `x` into the box.
fn project(x: &mut [f64], lo: &[f64], hi: &[f64]) {
    for ((x, l), h) in x.iter_mut().zip(lo).zip(hi) {
        *x = x.clamp(*l, *h);
    }
}

/// `‖P(x - ∇f) - x‖∞`: zero exactly at a point satisfying the bounded
/// problem's first-order conditions.
fn projected_gradient_norm(x: &[f64], g: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    (0..x.len()).fold(0.0, |m, i| {
        m.max(((x[i] - g[i]).clamp(lo[i], hi[i]) - x[i]).abs())
    })
}

/// An accepted projected step: the new point, `f` and `∇f` there, and the
/// step length `α` (the next first trial grows from it).
type Accepted = (Vec<f64>, f64, Vec<f64>, f64);

/// One step of projected quasi-Newton (the two-metric projection of
/// Bertsekas, as L-BFGS-B's simpler relatives do): variables at a bound
/// whose gradient pushes outward are held fixed; the method's direction
/// on the free ones, searched along the projected path `P(x + αd)` with
/// Armijo's rule on the actual displacement. Curvature pairs are kept on
/// the free variables only. `None` if no trial decreased `f`.
#[allow(clippy::too_many_arguments)]
fn projected_step(
    dir: &mut dyn Direction,
    ev: &mut Evaluator<'_, '_>,
    x: &[f64],
    f: f64,
    g: &[f64],
    lo: &[f64],
    hi: &[f64],
    previous_alpha: Option<f64>,
) -> Result<Option<Accepted>, OptimError> {
    let n = x.len();
    let eps = projected_gradient_norm(x, g, lo, hi).min(1e-3);
    let fixed: Vec<bool> = (0..n)
        .map(|i| (x[i] <= lo[i] + eps && g[i] > 0.0) || (x[i] >= hi[i] - eps && g[i] < 0.0))
        .collect();
    let free_g: Vec<f64> = (0..n).map(|i| if fixed[i] { 0.0 } else { g[i] }).collect();
    let mut d = dir.direction(x, &free_g, ev)?;
    d.iter_mut().zip(&fixed).for_each(|(d, &k)| {
        if k {
            *d = 0.0
        }
    });
    if dot(&free_g, &d) >= 0.0 {
        dir.reset();
        d = free_g.iter().map(|v| -v).collect();
    }
    let mut a = dir.first_trial(previous_alpha, &free_g, &d);
    let test = Armijo { f0: f, c1: 1e-4 };
    for _ in 0..60 {
        let mut xa: Vec<f64> = x.iter().zip(&d).map(|(x, d)| x + a * d).collect();
        project(&mut xa, lo, hi);
        let s: Vec<f64> = (0..n).map(|i| xa[i] - x[i]).collect();
        let predicted = dot(g, &s);
        let may_pass = |fa: f64| predicted < 0.0 && test.may_pass(fa, predicted);
        if let (fa, Some(ga)) = ev.value_then_grad(&xa, may_pass) {
            if ga.iter().all(|v| v.is_finite()) && test.accepts(fa, predicted, dot(&ga, &s)) {
                let y: Vec<f64> = (0..n)
                    .map(|i| if fixed[i] { 0.0 } else { ga[i] - g[i] })
                    .collect();
                dir.update(&s, &y);
                return Ok(Some((xa, fa, ga, a)));
            }
        }
        a *= 0.5;
    }
    Ok(None)
}

impl Solver for Minimizer<'_> {
    fn solve(&mut self, problem: &Problem<'_>, x0: &[f64]) -> Result<Report, OptimError> {
        Minimizer::solve(self, problem, x0)
    }
}
