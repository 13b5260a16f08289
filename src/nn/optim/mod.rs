//! First-order optimizers, learning-rate schedules and gradient clipping.
//!
//! Every optimizer updates the parameters in place from one step's
//! [`Gradients`]; there is nothing to zero between steps (gradients belong
//! to the step). State (momentum, moment estimates) lives in a
//! `SecondaryMap` per parameter, allocated on the first step only.

mod adagrad;
mod adam;
mod rmsprop;
mod schedule;
mod sgd;

pub use adagrad::AdaGrad;
pub use adam::{Adam, AdamW};
pub use rmsprop::RmsProp;
pub use schedule::Schedule;
pub use sgd::Sgd;

use super::{ParamId, ParamStore};
use crate::tape::Gradients;
use crate::tensor::{Element, Tensor};
use slotmap::SecondaryMap;

/// Per-parameter tensors an optimizer keeps between steps.
pub type Slot<T> = SecondaryMap<ParamId, Tensor<T>>;

/// Updates parameters from gradients.
pub trait Optimizer<T: Element> {
    /// One update of every trainable parameter that has a gradient.
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Gradients<'_, T>);

    /// The current learning rate.
    fn lr(&self) -> f64;

    /// Changes the learning rate (for schedules).
    fn set_lr(&mut self, lr: f64);

    /// Number of steps taken.
    fn steps(&self) -> u64;

    /// The named per-parameter state, for checkpoints: `(name, slot)`.
    fn slots(&self) -> Vec<(&'static str, &Slot<T>)>;

    /// Mutable access to the state, for loading checkpoints.
    fn slots_mut(&mut self) -> Vec<(&'static str, &mut Slot<T>)>;

    /// Sets the step count (when restoring a checkpoint).
    fn set_steps(&mut self, steps: u64);
}

/// The learning-rate and step-count accessors of [`Optimizer`], for an
/// optimizer whose hyperparameters live in fields `lr` and `steps` (of
/// `self`, or of the field named first).
macro_rules! lr_and_steps {
    ($($inner:tt)?) => {
        fn lr(&self) -> f64 {
            self$(.$inner)?.lr
        }
        fn set_lr(&mut self, lr: f64) {
            self$(.$inner)?.lr = lr;
        }
        fn steps(&self) -> u64 {
            self$(.$inner)?.steps
        }
        fn set_steps(&mut self, steps: u64) {
            self$(.$inner)?.steps = steps;
        }
    };
}
pub(crate) use lr_and_steps;

/// The state tensor of `id` in `slot`, zeros of `like`'s shape at first.
pub(crate) fn entry<'s, T: Element>(
    slot: &'s mut Slot<T>,
    id: ParamId,
    like: &Tensor<T>,
) -> &'s mut Tensor<T> {
    slot.entry(id)
        .expect("parameter ids are never removed")
        .or_insert_with(|| Tensor::zeros(like.shape()))
}

/// Scales all parameter gradients so that their global L2 norm is at most
/// `max_norm`; returns the norm before clipping (as PyTorch's
/// `clip_grad_norm_`).
///
/// ```
/// use tapegrad::nn::{clip_grad_norm, ParamStore};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f64>::new();
/// let w = params.add("w", Tensor::from_vec(vec![3.0, 4.0], [2]));
/// let tape = Tape::new();
/// let loss = (params.var(&tape, w).square() * 0.5).sum(); // gradient = w
/// let mut grads = loss.backward();
/// assert_eq!(clip_grad_norm(&params, &mut grads, 1.0), 5.0);
/// let g = params.grad(&grads, w).unwrap();
/// assert!((g.data()[0] - 0.6).abs() < 1e-6 && (g.data()[1] - 0.8).abs() < 1e-6);
/// ```
pub fn clip_grad_norm<T: Element>(
    params: &ParamStore<T>,
    grads: &mut Gradients<'_, T>,
    max_norm: f64,
) -> f64 {
    let ids: Vec<ParamId> = params.iter().map(|(id, _, _)| id).collect();
    let total: f64 = ids
        .iter()
        .filter_map(|&id| params.grad(grads, id))
        .flat_map(|g| g.data().iter())
        .map(|v| {
            let v = v.to_f64().unwrap();
            v * v
        })
        .sum::<f64>()
        .sqrt();
    if total > max_norm {
        let scale = T::lit(max_norm / (total + 1e-6));
        for &id in &ids {
            if let Some(g) = params.grad_mut(grads, id) {
                g.data_mut().iter_mut().for_each(|v| *v = *v * scale);
            }
        }
    }
    total
}
