//! Stochastic gradient descent, with optional momentum (classical or
//! Nesterov) and L2 weight decay, as `torch.optim.SGD` defines them.

use super::{GradSource, Optimizer, Settings, Slot, StepError};
use crate::nn::ParamStore;
use crate::tensor::{Element, Tensor};

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
    settings: Settings,
    momentum: f64,
    nesterov: bool,
    buffers: Slot<T>,
}

impl<T: Element> Sgd<T> {
    /// Plain gradient descent with learning rate `lr`.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        Sgd {
            settings: Settings::new(lr, 0.0),
            momentum: 0.0,
            nesterov: false,
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
    #[track_caller]
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.settings.set_weight_decay(wd);
        self
    }
}

impl<T: Element> Optimizer<T> for Sgd<T> {
    fn try_step(
        &mut self,
        params: &mut ParamStore<T>,
        grads: &dyn GradSource<T>,
    ) -> Result<(), StepError> {
        let (mu, nesterov) = (T::lit(self.momentum), self.nesterov);
        let use_momentum = self.momentum != 0.0;
        let buffers = &mut self.buffers;
        self.settings
            .update("Sgd::step", params, grads, |id, w, g, h| {
                let (lr, wd) = (T::lit(h.lr), T::lit(h.weight_decay));
                if !use_momentum {
                    for (w, &g) in w.data_mut().iter_mut().zip(g.data()) {
                        *w = *w - lr * (g + wd * *w);
                    }
                    return;
                }
                // PyTorch starts a buffer at the first gradient it sees.
                let first = !buffers.contains_key(id);
                let b = buffers
                    .entry(id)
                    .expect("parameter ids are never removed")
                    .or_insert_with(|| Tensor::zeros(w.shape()));
                for ((w, b), &g) in w.data_mut().iter_mut().zip(b.data_mut()).zip(g.data()) {
                    let g = g + wd * *w;
                    *b = if first { g } else { mu * *b + g };
                    let d = if nesterov { g + mu * *b } else { *b };
                    *w = *w - lr * d;
                }
            })
    }

    super::settings_access!();
    fn slots(&self) -> Vec<(&'static str, &Slot<T>)> {
        vec![("momentum_buffer", &self.buffers)]
    }
    fn slots_mut(&mut self) -> Vec<(&'static str, &mut Slot<T>)> {
        vec![("momentum_buffer", &mut self.buffers)]
    }
}
