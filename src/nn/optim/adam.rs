//! Adam (Kingma & Ba) and AdamW (Loshchilov & Hutter), as `torch.optim`
//! defines them. One fused loop per parameter: moments, bias correction
//! and the update in a single pass, no temporaries.

use super::{entry, GradSource, Hyper, Optimizer, Settings, Slot, StepError};
use crate::nn::ParamStore;
use crate::tensor::{parallel, Element};

/// The shared machinery; `decoupled` selects AdamW's weight decay.
#[derive(Clone)]
struct AdamCore<T: Element> {
    settings: Settings,
    betas: (f64, f64),
    eps: f64,
    decoupled: bool,
    m: Slot<T>,
    v: Slot<T>,
}

impl<T: Element> AdamCore<T> {
    #[track_caller]
    fn new(lr: f64, weight_decay: f64, decoupled: bool) -> Self {
        AdamCore {
            settings: Settings::new(lr, weight_decay),
            betas: (0.9, 0.999),
            eps: 1e-8,
            decoupled,
            m: Slot::new(),
            v: Slot::new(),
        }
    }

    fn step(
        &mut self,
        params: &mut ParamStore<T>,
        grads: &dyn GradSource<T>,
    ) -> Result<(), StepError> {
        let (betas, eps, decoupled) = (self.betas, self.eps, self.decoupled);
        let (ms, vs) = (&mut self.m, &mut self.v);
        let op = if decoupled {
            "AdamW::step"
        } else {
            "Adam::step"
        };
        self.settings.update(op, params, grads, |id, w, g, h| {
            let k = Step::new(betas, eps, decoupled, h);
            let m = entry(ms, id, w);
            let v = entry(vs, id, w);
            update_in_halves(w.data_mut(), m.data_mut(), v.data_mut(), g.data(), k);
        })
    }
}

/// The numbers of one Adam step for one parameter group.
#[derive(Clone, Copy)]
struct Step<T> {
    b1: T,
    b2: T,
    l2: T,
    decay: T,
    step_size: T,
    inv_c2_sqrt: T,
    eps: T,
}

/// `1 - βᵗ`, as `-expm1(t·ln(1 + (β - 1)))`: `β - 1` is exact for β in
/// [0.5, 1], so no digits are lost to a rounded `βᵗ` while `1 - βᵗ` is
/// small (the issue measured `powi`'s form drifting 6.6e-11 from the exact
/// rule over 10,000 steps).
fn bias_correction(beta: f64, t: u64) -> f64 {
    -(t as f64 * (beta - 1.0).ln_1p()).exp_m1()
}

impl<T: Element> Step<T> {
    fn new((b1, b2): (f64, f64), eps: f64, decoupled: bool, h: Hyper) -> Self {
        let c1 = T::lit(bias_correction(b1, h.step));
        // PyTorch divides √v by √(1-β₂ᵗ); multiplying by the reciprocal is
        // within an ulp of it and saves a division per weight.
        let inv_c2_sqrt = T::lit(1.0 / bias_correction(b2, h.step).sqrt());
        let (lr, wd) = (T::lit(h.lr), T::lit(h.weight_decay));
        Step {
            b1: T::lit(b1),
            b2: T::lit(b2),
            l2: if decoupled { T::zero() } else { wd },
            decay: if decoupled {
                T::one() - lr * wd
            } else {
                T::one()
            },
            step_size: lr / c1,
            inv_c2_sqrt,
            eps: T::lit(eps),
        }
    }
}

/// Parameters of at least this many weights are updated in two halves,
/// one on the helper thread (`tensor::parallel`): the loop is bound by its
/// square roots, divisions and memory traffic (28 bytes per weight). W2
/// medium's 200k-weight layer gains (1.52–1.63 → 1.76–1.82 ms per step
/// without the split); W2 small's 50k-weight one did not, so the split
/// starts above it.
const TWO_THREADS_FROM: usize = 1 << 16;

/// `fused_update`, on two halves in parallel when the parameter is large.
fn update_in_halves<T: Element>(w: &mut [T], m: &mut [T], v: &mut [T], g: &[T], k: Step<T>) {
    let n = w.len();
    if n < TWO_THREADS_FROM || !parallel::two_threads() {
        return fused_update(w, m, v, g, k);
    }
    let half = n / 2;
    let (w0, w1) = w.split_at_mut(half);
    let (m0, m1) = m[..n].split_at_mut(half);
    let (v0, v1) = v[..n].split_at_mut(half);
    let (g0, g1) = g[..n].split_at(half);
    parallel::join(
        || fused_update(w0, m0, v0, g0, k),
        || fused_update(w1, m1, v1, g1, k),
    );
}

/// Moments, bias correction and the update of one parameter in one pass.
/// Compiled also for AVX-512 and AVX2 and picked at run time: the square
/// root and the division per weight are what bound this loop, and they
/// run 4x wider there than in the x86-64 baseline (same IEEE results:
/// Rust never fuses a multiply and an add on its own).
#[multiversion::multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
fn fused_update<T: Element>(w: &mut [T], m: &mut [T], v: &mut [T], g: &[T], k: Step<T>) {
    let n = w.len();
    let (m, v, g) = (&mut m[..n], &mut v[..n], &g[..n]);
    for i in 0..n {
        let gi = g[i] + k.l2 * w[i];
        m[i] = k.b1 * m[i] + (T::one() - k.b1) * gi;
        v[i] = k.b2 * v[i] + (T::one() - k.b2) * gi * gi;
        w[i] = w[i] * k.decay - k.step_size * m[i] / (v[i].sqrt() * k.inv_c2_sqrt + k.eps);
    }
}

macro_rules! adam_like {
    ($name:ident, $doc:literal, $decoupled:expr, $default_wd:expr) => {
        #[doc = $doc]
        #[derive(Clone)]
        pub struct $name<T: Element>(AdamCore<T>);

        impl<T: Element> $name<T> {
            /// With learning rate `lr` and the defaults betas (0.9, 0.999),
            /// eps 1e-8.
            #[track_caller]
            pub fn new(lr: f64) -> Self {
                $name(AdamCore::new(lr, $default_wd, $decoupled))
            }

            /// The moment decays `(β₁, β₂)`.
            pub fn betas(mut self, b1: f64, b2: f64) -> Self {
                self.0.betas = (b1, b2);
                self
            }

            /// The term added to the denominator.
            pub fn eps(mut self, eps: f64) -> Self {
                self.0.eps = eps;
                self
            }

            /// Weight decay.
            #[track_caller]
            pub fn weight_decay(mut self, wd: f64) -> Self {
                self.0.settings.set_weight_decay(wd);
                self
            }
        }

        impl<T: Element> Optimizer<T> for $name<T> {
            fn try_step(
                &mut self,
                params: &mut ParamStore<T>,
                grads: &dyn GradSource<T>,
            ) -> Result<(), StepError> {
                self.0.step(params, grads)
            }
            super::settings_access!(0);
            fn slots(&self) -> Vec<(&'static str, &Slot<T>)> {
                vec![("exp_avg", &self.0.m), ("exp_avg_sq", &self.0.v)]
            }
            fn slots_mut(&mut self) -> Vec<(&'static str, &mut Slot<T>)> {
                vec![("exp_avg", &mut self.0.m), ("exp_avg_sq", &mut self.0.v)]
            }
        }
    };
}

adam_like!(
    Adam,
    "Adam: `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`, \
     `w ← w - lr·m̂ / (√v̂ + eps)` with bias-corrected `m̂ = m/(1-β₁ᵗ)`, \
     `v̂ = v/(1-β₂ᵗ)`. Weight decay (default 0) is L2: `wd·w` is added to the gradient.",
    false,
    0.0
);
adam_like!(
    AdamW,
    "AdamW: Adam with decoupled weight decay (default 0.01): \
     `w ← w·(1 - lr·wd)` before the Adam update, instead of adding `wd·w` to the gradient.",
    true,
    0.01
);

#[cfg(test)]
mod tests {

    /// `1 - βᵗ` to an ulp or two: exact small cases, and large t against
    /// `powf` (accurate where 1 - βᵗ is not small).
    #[test]
    fn bias_correction_is_accurate_at_every_step() {
        let b = 0.999f64;
        assert!((super::bias_correction(b, 1) - (1.0 - b)).abs() <= 1e-19);
        assert!((super::bias_correction(b, 2) - (1.0 - b) * (1.0 + b)).abs() <= 1e-18);
        for t in [1_000u64, 10_000, 100_000, 1_000_000] {
            let want = 1.0 - b.powf(t as f64);
            let got = super::bias_correction(b, t);
            assert!(
                ((got - want) / want).abs() < 4e-16,
                "t = {t}: {got} vs {want}"
            );
        }
        // Small t, where 1 - βᵗ is small and a rounded βᵗ loses digits:
        // against (1 - β)·Σ_{k<t} βᵏ, whose error is a few ulps.
        for t in [3u64, 10, 30] {
            let want = (1.0 - b) * (0..t).map(|k| b.powi(k as i32)).sum::<f64>();
            let got = super::bias_correction(b, t);
            assert!(
                ((got - want) / want).abs() < 2e-15,
                "t = {t}: {got} vs {want}"
            );
        }
    }

    use super::*;

    /// The vector versions picked at run time, and the two-thread split of
    /// a large parameter, must give the same bits as the formula written
    /// out one weight at a time (lengths leaving a remainder after the
    /// widest vectors and an odd split).
    #[test]
    fn the_dispatched_update_matches_the_scalar_formula_exactly() {
        let k = Step {
            b1: 0.9f32,
            b2: 0.999,
            l2: 0.01,
            decay: 0.999,
            step_size: 1e-3 / 0.1,
            inv_c2_sqrt: 1.0 / 0.001f32.sqrt(),
            eps: 1e-8,
        };
        type Update = fn(&mut [f32], &mut [f32], &mut [f32], &[f32], Step<f32>);
        let cases: [(usize, Update); 2] = [
            (37, fused_update),
            (TWO_THREADS_FROM + 37, update_in_halves),
        ];
        for (n, update) in cases {
            let init = |s: f32| (0..n).map(|i| ((i as f32) * s).sin()).collect::<Vec<f32>>();
            let (mut w, mut m, mut v, g) = (init(0.7), init(0.3), init(0.2), init(1.3));
            v.iter_mut().for_each(|x| *x = x.abs());
            let (mut w2, mut m2, mut v2) = (w.clone(), m.clone(), v.clone());
            update(&mut w, &mut m, &mut v, &g, k);
            for i in 0..n {
                let gi = g[i] + k.l2 * w2[i];
                m2[i] = k.b1 * m2[i] + (1.0 - k.b1) * gi;
                v2[i] = k.b2 * v2[i] + (1.0 - k.b2) * gi * gi;
                w2[i] =
                    w2[i] * k.decay - k.step_size * m2[i] / (v2[i].sqrt() * k.inv_c2_sqrt + k.eps);
            }
            assert!((w, m, v) == (w2, m2, v2), "{n} weights");
        }
    }
}
