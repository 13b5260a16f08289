//! A primal-dual interior-point method for the chapter's standard form:
//! minimise `f(x)` subject to `g(x) <= 0` and `h(x) = 0`.

use super::problem::{
    norm_inf, values_and_jacobian, Counts, Evaluator, Observer, OptimError, Problem, Progress,
    Termination,
};
use crate::grad;
use crate::tensor::Tensor;
use nalgebra::{Cholesky, DMatrix, DVector};
use std::fmt;

/// The result of a constrained solve. The multipliers satisfy
/// `∇f + Σ λᵢ∇gᵢ + Σ νⱼ∇hⱼ = 0` with `λ >= 0` (for a maximised problem,
/// of `-f`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConstrainedReport {
    /// The final point.
    pub x: Vec<f64>,
    /// The objective there (as posed).
    pub f: f64,
    /// Multipliers of the inequalities `g(x) <= 0`.
    pub inequality_multipliers: Vec<f64>,
    /// Multipliers of the equalities `h(x) = 0`.
    pub equality_multipliers: Vec<f64>,
    /// Indices of the inequalities that hold with equality at `x`.
    pub active: Vec<usize>,
    /// The largest violation of any constraint.
    pub constraint_violation: f64,
    /// The largest residual of the optimality (KKT) conditions.
    pub kkt_residual: f64,
    /// Iterations taken.
    pub iterations: usize,
    /// Function, gradient (and Jacobian) and Hessian evaluations.
    pub evaluations: Counts,
    /// Why it stopped.
    pub termination: Termination,
}

impl fmt::Display for ConstrainedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interior point: f = {:.10e} at x = {:?}\n  active inequalities {:?}, lambda = {:?}, nu = {:?}\n  violation {:.2e}, KKT residual {:.2e}, {} iterations, stopped: {:?}",
            self.f,
            self.x,
            self.active,
            self.inequality_multipliers,
            self.equality_multipliers,
            self.constraint_violation,
            self.kkt_residual,
            self.iterations,
            self.termination
        )
    }
}

/// Primal-dual interior point with slacks `s` (`g(x) + s = 0`, `s > 0`)
/// and a log barrier `-μ Σ ln sᵢ`. Each iteration takes one Newton step
/// on the perturbed KKT conditions
///
/// ```text
/// ∇f + Jgᵀλ + Jhᵀν = 0,   g + s = 0,   h = 0,   sᵢλᵢ = μ,
/// ```
///
/// reduced to the symmetric system in `(Δx, Δν)` with `W + Jgᵀ(Λ/S)Jg`
/// (`W` the Hessian of the Lagrangian, from the engine), made positive
/// definite by adding `δI` when needed. Steps stay inside `s, λ > 0` by
/// the fraction-to-the-boundary rule; `μ` shrinks (superlinearly) each
/// time the barrier problem is solved to within `10μ`.
///
/// ```
/// use tapegrad::optim::{InteriorPoint, Problem};
/// // min x² + y² subject to x + y >= 1: x = y = 1/2, λ = 1.
/// let p = Problem::minimize(|v| v.square().sum()).inequalities(|v| 1.0 - v.sum().reshape([1]));
/// let r = InteriorPoint::new().solve(&p, &[2.0, 0.0])?;
/// assert!((r.x[0] - 0.5).abs() < 1e-7 && (r.inequality_multipliers[0] - 1.0).abs() < 1e-7);
/// assert_eq!(r.active, vec![0]);
/// # Ok::<(), tapegrad::optim::OptimError>(())
/// ```
pub struct InteriorPoint<'o> {
    max_iter: usize,
    tol: f64,
    observer: Option<Observer<'o>>,
}

impl Default for InteriorPoint<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything the Newton step needs at one iterate.
struct Local {
    f: f64,
    grad: DVector<f64>,
    g: DVector<f64>,
    jg: DMatrix<f64>,
    h: DVector<f64>,
    jh: DMatrix<f64>,
}

impl<'o> InteriorPoint<'o> {
    /// Tolerance 1e-9 on the KKT residual, at most 200 iterations.
    pub fn new() -> Self {
        InteriorPoint {
            max_iter: 200,
            tol: 1e-9,
            observer: None,
        }
    }

    /// Iteration limit.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Tolerance on the KKT residual.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Calls `f` after every iteration.
    pub fn observe(mut self, f: impl FnMut(&Progress<'_>) + 'o) -> Self {
        self.observer = Some(Box::new(f));
        self
    }

    /// Solves `problem` from `x0` (which need not be feasible).
    ///
    /// # Errors
    /// [`OptimError::NonFiniteStart`] if `f` is not finite at `x0`;
    /// [`OptimError::Singular`] if a Newton system cannot be solved.
    pub fn solve(
        &mut self,
        problem: &Problem<'_>,
        x0: &[f64],
    ) -> Result<ConstrainedReport, OptimError> {
        let n = x0.len();
        let mut ev = Evaluator::new(&*problem.f);
        let local = |ev: &mut Evaluator<'_, '_>, x: &[f64]| -> Local {
            let (f, grad) = ev.value_grad(x);
            let (g, jg) = match &problem.g {
                Some(gf) => values_and_jacobian(gf, x),
                None => (DVector::zeros(0), DMatrix::zeros(0, n)),
            };
            let (h, jh) = match &problem.h {
                Some(hf) => values_and_jacobian(hf, x),
                None => (DVector::zeros(0), DMatrix::zeros(0, n)),
            };
            Local {
                f,
                grad: DVector::from_vec(grad),
                g,
                jg,
                h,
                jh,
            }
        };
        let mut x = DVector::from_column_slice(x0);
        let mut at = local(&mut ev, x.as_slice());
        if !at.f.is_finite() {
            return Err(OptimError::NonFiniteStart {
                x: x0.to_vec(),
                f: problem.sign * at.f,
            });
        }
        let (m, p) = (at.g.len(), at.h.len());
        let mut s = at.g.map(|gi| (-gi).max(1.0));
        let mut lam = DVector::from_element(m, 1.0);
        let mut nu = DVector::zeros(p);
        let mut mu: f64 = 0.1;
        let mut iterations = 0;

        let residuals = |at: &Local, s: &DVector<f64>, lam: &DVector<f64>, nu: &DVector<f64>| {
            let rd = &at.grad + at.jg.transpose() * lam + at.jh.transpose() * nu;
            let rg = &at.g + s;
            (rd, rg, at.h.clone())
        };
        let kkt = |rd: &DVector<f64>, rg: &DVector<f64>, rh: &DVector<f64>, comp: f64| {
            norm_inf(rd.as_slice())
                .max(norm_inf(rg.as_slice()))
                .max(norm_inf(rh.as_slice()))
                .max(comp)
        };

        let termination = loop {
            let (rd, rg, rh) = residuals(&at, &s, &lam, &nu);
            let comp = s.component_mul(&lam);
            let error = kkt(&rd, &rg, &rh, norm_inf(comp.as_slice()));
            if error <= self.tol {
                break Termination::GradientTolerance;
            }
            if iterations == self.max_iter {
                break Termination::MaxIterations;
            }
            iterations += 1;
            // Shrink the barrier once its own problem is nearly solved.
            let barrier_error = kkt(&rd, &rg, &rh, norm_inf(comp.add_scalar(-mu).as_slice()));
            if barrier_error <= 10.0 * mu {
                mu = (self.tol / 10.0).max((0.2 * mu).min(mu.powf(1.5)));
            }
            let rc = comp.add_scalar(-mu);

            // Hessian of the Lagrangian f + λᵀg + νᵀh at x.
            ev.counts.h += 1;
            let (lam_t, nu_t) = (
                Tensor::from_slice(lam.as_slice(), [m]),
                Tensor::from_slice(nu.as_slice(), [p]),
            );
            let lagrangian = grad::func(|v| {
                let tape = v.tape();
                let mut l = (problem.f)(v);
                if let Some(gf) = &problem.g {
                    l = l + (gf(v) * tape.constant(lam_t.clone())).sum();
                }
                if let Some(hf) = &problem.h {
                    l = l + (hf(v) * tape.constant(nu_t.clone())).sum();
                }
                l
            });
            let w = grad::hessian(lagrangian, &Tensor::from_slice(x.as_slice(), [n]));
            let w = DMatrix::from_row_slice(n, n, w.data());

            // Reduced system in (Δx, Δν).
            let sigma = lam.component_div(&s);
            let mut hmat = &w + at.jg.transpose() * DMatrix::from_diagonal(&sigma) * &at.jg;
            let rhs_x =
                -(&rd + at.jg.transpose() * (lam.component_mul(&rg) - &rc).component_div(&s));
            let scale = hmat.amax().max(1.0);
            let mut delta = 0.0;
            while Cholesky::new(&hmat + DMatrix::identity(n, n) * delta).is_none() {
                delta = if delta == 0.0 {
                    1e-8 * scale
                } else {
                    10.0 * delta
                };
                if delta > 1e10 * scale {
                    return Err(OptimError::Singular(
                        "Hessian of the Lagrangian could not be regularised".into(),
                    ));
                }
            }
            hmat += DMatrix::identity(n, n) * delta;
            let mut kkt_mat = DMatrix::zeros(n + p, n + p);
            kkt_mat.view_mut((0, 0), (n, n)).copy_from(&hmat);
            kkt_mat
                .view_mut((0, n), (n, p))
                .copy_from(&at.jh.transpose());
            kkt_mat.view_mut((n, 0), (p, n)).copy_from(&at.jh);
            let mut rhs = DVector::zeros(n + p);
            rhs.rows_mut(0, n).copy_from(&rhs_x);
            rhs.rows_mut(n, p).copy_from(&(-&rh));
            let sol = kkt_mat.lu().solve(&rhs).ok_or_else(|| {
                OptimError::Singular(
                    "KKT system (are the equality constraints independent?)".into(),
                )
            })?;
            let dx = sol.rows(0, n).into_owned();
            let dnu = sol.rows(n, p).into_owned();
            let ds = -&rg - &at.jg * &dx;
            let dlam = (-&rc - lam.component_mul(&ds)).component_div(&s);

            // Fraction to the boundary: keep s and λ strictly positive.
            let tau = (1.0 - mu).max(0.99);
            let max_step = |v: &DVector<f64>, dv: &DVector<f64>| {
                v.iter()
                    .zip(dv.iter())
                    .filter(|(_, d)| **d < 0.0)
                    .map(|(v, d)| -tau * v / d)
                    .fold(1.0, f64::min)
            };
            let (ap, ad) = (max_step(&s, &ds), max_step(&lam, &dlam));
            x += &dx * ap;
            s += &ds * ap;
            lam += &dlam * ad;
            nu += &dnu * ad;
            at = local(&mut ev, x.as_slice());
            if let Some(obs) = self.observer.as_mut() {
                obs(&Progress {
                    iteration: iterations,
                    x: x.as_slice(),
                    f: problem.sign * at.f,
                    grad_norm: error,
                    step: dx.amax() * ap,
                });
            }
        };
        let (rd, rg, rh) = residuals(&at, &s, &lam, &nu);
        let comp = s.component_mul(&lam);
        let violation =
            at.g.iter()
                .fold(0.0f64, |v, gi| v.max(*gi))
                .max(norm_inf(at.h.as_slice()));
        let active = (0..m)
            .filter(|&i| lam[i] > s[i] && at.g[i] > -1e-6 * (1.0 + at.g[i].abs()))
            .collect();
        Ok(ConstrainedReport {
            x: x.as_slice().to_vec(),
            f: problem.sign * at.f,
            inequality_multipliers: lam.as_slice().to_vec(),
            equality_multipliers: nu.as_slice().to_vec(),
            active,
            constraint_violation: violation,
            kkt_residual: kkt(&rd, &rg, &rh, norm_inf(comp.as_slice())),
            iterations,
            evaluations: ev.counts,
            termination,
        })
    }
}
