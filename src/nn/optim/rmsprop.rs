//! RMSProp (Hinton), as `torch.optim.RMSprop` defines it.

use super::{entry, GradSource, Optimizer, Settings, Slot, StepError};
use crate::nn::ParamStore;
use crate::tensor::Element;

/// `s ← α·s + (1-α)·g²`, `w ← w - lr·g / (√s + eps)`; with momentum `μ`,
/// `b ← μ·b + g / (√s + eps)` and `w ← w - lr·b`. Defaults: α 0.99,
/// eps 1e-8.
#[derive(Clone)]
pub struct RmsProp<T: Element> {
    settings: Settings,
    alpha: f64,
    eps: f64,
    momentum: f64,
    square_avg: Slot<T>,
    buffers: Slot<T>,
}

impl<T: Element> RmsProp<T> {
    /// RMSProp with learning rate `lr`.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        RmsProp {
            settings: Settings::new(lr, 0.0),
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            square_avg: Slot::new(),
            buffers: Slot::new(),
        }
    }

    /// The decay of the squared-gradient average.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// The term added to the denominator.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Momentum `μ`.
    pub fn momentum(mut self, mu: f64) -> Self {
        self.momentum = mu;
        self
    }

    /// L2 weight decay.
    #[track_caller]
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.settings.set_weight_decay(wd);
        self
    }
}

impl<T: Element> Optimizer<T> for RmsProp<T> {
    fn try_step(
        &mut self,
        params: &mut ParamStore<T>,
        grads: &dyn GradSource<T>,
    ) -> Result<(), StepError> {
        let (alpha, eps) = (T::lit(self.alpha), T::lit(self.eps));
        let (mu, use_momentum) = (T::lit(self.momentum), self.momentum != 0.0);
        let (square_avg, buffers) = (&mut self.square_avg, &mut self.buffers);
        self.settings
            .update("RmsProp::step", params, grads, |id, w, g, h| {
                let (lr, wd) = (T::lit(h.lr), T::lit(h.weight_decay));
                let s = entry(square_avg, id, w);
                if use_momentum {
                    let b = entry(buffers, id, w);
                    for (((w, s), b), &g) in w
                        .data_mut()
                        .iter_mut()
                        .zip(s.data_mut())
                        .zip(b.data_mut())
                        .zip(g.data())
                    {
                        let g = g + wd * *w;
                        *s = alpha * *s + (T::one() - alpha) * g * g;
                        *b = mu * *b + g / (s.sqrt() + eps);
                        *w = *w - lr * *b;
                    }
                } else {
                    for ((w, s), &g) in w.data_mut().iter_mut().zip(s.data_mut()).zip(g.data()) {
                        let g = g + wd * *w;
                        *s = alpha * *s + (T::one() - alpha) * g * g;
                        *w = *w - lr * g / (s.sqrt() + eps);
                    }
                }
            })
    }

    super::settings_access!();
    fn slots(&self) -> Vec<(&'static str, &Slot<T>)> {
        vec![
            ("square_avg", &self.square_avg),
            ("momentum_buffer", &self.buffers),
        ]
    }
    fn slots_mut(&mut self) -> Vec<(&'static str, &mut Slot<T>)> {
        vec![
            ("square_avg", &mut self.square_avg),
            ("momentum_buffer", &mut self.buffers),
        ]
    }
}
