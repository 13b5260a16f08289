//! Levenberg–Marquardt for nonlinear least squares: minimise `Σ rᵢ(x)²`
//! with the Jacobian of the residuals from the engine.

use super::problem::{
    dot, norm_inf, values, values_and_jacobian, Func, Observer, OptimError, Progress, Termination,
};
use crate::tape::Var;
use nalgebra::{DMatrix, DVector};
use std::fmt;

/// The result of a least-squares solve.
#[derive(Clone, Debug, PartialEq)]
pub struct LeastSquaresReport {
    /// The final parameters.
    pub x: Vec<f64>,
    /// The residual sum of squares `Σ rᵢ²` there.
    pub ssr: f64,
    /// `‖Jᵀr‖∞` there.
    pub grad_norm: f64,
    /// Iterations (accepted or rejected trial steps).
    pub iterations: usize,
    /// Residual evaluations.
    pub residual_evaluations: usize,
    /// Jacobian evaluations.
    pub jacobian_evaluations: usize,
    /// Why it stopped.
    pub termination: Termination,
}

impl fmt::Display for LeastSquaresReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Levenberg-Marquardt: SSR = {:.10e} at x = {:?}\n  |J^T r|inf = {:.3e}, {} iterations, {} residual / {} Jacobian evaluations, stopped: {:?}",
            self.ssr, self.x, self.grad_norm, self.iterations, self.residual_evaluations, self.jacobian_evaluations, self.termination
        )
    }
}

/// Levenberg–Marquardt with Marquardt's scaling: each step solves
/// `(JᵀJ + μD) h = -Jᵀr` with `D` the largest diagonal of `JᵀJ` seen so far
/// (so the method is invariant to the scale of each parameter), by QR of
/// the stacked system `[J; √(μD)] h ≈ [-r; 0]` for accuracy. The damping `μ`
/// follows the gain ratio of actual to predicted decrease (Nielsen's rule).
///
/// Stops when the relative decrease of the sum of squares falls below
/// `f_tol` (default 1e-15), the step below `x_tol` relative to `‖x‖`
/// (default 1e-15), `‖Jᵀr‖∞` below `g_tol` (default 0), or after
/// `max_iter` (default 1000).
///
/// ```
/// use tapegrad::optim::LevenbergMarquardt;
/// use tapegrad::Tensor;
/// // Fit y = a·e^(b·t) to exact data from a = 2, b = -0.5.
/// let t: Vec<f64> = (0..10).map(|i| i as f64 * 0.3).collect();
/// let y: Vec<f64> = t.iter().map(|t| 2.0 * (-0.5 * t).exp()).collect();
/// let report = LevenbergMarquardt::new().solve(
///     |p| {
///         let tape = p.tape();
///         let (a, b) = (p.narrow(0, 0, 1), p.narrow(0, 1, 1));
///         let tt = tape.constant(Tensor::from_vec(t.clone(), [10]));
///         a * (b * tt).exp() - tape.constant(Tensor::from_vec(y.clone(), [10]))
///     },
///     &[1.0, 0.0],
/// )?;
/// assert!((report.x[0] - 2.0).abs() < 1e-10 && (report.x[1] + 0.5).abs() < 1e-10);
/// # Ok::<(), tapegrad::optim::OptimError>(())
/// ```
pub struct LevenbergMarquardt<'o> {
    max_iter: usize,
    f_tol: f64,
    x_tol: f64,
    g_tol: f64,
    observer: Option<Observer<'o>>,
}

impl Default for LevenbergMarquardt<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'o> LevenbergMarquardt<'o> {
    /// The solver with default tolerances.
    pub fn new() -> Self {
        LevenbergMarquardt {
            max_iter: 1000,
            f_tol: 1e-15,
            x_tol: 1e-15,
            g_tol: 0.0,
            observer: None,
        }
    }

    /// Iteration limit.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Relative-decrease tolerance on the sum of squares.
    pub fn f_tol(mut self, tol: f64) -> Self {
        self.f_tol = tol;
        self
    }

    /// Relative step tolerance.
    pub fn x_tol(mut self, tol: f64) -> Self {
        self.x_tol = tol;
        self
    }

    /// Gradient tolerance on `‖Jᵀr‖∞`.
    pub fn g_tol(mut self, tol: f64) -> Self {
        self.g_tol = tol;
        self
    }

    /// Calls `f` after every accepted step.
    pub fn observe(mut self, f: impl FnMut(&Progress<'_>) + 'o) -> Self {
        self.observer = Some(Box::new(f));
        self
    }

    /// Minimises `Σ rᵢ(x)²` from `x0`, where `residuals` returns the 1-d
    /// vector `r(x)` (for data fits, `model - observations`).
    ///
    /// # Errors
    /// [`OptimError::NonFiniteStart`] if a residual is not finite at `x0`.
    pub fn solve<F>(&mut self, residuals: F, x0: &[f64]) -> Result<LeastSquaresReport, OptimError>
    where
        F: for<'t> Fn(Var<'t, f64>) -> Var<'t, f64>,
    {
        let f: &Func<'_> = &residuals;
        let n = x0.len();
        let mut x = x0.to_vec();
        let (mut r, mut jac) = values_and_jacobian(f, &x);
        let (mut n_r, mut n_j) = (1, 1);
        let ssr = |r: &DVector<f64>| r.dot(r);
        let mut cost = ssr(&r);
        if !cost.is_finite() {
            return Err(OptimError::NonFiniteStart { x, f: cost });
        }
        let mut g = jac.transpose() * &r;
        let mut scale: Vec<f64> = (0..n)
            .map(|j| jac.column(j).norm_squared().max(f64::MIN_POSITIVE))
            .collect();
        let mut mu = 1e-3;
        let mut nu = 2.0;
        let mut iterations = 0;
        let termination = loop {
            if norm_inf(g.as_slice()) <= self.g_tol {
                break Termination::GradientTolerance;
            }
            if iterations == self.max_iter {
                break Termination::MaxIterations;
            }
            iterations += 1;
            // [J; √(μD)] h ≈ [-r; 0], solved by QR.
            let m = r.len();
            let mut stacked = DMatrix::zeros(m + n, n);
            stacked.view_mut((0, 0), (m, n)).copy_from(&jac);
            let mut rhs = DVector::zeros(m + n);
            rhs.rows_mut(0, m).copy_from(&(-&r));
            for j in 0..n {
                stacked[(m + j, j)] = (mu * scale[j]).sqrt();
            }
            let qr = stacked.qr();
            let Some(h) = qr.r().solve_upper_triangular(&(qr.q().transpose() * rhs)) else {
                break Termination::StepTolerance;
            };
            let x_norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
            if h.norm() <= self.x_tol * (x_norm + self.x_tol) {
                break Termination::StepTolerance;
            }
            let x_new: Vec<f64> = x.iter().zip(h.iter()).map(|(a, b)| a + b).collect();
            let r_new = DVector::from_vec(values(f, &x_new));
            n_r += 1;
            let cost_new = ssr(&r_new);
            // Predicted decrease of the sum of squares by the linear model.
            let dh: Vec<f64> = h.iter().zip(&scale).map(|(h, d)| mu * d * h).collect();
            // (F - L(h) with L the linearised sum of squares; (JᵀJ + μD)h = -g.)
            let predicted = dot(h.as_slice(), &dh) - dot(h.as_slice(), g.as_slice());
            let rho = if cost_new.is_finite() {
                (cost - cost_new) / predicted
            } else {
                -1.0
            };
            if rho > 0.0 {
                let decrease = cost - cost_new;
                x = x_new;
                (r, jac) = values_and_jacobian(f, &x);
                n_r += 1;
                n_j += 1;
                cost = ssr(&r);
                g = jac.transpose() * &r;
                for (j, d) in scale.iter_mut().enumerate() {
                    *d = d.max(jac.column(j).norm_squared());
                }
                mu *= (1.0_f64 / 3.0).max(1.0 - (2.0 * rho - 1.0).powi(3));
                nu = 2.0;
                if let Some(obs) = self.observer.as_mut() {
                    obs(&Progress {
                        iteration: iterations,
                        x: &x,
                        f: cost,
                        grad_norm: norm_inf(g.as_slice()),
                        step: h.amax(),
                    });
                }
                if decrease <= self.f_tol * cost {
                    break Termination::FunctionTolerance;
                }
            } else {
                mu *= nu;
                nu *= 2.0;
                if !mu.is_finite() || mu > 1e300 {
                    break Termination::StepTolerance;
                }
            }
        };
        Ok(LeastSquaresReport {
            grad_norm: norm_inf(g.as_slice()),
            x,
            ssr: cost,
            iterations,
            residual_evaluations: n_r,
            jacobian_evaluations: n_j,
            termination,
        })
    }
}
