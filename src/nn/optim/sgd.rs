//! Stochastic gradient descent, with optional momentum (classical or
//! Nesterov) and L2 weight decay, as `torch.optim.SGD` defines them.

use super::{entry, Optimizer, Slot};
use crate::nn::ParamStore;
use crate::tape::Gradients;
use crate::tensor::Element;

/// `w ← w - lr·g`; with momentum `b ← μ·b + g` (b = g on the first step)
/// and `w ← w - lr·b`, or with Nesterov `w ← w - lr·(g + μ·b)`. Weight
/// decay adds `wd·w` to the gradient first.
///
/// ```
/// use tapegrad::nn::{Optimizer, ParamStore, Sgd};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f64>::new();
/// let w = params.add("w", Tensor::scalar(1.0));
/// let mut opt = Sgd::new(0.1).momentum(0.9);
/// let tape = Tape::new();
/// let grads = (params.var(&tape, w) * 2.0).backward(); // g = 2
/// opt.step(&mut params, &grads);
/// assert_eq!(params.value(w).item(), 0.8);
/// ```
#[derive(Clone)]
pub struct Sgd<T: Element> {
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    steps: u64,
    buffers: Slot<T>,
}

impl<T: Element> Sgd<T> {
    /// Plain gradient descent with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Sgd {
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            steps: 0,
            buffers: Slot::new(),
        }
    }

    /// Classical momentum `μ`.
    pub fn momentum(mut self, mu: f64) -> Self {
        self.momentum = mu;
        self
    }

    /// Nesterov momentum `μ`.
    pub fn nesterov(mut self, mu: f64) -> Self {
        self.momentum = mu;
        self.nesterov = true;
        self
    }

    /// L2 weight decay.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
}

impl<T: Element> Optimizer<T> for Sgd<T> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Gradients<'_, T>) {
        let (lr, mu, wd) = (
            T::lit(self.lr),
            T::lit(self.momentum),
            T::lit(self.weight_decay),
        );
        let (first, nesterov, use_momentum) =
            (self.steps == 0, self.nesterov, self.momentum != 0.0);
        let buffers = &mut self.buffers;
        params.update(grads, |id, w, g| {
            if !use_momentum {
                for (w, &g) in w.data_mut().iter_mut().zip(g.data()) {
                    *w = *w - lr * (g + wd * *w);
                }
                return;
            }
            let b = entry(buffers, id, w);
            for ((w, b), &g) in w.data_mut().iter_mut().zip(b.data_mut()).zip(g.data()) {
                let g = g + wd * *w;
                *b = if first { g } else { mu * *b + g };
                let d = if nesterov { g + mu * *b } else { *b };
                *w = *w - lr * d;
            }
        });
        self.steps += 1;
    }

    super::lr_and_steps!();
    fn slots(&self) -> Vec<(&'static str, &Slot<T>)> {
        vec![("momentum_buffer", &self.buffers)]
    }
    fn slots_mut(&mut self) -> Vec<(&'static str, &mut Slot<T>)> {
        vec![("momentum_buffer", &mut self.buffers)]
    }
}
