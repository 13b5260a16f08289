//! AdaGrad (Duchi, Hazan & Singer), as `torch.optim.Adagrad` defines it.

use super::{entry, Optimizer, Slot};
use crate::nn::ParamStore;
use crate::tape::Gradients;
use crate::tensor::Element;

/// `s ← s + g²`, `w ← w - lr·g / (√s + eps)`; weight decay adds `wd·w` to
/// the gradient first. Defaults: eps 1e-10.
#[derive(Clone)]
pub struct AdaGrad<T: Element> {
    lr: f64,
    eps: f64,
    weight_decay: f64,
    steps: u64,
    sums: Slot<T>,
}

impl<T: Element> AdaGrad<T> {
    /// AdaGrad with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        AdaGrad {
            lr,
            eps: 1e-10,
            weight_decay: 0.0,
            steps: 0,
            sums: Slot::new(),
        }
    }

    /// The term added to the denominator.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// L2 weight decay.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
}

impl<T: Element> Optimizer<T> for AdaGrad<T> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Gradients<'_, T>) {
        let (lr, eps, wd) = (T::lit(self.lr), T::lit(self.eps), T::lit(self.weight_decay));
        let sums = &mut self.sums;
        params.update(grads, |id, w, g| {
            let s = entry(sums, id, w);
            for ((w, s), &g) in w.data_mut().iter_mut().zip(s.data_mut()).zip(g.data()) {
                let g = g + wd * *w;
                *s = *s + g * g;
                *w = *w - lr * g / (s.sqrt() + eps);
            }
        });
        self.steps += 1;
    }

    super::lr_and_steps!();
    fn slots(&self) -> Vec<(&'static str, &Slot<T>)> {
        vec![("sum", &self.sums)]
    }
    fn slots_mut(&mut self) -> Vec<(&'static str, &mut Slot<T>)> {
        vec![("sum", &mut self.sums)]
    }
}
