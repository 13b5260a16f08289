//! AdaGrad (Duchi, Hazan & Singer), as `torch.optim.Adagrad` defines it.

use super::{entry, GradSource, Optimizer, Settings, Slot, StepError};
use crate::nn::ParamStore;
use crate::tensor::Element;

/// `s ← s + g²`, `w ← w - lr·g / (√s + eps)`; weight decay adds `wd·w` to
/// the gradient first. Defaults: eps 1e-10.
#[derive(Clone)]
pub struct AdaGrad<T: Element> {
    settings: Settings,
    eps: f64,
    sums: Slot<T>,
}

impl<T: Element> AdaGrad<T> {
    /// AdaGrad with learning rate `lr`.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        AdaGrad {
            settings: Settings::new(lr, 0.0),
            eps: 1e-10,
            sums: Slot::new(),
        }
    }

    /// The term added to the denominator.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// L2 weight decay.
    #[track_caller]
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.settings.set_weight_decay(wd);
        self
    }
}

impl<T: Element> Optimizer<T> for AdaGrad<T> {
    fn try_step(
        &mut self,
        params: &mut ParamStore<T>,
        grads: &dyn GradSource<T>,
    ) -> Result<(), StepError> {
        let eps = T::lit(self.eps);
        let sums = &mut self.sums;
        self.settings
            .update("AdaGrad::step", params, grads, |id, w, g, h| {
                let (lr, wd) = (T::lit(h.lr), T::lit(h.weight_decay));
                let s = entry(sums, id, w);
                for ((w, s), &g) in w.data_mut().iter_mut().zip(s.data_mut()).zip(g.data()) {
                    let g = g + wd * *w;
                    *s = *s + g * g;
                    *w = *w - lr * g / (s.sqrt() + eps);
                }
            })
    }

    super::settings_access!();
    fn slots(&self) -> Vec<(&'static str, &Slot<T>)> {
        vec![("sum", &self.sums)]
    }
    fn slots_mut(&mut self) -> Vec<(&'static str, &mut Slot<T>)> {
        vec![("sum", &mut self.sums)]
    }
}
