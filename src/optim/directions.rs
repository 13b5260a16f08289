//! Search directions: what distinguishes gradient descent, BFGS, L-BFGS,
//! nonlinear conjugate gradients and Newton's method. The driver in
//! `minimizer.rs` does the rest (line search, stopping, reporting).

use super::problem::{dot, norm_inf, Evaluator, OptimError};
use nalgebra::{Cholesky, DMatrix, DVector};
use std::collections::VecDeque;

/// A rule for the next search direction, and what it learns from a step.
pub(crate) trait Direction {
    /// The direction at `x`, where the gradient is `g`.
    fn direction(
        &mut self,
        x: &[f64],
        g: &[f64],
        ev: &mut Evaluator<'_, '_>,
    ) -> Result<Vec<f64>, OptimError>;
    /// Learns from an accepted step `s` with gradient change `y`.
    fn update(&mut self, s: &[f64], y: &[f64]);
    /// Forgets accumulated curvature (after a non-descent direction).
    fn reset(&mut self);
    /// The first step length to try.
    fn first_trial(&self, previous: Option<f64>, g: &[f64], d: &[f64]) -> f64 {
        let _ = (previous, d);
        // A unit step in a quasi-Newton direction; scaled down on the very
        // first iteration, when no curvature is known yet.
        if previous.is_none() {
            (1.0 / norm_inf(g)).min(1.0)
        } else {
            1.0
        }
    }
}

fn neg(g: &[f64]) -> Vec<f64> {
    g.iter().map(|v| -v).collect()
}

/// Steepest descent: `d = -∇f`.
pub(crate) struct Steepest;

impl Direction for Steepest {
    fn direction(
        &mut self,
        _: &[f64],
        g: &[f64],
        _: &mut Evaluator<'_, '_>,
    ) -> Result<Vec<f64>, OptimError> {
        Ok(neg(g))
    }
    fn update(&mut self, _: &[f64], _: &[f64]) {}
    fn reset(&mut self) {}
    fn first_trial(&self, previous: Option<f64>, g: &[f64], _: &[f64]) -> f64 {
        // Grow from the last accepted step, so backtracking rarely has far to go.
        previous.map_or((1.0 / norm_inf(g)).min(1.0), |a| 2.0 * a)
    }
}

/// BFGS: `d = -H∇f` with `H` the inverse-Hessian approximation, updated by
/// `H ← (I - ρsyᵀ) H (I - ρysᵀ) + ρssᵀ`, `ρ = 1/yᵀs`.
pub(crate) struct Bfgs {
    h: Option<DMatrix<f64>>,
}

impl Bfgs {
    pub(crate) fn new() -> Self {
        Bfgs { h: None }
    }
}

/// Whether a step carries usable curvature (`yᵀs > 0`, not negligibly).
fn curvature_ok(s: &[f64], y: &[f64]) -> bool {
    let sy = dot(s, y);
    sy > 1e-10 * dot(s, s).sqrt() * dot(y, y).sqrt()
}

impl Direction for Bfgs {
    fn direction(
        &mut self,
        _: &[f64],
        g: &[f64],
        _: &mut Evaluator<'_, '_>,
    ) -> Result<Vec<f64>, OptimError> {
        Ok(match &self.h {
            None => neg(g),
            Some(h) => (-(h * DVector::from_column_slice(g))).as_slice().to_vec(),
        })
    }

    fn update(&mut self, s: &[f64], y: &[f64]) {
        if !curvature_ok(s, y) {
            return;
        }
        let n = s.len();
        let (sv, yv) = (DVector::from_column_slice(s), DVector::from_column_slice(y));
        let rho = 1.0 / dot(s, y);
        // The first update starts from the scaled identity (yᵀs / yᵀy)·I.
        let h = self
            .h
            .take()
            .unwrap_or_else(|| DMatrix::identity(n, n) * (dot(s, y) / dot(y, y)));
        let left = DMatrix::identity(n, n) - &sv * yv.transpose() * rho;
        self.h = Some(&left * h * left.transpose() + &sv * sv.transpose() * rho);
    }

    fn reset(&mut self) {
        self.h = None;
    }
}

/// L-BFGS: the BFGS direction from the last `m` steps by the two-loop
/// recursion, without forming a matrix.
pub(crate) struct Lbfgs {
    m: usize,
    history: VecDeque<(Vec<f64>, Vec<f64>, f64)>,
}

impl Lbfgs {
    pub(crate) fn new(m: usize) -> Self {
        Lbfgs {
            m: m.max(1),
            history: VecDeque::new(),
        }
    }
}

impl Direction for Lbfgs {
    fn direction(
        &mut self,
        _: &[f64],
        g: &[f64],
        _: &mut Evaluator<'_, '_>,
    ) -> Result<Vec<f64>, OptimError> {
        let mut q = g.to_vec();
        let mut alphas = Vec::with_capacity(self.history.len());
        for (s, y, rho) in self.history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(q, y)| *q -= a * y);
            alphas.push(a);
        }
        if let Some((s, y, _)) = self.history.back() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|q| *q *= gamma);
        }
        for ((s, y, rho), a) in self.history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(q, s)| *q += (a - b) * s);
        }
        Ok(neg(&q))
    }

    fn update(&mut self, s: &[f64], y: &[f64]) {
        if !curvature_ok(s, y) {
            return;
        }
        if self.history.len() == self.m {
            self.history.pop_front();
        }
        self.history
            .push_back((s.to_vec(), y.to_vec(), 1.0 / dot(s, y)));
    }

    fn reset(&mut self) {
        self.history.clear();
    }
}

/// Which β a conjugate-gradient method uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgVariant {
    /// Fletcher–Reeves: `β = gᵀg / g₋ᵀg₋`.
    FletcherReeves,
    /// Polak–Ribière+: `β = max(0, gᵀ(g - g₋) / g₋ᵀg₋)`.
    PolakRibierePlus,
}

/// Nonlinear conjugate gradients: `d = -g + β d₋`, restarted with `-g`
/// every `n` iterations or when `d` is not a descent direction.
pub(crate) struct ConjugateGradient {
    variant: CgVariant,
    previous: Option<(Vec<f64>, Vec<f64>)>,
    since_restart: usize,
    /// `∇fᵀd` of the previous direction, for the initial step guess.
    previous_slope: Option<f64>,
}

impl ConjugateGradient {
    pub(crate) fn new(variant: CgVariant) -> Self {
        ConjugateGradient {
            variant,
            previous: None,
            since_restart: 0,
            previous_slope: None,
        }
    }
}

impl Direction for ConjugateGradient {
    fn direction(
        &mut self,
        x: &[f64],
        g: &[f64],
        _: &mut Evaluator<'_, '_>,
    ) -> Result<Vec<f64>, OptimError> {
        self.previous_slope = self.previous.as_ref().map(|(g, d)| dot(g, d));
        let d = match self.previous.take() {
            Some((g_prev, d_prev)) if self.since_restart < x.len() => {
                let denom = dot(&g_prev, &g_prev);
                let beta = match self.variant {
                    CgVariant::FletcherReeves => dot(g, g) / denom,
                    CgVariant::PolakRibierePlus => {
                        let diff: Vec<f64> = g.iter().zip(&g_prev).map(|(a, b)| a - b).collect();
                        (dot(g, &diff) / denom).max(0.0)
                    }
                };
                self.since_restart += 1;
                let d: Vec<f64> = g.iter().zip(&d_prev).map(|(g, d)| -g + beta * d).collect();
                if dot(g, &d) < 0.0 {
                    d
                } else {
                    self.since_restart = 0;
                    neg(g)
                }
            }
            _ => {
                self.since_restart = 0;
                neg(g)
            }
        };
        self.previous = Some((g.to_vec(), d.clone()));
        Ok(d)
    }

    fn update(&mut self, _: &[f64], _: &[f64]) {}

    fn reset(&mut self) {
        self.previous = None;
    }

    fn first_trial(&self, previous: Option<f64>, g: &[f64], d: &[f64]) -> f64 {
        // Expect the same first-order change as the last step achieved:
        // α₀ = α₋ ∇f₋ᵀd₋ / ∇fᵀd (Nocedal & Wright, section 3.5).
        match (previous, self.previous_slope) {
            (Some(a), Some(slope)) => (a * slope / dot(g, d)).clamp(1e-10, 1e10),
            _ => (1.0 / norm_inf(g)).min(1.0) * (norm_inf(g) / norm_inf(d)).min(1.0),
        }
    }
}

/// Newton's method with the exact Hessian: `d = -(H + τI)⁻¹∇f`, with the
/// smallest `τ >= 0` found (by doubling) that makes `H + τI` positive
/// definite (Nocedal & Wright, algorithm 3.3), so `d` is always a descent
/// direction.
pub(crate) struct Newton;

impl Direction for Newton {
    fn direction(
        &mut self,
        x: &[f64],
        g: &[f64],
        ev: &mut Evaluator<'_, '_>,
    ) -> Result<Vec<f64>, OptimError> {
        let h = ev.hessian(x);
        let n = x.len();
        let min_diag = (0..n).map(|i| h[(i, i)]).fold(f64::INFINITY, f64::min);
        let beta = 1e-3 * h.amax().max(1e-8);
        let mut tau = if min_diag > 0.0 { 0.0 } else { beta - min_diag };
        for _ in 0..100 {
            let shifted = &h + DMatrix::identity(n, n) * tau;
            if let Some(chol) = Cholesky::new(shifted) {
                let d = chol.solve(&DVector::from_column_slice(g));
                return Ok(neg(d.as_slice()));
            }
            tau = (2.0 * tau).max(beta);
        }
        Err(OptimError::Singular(
            "could not make the Hessian positive definite".into(),
        ))
    }

    fn update(&mut self, _: &[f64], _: &[f64]) {}
    fn reset(&mut self) {}
    fn first_trial(&self, _: Option<f64>, _: &[f64], _: &[f64]) -> f64 {
        1.0
    }
}
