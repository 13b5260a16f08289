//! A primal-dual interior-point method for the chapter's standard form:
//! minimise `f(x)` subject to `g(x) <= 0` and `h(x) = 0`.

use super::problem::{
    norm_inf, values, values_and_jacobian, Constrained, Evaluator, Func, Observer, OptimError,
    Problem, Progress, Report, Solver, Termination,
};
use crate::grad;
use crate::tensor::Tensor;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Primal-dual interior point with slacks `s` (`g(x) + s = 0`, `s > 0`)
/// and a log barrier `-μ Σ ln sᵢ`. Each iteration takes one Newton step
/// on the perturbed KKT conditions
///
/// ```text
/// ∇f + Jgᵀλ + Jhᵀν = 0,   g + s = 0,   h = 0,   sᵢλᵢ = μ,
/// ```
///
/// reduced to the symmetric system in `(Δx, Δν)` with `W + Jgᵀ(Λ/S)Jg`
/// (`W` the Hessian of the Lagrangian, from the engine).
///
/// What keeps it from running away (IPOPT's safeguards, in a simpler
/// form):
///
/// - **Inertia correction**: the system's matrix must have `n` positive
///   and `p` negative eigenvalues (the reduced Hessian positive definite
///   on the constraints' tangent space). If not, `δ_w·I` is added to the
///   Hessian block, from `1e-4` (or a third of the last `δ_w`) growing
///   eightfold; a singular constraint Jacobian adds `-δ_c·I` below.
/// - **Line search** on the ℓ1 merit function
///   `f - μ Σ ln sᵢ + ρ (‖h‖₁ + ‖g + s‖₁)`, backtracking from the
///   fraction-to-the-boundary step with Armijo's rule; `ρ` grows until the
///   step is a descent direction. A trial costs values only (no gradient,
///   no Jacobian).
/// - **Multipliers** start from the least-squares estimate of `ν` (with
///   `λ = 1`), or zero when that estimate is larger than `1e3`.
///
/// `μ` shrinks (by [`InteriorPoint::barrier_decrease`], superlinearly)
/// each time the barrier problem is solved to within `10μ`.
///
/// ```
/// use tapegrad::optim::{InteriorPoint, Problem};
/// // min x² + y² subject to x + y >= 1: x = y = 1/2, λ = 1.
/// let p = Problem::minimize(|v| v.square().sum()).inequalities(|v| 1.0 - v.sum().reshape([1]));
/// let r = InteriorPoint::new().solve(&p, &[2.0, 0.0])?;
/// let c = r.constrained();
/// assert!((r.x[0] - 0.5).abs() < 1e-7 && (c.inequality_multipliers[0] - 1.0).abs() < 1e-7);
/// assert_eq!(c.active, vec![0]);
/// # Ok::<(), tapegrad::optim::OptimError>(())
/// ```
pub struct InteriorPoint<'o> {
    max_iter: usize,
    tol: f64,
    mu0: f64,
    kappa_mu: f64,
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
    /// Tolerance 1e-9 on the KKT residual, at most 200 iterations, initial
    /// barrier 0.1, barrier decrease 0.2.
    pub fn new() -> Self {
        InteriorPoint {
            max_iter: 200,
            tol: 1e-9,
            mu0: 0.1,
            kappa_mu: 0.2,
            observer: None,
        }
    }

    /// Iteration limit (Newton steps; the line search's trials within one
    /// step do not count).
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }

    /// Tolerance on the KKT residual (the name every solver uses for its
    /// stationarity test).
    pub fn grad_tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// The initial barrier parameter `μ₀` (default 0.1). Larger keeps the
    /// first iterates further inside the inequalities.
    ///
    /// # Panics
    /// If `mu` is not positive and finite.
    #[track_caller]
    pub fn initial_barrier(mut self, mu: f64) -> Self {
        assert!(
            mu > 0.0 && mu.is_finite(),
            "InteriorPoint::initial_barrier: needs a positive barrier, got {mu}"
        );
        self.mu0 = mu;
        self
    }

    /// The barrier's decrease factor `κ` (default 0.2): once the barrier
    /// problem is solved, `μ ← max(tol/10, min(κ·μ, μ^1.5))`.
    ///
    /// # Panics
    /// If `kappa` is not in (0, 1).
    #[track_caller]
    pub fn barrier_decrease(mut self, kappa: f64) -> Self {
        assert!(
            kappa > 0.0 && kappa < 1.0,
            "InteriorPoint::barrier_decrease: needs a factor in (0, 1), got {kappa}"
        );
        self.kappa_mu = kappa;
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
    pub fn solve(&mut self, problem: &Problem<'_>, x0: &[f64]) -> Result<Report, OptimError> {
        let n = x0.len();
        // Bounds join the inequalities as rows `l - x <= 0` and `x - u <= 0`
        // (finite sides only), after the problem's own.
        let (lower_rows, upper_rows): (Vec<usize>, Vec<usize>) = match problem.bounds_for(x0)? {
            None => (Vec::new(), Vec::new()),
            Some((lo, hi)) => (
                (0..n).filter(|&i| lo[i].is_finite()).collect(),
                (0..n).filter(|&i| hi[i].is_finite()).collect(),
            ),
        };
        let bound_rows = lower_rows.len() + upper_rows.len();
        let (lo_t, hi_t) = match &problem.bounds {
            Some((lo, hi)) => (
                Tensor::from_vec(
                    lower_rows.iter().map(|&i| lo[i]).collect(),
                    [lower_rows.len()],
                ),
                Tensor::from_vec(
                    upper_rows.iter().map(|&i| hi[i]).collect(),
                    [upper_rows.len()],
                ),
            ),
            None => (Tensor::zeros([0]), Tensor::zeros([0])),
        };
        let with_bounds = grad::func(|v: crate::Var<'_, f64>| {
            let tape = v.tape();
            let mut parts = Vec::new();
            if let Some(gf) = &problem.g {
                parts.push(gf(v));
            }
            if !lower_rows.is_empty() {
                parts.push(tape.constant(&lo_t) - v.index_select(0, &lower_rows));
            }
            if !upper_rows.is_empty() {
                parts.push(v.index_select(0, &upper_rows) - tape.constant(&hi_t));
            }
            crate::Var::concat(&parts, 0)
        });
        let inequalities: Option<&Func<'_>> = if bound_rows > 0 {
            Some(&with_bounds)
        } else {
            problem.g.as_deref()
        };
        let mut ev = Evaluator::new(&*problem.f);
        let local = |ev: &mut Evaluator<'_, '_>, x: &[f64]| -> Local {
            let (f, grad) = ev.value_grad(x);
            ev.counts.constraints += 1;
            let (g, jg) = match inequalities {
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
        let mut nu = initial_nu(&at, &lam);
        let mut mu: f64 = self.mu0;
        let mut iterations = 0;
        // The merit function's penalty and the last Hessian shift.
        let (mut rho, mut delta_last) = (0.0f64, 0.0f64);
        // Values alone at a trial point: f, g and h.
        let trial = |ev: &mut Evaluator<'_, '_>, x: &[f64]| {
            ev.counts.constraints += 1;
            let g = inequalities.map_or(Vec::new(), |gf| values(gf, x));
            let h = problem.h.as_ref().map_or(Vec::new(), |hf| values(hf, x));
            (ev.value(x), DVector::from_vec(g), DVector::from_vec(h))
        };

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
                mu = (self.tol / 10.0).max((self.kappa_mu * mu).min(mu.powf(1.5)));
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
                if let Some(gf) = inequalities {
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
            let hmat = &w + at.jg.transpose() * DMatrix::from_diagonal(&sigma) * &at.jg;
            let rhs_x =
                -(&rd + at.jg.transpose() * (lam.component_mul(&rg) - &rc).component_div(&s));
            let (sol, delta) = inertia_corrected_solve(&hmat, &at.jh, &rhs_x, &rh, mu, delta_last)?;
            delta_last = delta;
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

            // Backtracking on the ℓ1 merit function, with ρ large enough
            // that the step descends: ρ ≥ (D_barrier + ½pᵀHp) / (0.9‖c‖₁).
            let violation = |g: &DVector<f64>, h: &DVector<f64>, s: &DVector<f64>| {
                h.iter().map(|v| v.abs()).sum::<f64>()
                    + (g + s).iter().map(|v| v.abs()).sum::<f64>()
            };
            let barrier = |f: f64, s: &DVector<f64>| f - mu * s.iter().map(|v| v.ln()).sum::<f64>();
            let c0 = violation(&at.g, &at.h, &s);
            let slope = at.grad.dot(&dx) - mu * ds.component_div(&s).sum();
            // pᵀHp in (x, s): the shifted Hessian of the Lagrangian, and Σ.
            let curvature = (dx.dot(&(&w * &dx))
                + delta * dx.norm_squared()
                + ds.dot(&sigma.component_mul(&ds)))
            .max(0.0);
            if c0 > 0.0 {
                // Exact penalty: ρ above the multipliers too, or the merit's
                // minimiser is not the constrained one.
                let multipliers = (&nu + &dnu).amax().max((&lam + &dlam).amax());
                let needed = ((slope + 0.5 * curvature) / (0.9 * c0)).max(multipliers);
                // Raised when too small; lowered when far above what this
                // step needs (a ρ fixed by an early, wild iterate makes the
                // merit reject every step that curves off the constraints).
                if rho < needed || rho > 100.0 * (1.5 * needed + 1e-8) {
                    rho = 1.5 * needed + 1e-8;
                }
            }
            let phi0 = barrier(at.f, &s) + rho * c0;
            let dphi = slope - rho * c0;
            let mut alpha = ap;
            let accepted = loop {
                let xt = &x + &dx * alpha;
                let st = &s + &ds * alpha;
                let (ft, gt, ht) = trial(&mut ev, xt.as_slice());
                let phi = barrier(ft, &st) + rho * violation(&gt, &ht, &st);
                let armijo = |phi: f64| {
                    phi.is_finite()
                        && (phi <= phi0 + 1e-4 * alpha * dphi || dphi >= 0.0 && phi <= phi0)
                };
                if armijo(phi) {
                    break Some((xt, st));
                }
                // Second-order correction of the full step (the Maratos
                // effect: curved equalities make the merit reject the very
                // steps that converge fast): back onto h = 0 by the
                // least-norm x-step −Jhᵀ(JhJhᵀ)⁻¹h(x + Δx).
                if alpha == ap && p > 0 {
                    let jjt = &at.jh * at.jh.transpose();
                    if let Some(y) = jjt.lu().solve(&ht) {
                        let xc = &xt - at.jh.transpose() * y;
                        let (fc, gc, hc) = trial(&mut ev, xc.as_slice());
                        if armijo(barrier(fc, &st) + rho * violation(&gc, &hc, &st)) {
                            break Some((xc, st));
                        }
                    }
                }
                alpha *= 0.5;
                if alpha * dx.amax().max(ds.amax()) < 1e-16 * (1.0 + x.amax()) {
                    break None;
                }
            };
            let Some((xt, st)) = accepted else {
                break Termination::LineSearchFailed;
            };
            x = xt;
            s = st;
            lam += &dlam * ad;
            nu += &dnu * alpha;
            at = local(&mut ev, x.as_slice());
            if let Some(obs) = self.observer.as_mut() {
                obs(&Progress {
                    iteration: iterations,
                    x: x.as_slice(),
                    f: problem.sign * at.f,
                    grad_norm: error,
                    step: dx.amax() * alpha,
                });
            }
        };
        let (rd, rg, rh) = residuals(&at, &s, &lam, &nu);
        let comp = s.component_mul(&lam);
        let violation =
            at.g.iter()
                .fold(0.0f64, |v, gi| v.max(*gi))
                .max(norm_inf(at.h.as_slice()));
        let m_own = m - bound_rows;
        let per_variable = |rows: &[usize], offset: usize| -> Vec<f64> {
            if problem.bounds.is_none() {
                return Vec::new();
            }
            let mut z = vec![0.0; n];
            rows.iter()
                .enumerate()
                .for_each(|(k, &i)| z[i] = lam[offset + k]);
            z
        };
        let lower_bound_multipliers = per_variable(&lower_rows, m_own);
        let upper_bound_multipliers = per_variable(&upper_rows, m_own + lower_rows.len());
        let active = (0..m_own)
            .filter(|&i| lam[i] > s[i] && at.g[i] > -1e-6 * (1.0 + at.g[i].abs()))
            .collect();
        Ok(Report {
            method: "interior point",
            x: x.as_slice().to_vec(),
            f: problem.sign * at.f,
            grad_norm: norm_inf(rd.as_slice()),
            iterations,
            evaluations: ev.counts,
            termination,
            constrained: Some(Constrained {
                inequality_multipliers: lam.as_slice()[..m_own].to_vec(),
                lower_bound_multipliers,
                upper_bound_multipliers,
                equality_multipliers: nu.as_slice().to_vec(),
                active,
                constraint_violation: violation,
                kkt_residual: kkt(&rd, &rg, &rh, norm_inf(comp.as_slice())),
            }),
        })
    }
}

impl Solver for InteriorPoint<'_> {
    fn solve(&mut self, problem: &Problem<'_>, x0: &[f64]) -> Result<Report, OptimError> {
        InteriorPoint::solve(self, problem, x0)
    }
}

/// The least-squares equality multipliers at the start, given `λ`:
/// `argmin ‖∇f + Jgᵀλ + Jhᵀν‖`, or zero if that is larger than `1e3`
/// (IPOPT's rule: a huge estimate is worse than none).
fn initial_nu(at: &Local, lam: &DVector<f64>) -> DVector<f64> {
    let p = at.h.len();
    if p == 0 {
        return DVector::zeros(0);
    }
    let b = -(&at.grad + at.jg.transpose() * lam);
    match at.jh.transpose().svd(true, true).solve(&b, 1e-12) {
        Ok(nu) if nu.iter().all(|v| v.is_finite()) && nu.amax() <= 1e3 => nu,
        _ => DVector::zeros(p),
    }
}

/// Solves `[H + δ_w I, Jhᵀ; Jh, -δ_c I] (Δx, Δν) = (r_x, -r_h)` with the
/// smallest shift `δ_w` (tried: 0, then from `1e-4` or a third of `last`,
/// growing eightfold) that gives the matrix `n` positive and `p` negative
/// eigenvalues; `δ_c` is `1e-8·μ^¼` when the matrix is singular. Returns
/// the solution and `δ_w`.
fn inertia_corrected_solve(
    hmat: &DMatrix<f64>,
    jh: &DMatrix<f64>,
    rhs_x: &DVector<f64>,
    rh: &DVector<f64>,
    mu: f64,
    last: f64,
) -> Result<(DVector<f64>, f64), OptimError> {
    let (n, p) = (hmat.nrows(), jh.nrows());
    let assemble = |dw: f64, dc: f64| {
        let mut k = DMatrix::zeros(n + p, n + p);
        k.view_mut((0, 0), (n, n))
            .copy_from(&(hmat + DMatrix::identity(n, n) * dw));
        k.view_mut((0, n), (n, p)).copy_from(&jh.transpose());
        k.view_mut((n, 0), (p, n)).copy_from(jh);
        k.view_mut((n, n), (p, p))
            .copy_from(&(DMatrix::identity(p, p) * -dc));
        k
    };
    // (positive, negative, zero) eigenvalues.
    let inertia = |k: &DMatrix<f64>| {
        let ev = SymmetricEigen::new(k.clone()).eigenvalues;
        let tiny = 1e-13 * ev.amax().max(1.0);
        ev.iter().fold((0, 0, 0), |(a, b, c), &v| {
            if !v.is_finite() || v.abs() <= tiny {
                (a, b, c + 1)
            } else if v > 0.0 {
                (a + 1, b, c)
            } else {
                (a, b + 1, c)
            }
        })
    };
    let mut rhs = DVector::zeros(n + p);
    rhs.rows_mut(0, n).copy_from(rhs_x);
    rhs.rows_mut(n, p).copy_from(&(-rh));
    let (mut dw, mut dc) = (0.0, 0.0);
    loop {
        let k = assemble(dw, dc);
        let (pos, neg, zero) = inertia(&k);
        if (pos, neg, zero) == (n, p, 0) {
            let sol = k.lu().solve(&rhs).ok_or_else(|| {
                OptimError::Singular(
                    "KKT system (are the equality constraints independent?)".into(),
                )
            })?;
            return Ok((sol, dw));
        }
        if zero > 0 && dc == 0.0 && p > 0 {
            dc = 1e-8 * mu.powf(0.25);
        }
        dw = match (dw, last) {
            (0.0, 0.0) => 1e-4,
            (0.0, l) => (l / 3.0).max(1e-20),
            (d, 0.0) => 100.0 * d,
            (d, _) => 8.0 * d,
        };
        if dw > 1e40 {
            return Err(OptimError::Singular(
                "the Hessian of the Lagrangian could not be corrected to the right inertia".into(),
            ));
        }
    }
}
