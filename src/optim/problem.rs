//! The problem in the chapter's standard form, evaluation through the
//! engine with counts, and what a solver reports.

use crate::grad;
use crate::tape::Var;
use crate::tensor::Tensor;
use nalgebra::{DMatrix, DVector};
use std::fmt;

/// A function of the variables written with the engine's ops: it gets
/// `x` as a 1-d [`Var`] and returns a scalar (an objective) or a 1-d
/// vector (constraints, residuals).
pub type Func<'a> = dyn for<'t> Fn(Var<'t, f64>) -> Var<'t, f64> + 'a;

/// Lower and upper bounds, one pair per variable.
pub(crate) type Bounds = (Vec<f64>, Vec<f64>);

/// `minimise f(x)` subject to `g_i(x) <= 0` and `h_j(x) = 0`, in the
/// chapter's standard form. [`Problem::maximize`] negates the objective.
///
/// ```
/// use tapegrad::optim::Problem;
/// // maximise 1 - x² - y² subject to x + y >= 1, i.e. 1 - x - y <= 0
/// let p = Problem::maximize(|v| 1.0 - v.square().sum())
///     .inequalities(|v| 1.0 - v.sum().reshape([1]));
/// assert_eq!((p.num_inequalities(&[0.0, 0.0]), p.num_equalities(&[0.0, 0.0])), (1, 0));
/// ```
pub struct Problem<'a> {
    pub(crate) f: Box<Func<'a>>,
    pub(crate) g: Option<Box<Func<'a>>>,
    pub(crate) h: Option<Box<Func<'a>>>,
    /// The residuals of a least-squares problem (`f` is then `Σ rᵢ²`).
    pub(crate) residuals: Option<std::rc::Rc<Func<'a>>>,
    /// Lower and upper bounds on each variable (±∞ where there is none).
    pub(crate) bounds: Option<Bounds>,
    pub(crate) sign: f64,
}

impl<'a> Problem<'a> {
    /// Minimise `f`.
    pub fn minimize(f: impl for<'t> Fn(Var<'t, f64>) -> Var<'t, f64> + 'a) -> Self {
        Problem {
            f: Box::new(f),
            g: None,
            h: None,
            residuals: None,
            bounds: None,
            sign: 1.0,
        }
    }

    /// Minimise `Σ rᵢ(x)²`, where `residuals` returns the 1-d vector `r(x)`
    /// (for data fits, `model - observations`). [`LevenbergMarquardt`]
    /// uses the residuals and their Jacobian; the unconstrained methods of
    /// [`Minimizer`] see the sum of squares.
    ///
    /// [`LevenbergMarquardt`]: super::LevenbergMarquardt
    /// [`Minimizer`]: super::Minimizer
    ///
    /// ```
    /// use tapegrad::optim::{LevenbergMarquardt, Method, Minimizer, Problem};
    /// use tapegrad::Var;
    /// // Rosenbrock as residuals: (10 (y - x²), 1 - x).
    /// let p = Problem::least_squares(|v| {
    ///     Var::from_scalars(&[(v.at(1) - v.at(0).square()) * 10.0, 1.0 - v.at(0)])
    /// });
    /// let lm = LevenbergMarquardt::new().solve(&p, &[-1.2, 1.0])?;
    /// let bfgs = Minimizer::new(Method::Bfgs).solve(&p, &[-1.2, 1.0])?;
    /// assert!((lm.x[0] - 1.0).abs() < 1e-10 && (bfgs.x[0] - 1.0).abs() < 1e-6);
    /// assert!(lm.evaluations.f < bfgs.evaluations.f);
    /// # Ok::<(), tapegrad::optim::OptimError>(())
    /// ```
    pub fn least_squares(residuals: impl for<'t> Fn(Var<'t, f64>) -> Var<'t, f64> + 'a) -> Self {
        let r: std::rc::Rc<Func<'a>> = std::rc::Rc::new(residuals);
        let sum_of_squares = std::rc::Rc::clone(&r);
        Problem {
            f: Box::new(move |x| sum_of_squares(x).square().sum()),
            g: None,
            h: None,
            residuals: Some(r),
            bounds: None,
            sign: 1.0,
        }
    }

    /// Maximise `f` (solved as minimising `-f`; reports give `f` itself).
    pub fn maximize(f: impl for<'t> Fn(Var<'t, f64>) -> Var<'t, f64> + 'a) -> Self {
        Problem {
            f: Box::new(move |x| -f(x)),
            g: None,
            h: None,
            residuals: None,
            bounds: None,
            sign: -1.0,
        }
    }

    /// Constraints `g(x) <= 0`, elementwise, with `g` returning a 1-d vector.
    pub fn inequalities(mut self, g: impl for<'t> Fn(Var<'t, f64>) -> Var<'t, f64> + 'a) -> Self {
        self.g = Some(Box::new(g));
        self
    }

    /// Constraints `h(x) = 0`, elementwise, with `h` returning a 1-d vector.
    pub fn equalities(mut self, h: impl for<'t> Fn(Var<'t, f64>) -> Var<'t, f64> + 'a) -> Self {
        self.h = Some(Box::new(h));
        self
    }

    /// Bounds `lower[i] <= x[i] <= upper[i]` (use `f64::NEG_INFINITY` /
    /// `f64::INFINITY` where a side has none). L-BFGS, BFGS and gradient
    /// descent handle them by projection (L-BFGS-B style), the interior
    /// point as inequalities; other solvers refuse a bounded problem.
    ///
    /// ```
    /// use tapegrad::optim::{Method, Minimizer, Problem};
    /// // min (x - 2)² + (y + 1)² on the box [0, 1] × [0, 1]: (1, 0).
    /// let p = Problem::minimize(|v| ((v.at(0) - 2.0).square() + (v.at(1) + 1.0).square()))
    ///     .bounds(&[0.0, 0.0], &[1.0, 1.0]);
    /// let r = Minimizer::new(Method::Lbfgs).solve(&p, &[0.5, 0.5])?;
    /// assert_eq!(r.x, vec![1.0, 0.0]);
    /// # Ok::<(), tapegrad::optim::OptimError>(())
    /// ```
    ///
    /// # Panics
    /// If the two slices differ in length, or a lower bound exceeds its
    /// upper bound or is NaN.
    #[track_caller]
    pub fn bounds(mut self, lower: &[f64], upper: &[f64]) -> Self {
        assert_eq!(
            lower.len(),
            upper.len(),
            "Problem::bounds: {} lower and {} upper bounds",
            lower.len(),
            upper.len()
        );
        if let Some(i) = (0..lower.len()).find(|&i| lower[i].is_nan() || lower[i] > upper[i]) {
            panic!(
                "Problem::bounds: variable {i} has lower bound {} above upper bound {}",
                lower[i], upper[i]
            );
        }
        self.bounds = Some((lower.to_vec(), upper.to_vec()));
        self
    }

    /// The bounds, checked against the start point's length.
    pub(crate) fn bounds_for(&self, x0: &[f64]) -> Result<Option<&Bounds>, OptimError> {
        match &self.bounds {
            Some(b) if b.0.len() != x0.len() => Err(OptimError::Unsupported(format!(
                "the problem has bounds for {} variables but the start point has {}",
                b.0.len(),
                x0.len()
            ))),
            b => Ok(b.as_ref()),
        }
    }

    /// Number of inequality constraints (evaluated at `x`).
    pub fn num_inequalities(&self, x: &[f64]) -> usize {
        self.g.as_ref().map_or(0, |g| values(g, x).len())
    }

    /// Number of equality constraints (evaluated at `x`).
    pub fn num_equalities(&self, x: &[f64]) -> usize {
        self.h.as_ref().map_or(0, |h| values(h, x).len())
    }

    /// Whether there are constraints.
    pub fn is_constrained(&self) -> bool {
        self.g.is_some() || self.h.is_some()
    }
}

fn tensor(x: &[f64]) -> Tensor<f64> {
    Tensor::from_slice(x, [x.len()])
}

/// A vector function's values at `x`.
pub(crate) fn values(f: &Func<'_>, x: &[f64]) -> Vec<f64> {
    let tape = crate::Tape::new();
    let v = tape.var(tensor(x));
    tape.no_grad(|| f(v)).value().to_vec()
}

/// A vector function's values and Jacobian at `x`, from one recording.
pub(crate) fn values_and_jacobian(f: &Func<'_>, x: &[f64]) -> (DVector<f64>, DMatrix<f64>) {
    let (r, jac) = values_then_jacobian(f, x, |_| true);
    (r, jac.expect("asked for"))
}

/// A vector function's values at `x`, and its Jacobian only if
/// `wanted(values)`, from one recording: a rejected trial point costs one
/// forward pass and no second one.
pub(crate) fn values_then_jacobian(
    f: &Func<'_>,
    x: &[f64],
    wanted: impl FnOnce(&DVector<f64>) -> bool,
) -> (DVector<f64>, Option<DMatrix<f64>>) {
    let tape = crate::Tape::new();
    let v = tape.var(tensor(x));
    let y = f(v);
    let r = DVector::from_vec(y.value().to_vec());
    if !wanted(&r) {
        return (r, None);
    }
    let jac = grad::jacobian_batched(y, &[v]).swap_remove(0);
    let jac = DMatrix::from_row_slice(jac.shape()[0], x.len(), jac.data());
    (r, Some(jac))
}

/// How many times a solver evaluated the function and its derivatives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Function values.
    pub f: usize,
    /// Gradients (or Jacobians).
    pub g: usize,
    /// Hessians.
    pub h: usize,
    /// Constraint evaluations (values, or values with their Jacobian):
    /// the interior point's.
    pub constraints: usize,
}

/// Evaluates an objective through the engine and counts the calls.
pub(crate) struct Evaluator<'p, 'a> {
    f: &'p Func<'a>,
    pub(crate) counts: Counts,
}

impl<'p, 'a> Evaluator<'p, 'a> {
    pub(crate) fn new(f: &'p Func<'a>) -> Self {
        Evaluator {
            f,
            counts: Counts::default(),
        }
    }

    /// `f(x)` alone (a line-search trial: no gradient is recorded).
    pub(crate) fn value(&mut self, x: &[f64]) -> f64 {
        self.counts.f += 1;
        let tape = crate::Tape::new();
        let v = tape.var(tensor(x));
        tape.no_grad(|| (self.f)(v)).item()
    }

    /// `f(x)`, and `∇f(x)` only if `wanted(f)`, from one recording: a
    /// rejected trial costs a forward pass, no gradient and no second
    /// forward.
    pub(crate) fn value_then_grad(
        &mut self,
        x: &[f64],
        wanted: impl FnOnce(f64) -> bool,
    ) -> (f64, Option<Vec<f64>>) {
        self.counts.f += 1;
        let tape = crate::Tape::new();
        let v = tape.var(tensor(x));
        let y = (self.f)(v);
        let f = y.item();
        if !wanted(f) {
            return (f, None);
        }
        self.counts.g += 1;
        let g = y.backward()[v].to_vec();
        (f, Some(g))
    }

    /// `f(x)` and `∇f(x)`.
    pub(crate) fn value_grad(&mut self, x: &[f64]) -> (f64, Vec<f64>) {
        self.counts.f += 1;
        self.counts.g += 1;
        let (v, g) = grad::value_and_grad(|v| (self.f)(v), &tensor(x));
        (v, g.to_vec())
    }

    /// `∇²f(x)`.
    pub(crate) fn hessian(&mut self, x: &[f64]) -> DMatrix<f64> {
        self.counts.h += 1;
        let n = x.len();
        let h = grad::hessian(|v| (self.f)(v), &tensor(x));
        DMatrix::from_row_slice(n, n, h.data())
    }
}

/// Why a solver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// The gradient (or the KKT residual) fell below its tolerance: a
    /// stationary point.
    GradientTolerance,
    /// The step became smaller than its tolerance.
    StepTolerance,
    /// The objective stopped decreasing by more than its tolerance.
    FunctionTolerance,
    /// The iteration limit was reached first.
    MaxIterations,
    /// No step along the search direction decreased the function enough
    /// (usually: converged to the limit of floating-point precision).
    LineSearchFailed,
    /// The tolerances are too small for floating point: no further
    /// reduction of the sum of squares, or no smaller step, is possible
    /// (MINPACK's info 6–8). The point may be good; it was not certified.
    NoFurtherProgress,
    /// A linear system the step needs could not be solved.
    SingularSystem,
}

impl Termination {
    /// True only for the reasons that mean the solver converged: a small
    /// gradient, a small relative step, or a small relative decrease.
    pub fn converged(&self) -> bool {
        matches!(
            self,
            Termination::GradientTolerance
                | Termination::StepTolerance
                | Termination::FunctionTolerance
        )
    }

    /// What the code means, in a sentence.
    pub fn message(&self) -> &'static str {
        match self {
            Termination::GradientTolerance => "converged: the gradient (or KKT residual) is below its tolerance",
            Termination::StepTolerance => "converged: the step is below its tolerance relative to x",
            Termination::FunctionTolerance => "converged: the relative decrease of the objective is below its tolerance",
            Termination::MaxIterations => "not converged: the iteration limit was reached",
            Termination::LineSearchFailed => "not converged: no step along the search direction decreased the objective enough",
            Termination::NoFurtherProgress => "not converged: the tolerances are below what floating point can reach; no further reduction is possible",
            Termination::SingularSystem => "not converged: a linear system for the step could not be solved",
        }
    }
}

/// What every solver returns: the point, the objective, the gradient norm,
/// iterations, evaluation counts and why it stopped, plus (for the
/// interior point) the multipliers and the constraints' state.
///
/// For a least-squares problem `f` is the residual sum of squares `Σ rᵢ²`,
/// `grad_norm` is `‖Jᵀr‖∞`, and `evaluations.f` / `.g` count residual and
/// Jacobian evaluations. For a constrained problem `grad_norm` is the
/// largest entry of the Lagrangian's gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The solver that produced it.
    pub method: &'static str,
    /// The final point.
    pub x: Vec<f64>,
    /// The objective there (of the problem as posed: maximised problems
    /// report `f`, not `-f`).
    pub f: f64,
    /// `‖∇f‖∞` there (see above for least squares and constraints).
    pub grad_norm: f64,
    /// Iterations taken (accepted steps or, for Levenberg–Marquardt,
    /// Jacobians; trials within an iteration do not count).
    pub iterations: usize,
    /// Function, gradient, Hessian and constraint evaluations.
    pub evaluations: Counts,
    /// Why it stopped.
    pub termination: Termination,
    /// Multipliers and constraint state, for constrained solves.
    pub constrained: Option<Constrained>,
}

/// The interior point's extras in a [`Report`]. The multipliers satisfy
/// `∇f + Σ λᵢ∇gᵢ + Σ νⱼ∇hⱼ = 0` with `λ >= 0` (for a maximised problem,
/// of `-f`).
#[derive(Clone, Debug, PartialEq)]
pub struct Constrained {
    /// Multipliers of the inequalities `g(x) <= 0`.
    pub inequality_multipliers: Vec<f64>,
    /// Multipliers of the lower bounds `l - x <= 0`, one per variable
    /// (0 where unbounded; empty without bounds).
    pub lower_bound_multipliers: Vec<f64>,
    /// Multipliers of the upper bounds `x - u <= 0`, likewise.
    pub upper_bound_multipliers: Vec<f64>,
    /// Multipliers of the equalities `h(x) = 0`.
    pub equality_multipliers: Vec<f64>,
    /// Indices of the inequalities that hold with equality at `x`.
    pub active: Vec<usize>,
    /// The largest violation of any constraint.
    pub constraint_violation: f64,
    /// The largest residual of the optimality (KKT) conditions.
    pub kkt_residual: f64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: f = {:.10e} at x = {:?}\n  |grad|inf = {:.3e}, {} iterations, {} f / {} grad / {} Hessian / {} constraint evaluations, stopped: {:?}",
            self.method,
            self.f,
            self.x,
            self.grad_norm,
            self.iterations,
            self.evaluations.f,
            self.evaluations.g,
            self.evaluations.h,
            self.evaluations.constraints,
            self.termination
        )?;
        if let Some(c) = &self.constrained {
            write!(
                f,
                "\n  active inequalities {:?}, lambda = {:?}, nu = {:?}, violation {:.2e}, KKT residual {:.2e}",
                c.active,
                c.inequality_multipliers,
                c.equality_multipliers,
                c.constraint_violation,
                c.kkt_residual
            )?;
        }
        Ok(())
    }
}

impl Report {
    /// The constrained extras.
    ///
    /// # Panics
    /// If the report is not from a constrained solve.
    #[track_caller]
    pub fn constrained(&self) -> &Constrained {
        self.constrained
            .as_ref()
            .expect("Report::constrained: this report is from an unconstrained solver")
    }
}

/// Every solver's calling convention: a [`Problem`] and a start point in,
/// a [`Report`] out. Lets code pick a solver at run time.
///
/// ```
/// use tapegrad::optim::{InteriorPoint, LevenbergMarquardt, Method, Minimizer, Problem, Solver};
/// let p = Problem::least_squares(|v| v - 2.0);
/// let mut solvers: Vec<Box<dyn Solver>> = vec![
///     Box::new(Minimizer::new(Method::Lbfgs)),
///     Box::new(LevenbergMarquardt::new()),
///     Box::new(InteriorPoint::new()),
/// ];
/// for s in &mut solvers {
///     let r = s.solve(&p, &[0.0, 5.0])?;
///     assert!((r.x[0] - 2.0).abs() < 1e-6, "{r}");
/// }
/// # Ok::<(), tapegrad::optim::OptimError>(())
/// ```
pub trait Solver {
    /// Solves `problem` from `x0`.
    ///
    /// # Errors
    /// [`OptimError`] when the solver cannot start (a non-finite start, a
    /// problem of a kind it does not handle, a singular system).
    fn solve(&mut self, problem: &Problem<'_>, x0: &[f64]) -> Result<Report, OptimError>;
}

/// One iteration as seen by an observer.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    /// Iteration number, from 1.
    pub iteration: usize,
    /// The current point.
    pub x: &'a [f64],
    /// The objective there (as posed).
    pub f: f64,
    /// `‖∇f‖∞` (or the KKT residual for constrained problems).
    pub grad_norm: f64,
    /// Length of the step just taken.
    pub step: f64,
}

/// A callback that sees every iteration.
pub type Observer<'o> = Box<dyn FnMut(&Progress<'_>) + 'o>;

/// Problems a solver cannot start from.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptimError {
    /// The function (or its gradient) is not finite at the start point.
    #[error("the objective is not finite at the start point {x:?}: f = {f}")]
    NonFiniteStart {
        /// The start point.
        x: Vec<f64>,
        /// The value found there.
        f: f64,
    },
    /// The solver does not handle this kind of problem.
    #[error("{0}")]
    Unsupported(String),
    /// A linear system the solver needed could not be solved.
    #[error("singular system: {0}")]
    Singular(String),
}

pub(crate) fn norm_inf(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}
