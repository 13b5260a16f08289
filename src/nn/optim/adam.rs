//! Adam (Kingma & Ba) and AdamW (Loshchilov & Hutter), as `torch.optim`
//! defines them. One fused loop per parameter: moments, bias correction
//! and the update in a single pass, no temporaries.

use super::{entry, Optimizer, Slot};
use crate::nn::ParamStore;
use crate::tape::Gradients;
use crate::tensor::Element;

/// The shared machinery; `decoupled` selects AdamW's weight decay.
#[derive(Clone)]
struct AdamCore<T: Element> {
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    steps: u64,
    m: Slot<T>,
    v: Slot<T>,
}

impl<T: Element> AdamCore<T> {
    fn new(lr: f64, weight_decay: f64, decoupled: bool) -> Self {
        AdamCore {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
            decoupled,
            steps: 0,
            m: Slot::new(),
            v: Slot::new(),
        }
    }

    fn step(&mut self, params: &mut ParamStore<T>, grads: &Gradients<'_, T>) {
        self.steps += 1;
        let t = self.steps as i32;
        let (b1, b2) = self.betas;
        let c1 = T::lit(1.0 - b1.powi(t));
        // PyTorch divides √v by √(1-β₂ᵗ); multiplying by the reciprocal is
        // within an ulp of it and saves a division per weight.
        let inv_c2_sqrt = T::lit(1.0 / (1.0 - b2.powi(t)).sqrt());
        let (lr, eps, wd) = (T::lit(self.lr), T::lit(self.eps), T::lit(self.weight_decay));
        let (b1, b2) = (T::lit(b1), T::lit(b2));
        let decay = if self.decoupled {
            T::one() - lr * wd
        } else {
            T::one()
        };
        let l2 = if self.decoupled { T::zero() } else { wd };
        let step_size = lr / c1;
        let (ms, vs) = (&mut self.m, &mut self.v);
        params.update(grads, |id, w, g| {
            let m = entry(ms, id, w);
            let v = entry(vs, id, w);
            for (((w, m), v), &g) in w
                .data_mut()
                .iter_mut()
                .zip(m.data_mut())
                .zip(v.data_mut())
                .zip(g.data())
            {
                let g = g + l2 * *w;
                *m = b1 * *m + (T::one() - b1) * g;
                *v = b2 * *v + (T::one() - b2) * g * g;
                *w = *w * decay - step_size * *m / (v.sqrt() * inv_c2_sqrt + eps);
            }
        });
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
            pub fn weight_decay(mut self, wd: f64) -> Self {
                self.0.weight_decay = wd;
                self
            }
        }

        impl<T: Element> Optimizer<T> for $name<T> {
            fn step(&mut self, params: &mut ParamStore<T>, grads: &Gradients<'_, T>) {
                self.0.step(params, grads)
            }
            super::lr_and_steps!(0);
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
