//! First-order optimizers, parameter groups, learning-rate schedules,
//! gradient accumulation and clipping.
//!
//! Every optimizer updates the parameters in place from one step's
//! gradients; there is nothing to zero between steps (gradients belong to
//! the step). State (momentum, moment estimates) lives in a
//! `SecondaryMap` per parameter, allocated on the first step only. What
//! every optimizer shares (learning rate and weight decay per group, the
//! schedule, the step count, the refusal of non-finite gradients) lives in
//! one [`Settings`].

mod accumulate;
mod adagrad;
mod adam;
mod clip;
mod rmsprop;
mod schedule;
mod settings;
mod sgd;

pub use accumulate::GradAccumulator;
pub use adagrad::AdaGrad;
pub use adam::{Adam, AdamW};
pub use clip::{clip_grad_norm, try_clip_grad_norm};
pub use rmsprop::RmsProp;
pub use schedule::Schedule;
pub use settings::{GradSource, Hyper, ParamGroup, Settings, StepError};
pub use sgd::Sgd;

use super::{ParamId, ParamStore};
use crate::tensor::{Element, Tensor};
use slotmap::SecondaryMap;

/// Per-parameter tensors an optimizer keeps between steps.
pub type Slot<T> = SecondaryMap<ParamId, Tensor<T>>;

/// Updates parameters from gradients.
///
/// An implementation writes [`Optimizer::try_step`] (through
/// [`Settings::update`], which finds the gradients, checks them and hands
/// each parameter over with its group's hyperparameters) and the accessors;
/// everything else is provided.
///
/// ```
/// use tapegrad::nn::{Optimizer, ParamStore, Schedule, Sgd};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f64>::new();
/// let w = params.add("w", Tensor::scalar(1.0));
/// let mut opt = Sgd::new(0.1).with_schedule(Schedule::Exponential { gamma: 0.5 });
/// let tape = Tape::new();
/// for _ in 0..2 {
///     tape.reset();
///     let grads = (params.var(&tape, w) * 2.0).backward(); // g = 2
///     opt.step(&mut params, &grads);
/// }
/// assert_eq!(params.value(w).item(), 1.0 - 0.1 * 2.0 - 0.05 * 2.0);
/// assert_eq!((opt.steps(), opt.lr()), (2, 0.025));
/// ```
pub trait Optimizer<T: Element> {
    /// One update of every trainable parameter that has a gradient in
    /// `grads` ([`crate::Gradients`] of a backward pass, or a
    /// [`GradAccumulator`]), or an error that changed nothing: a
    /// non-finite gradient, or no gradient for any trainable parameter.
    fn try_step(
        &mut self,
        params: &mut ParamStore<T>,
        grads: &dyn GradSource<T>,
    ) -> Result<(), StepError>;

    /// The settings shared by every optimizer.
    fn settings(&self) -> &Settings;

    /// Mutable access to them.
    fn settings_mut(&mut self) -> &mut Settings;

    /// The named per-parameter state, for checkpoints: `(name, slot)`.
    fn slots(&self) -> Vec<(&'static str, &Slot<T>)>;

    /// Mutable access to the state, for loading checkpoints.
    fn slots_mut(&mut self) -> Vec<(&'static str, &mut Slot<T>)>;

    /// [`Optimizer::try_step`], panicking on its errors.
    ///
    /// # Panics
    /// If a gradient is not finite (every parameter is left as it was; see
    /// [`Settings::allow_non_finite`] for PyTorch's behaviour), or no
    /// trainable parameter has a gradient in `grads` (the message says
    /// why: another store, a forward inside `no_grad`, everything frozen).
    #[track_caller]
    fn step(&mut self, params: &mut ParamStore<T>, grads: &dyn GradSource<T>) {
        if let Err(e) = self.try_step(params, grads) {
            panic!("{e}");
        }
    }

    /// The current learning rate of the default group (with the schedule
    /// applied).
    fn lr(&self) -> f64 {
        self.settings().lr()
    }

    /// Sets the default group's base learning rate.
    fn set_lr(&mut self, lr: f64) {
        self.settings_mut().set_lr(lr);
    }

    /// Number of steps taken.
    fn steps(&self) -> u64 {
        self.settings().steps()
    }

    /// Sets the step count (when restoring a checkpoint).
    fn set_steps(&mut self, steps: u64) {
        self.settings_mut().set_steps(steps);
    }

    /// Adds a parameter group with its own learning rate and weight decay.
    ///
    /// # Panics
    /// If a parameter is in a group already.
    #[track_caller]
    fn add_group(&mut self, group: ParamGroup) {
        self.settings_mut().add_group(group);
    }

    /// Attaches a learning-rate schedule, advanced by every step.
    fn set_schedule(&mut self, schedule: Schedule) {
        self.settings_mut().schedule = schedule;
    }

    /// Builder form of [`Optimizer::set_schedule`].
    fn with_schedule(mut self, schedule: Schedule) -> Self
    where
        Self: Sized,
    {
        self.set_schedule(schedule);
        self
    }

    /// Builder form of [`Settings::restrict_to`]: this optimizer trains
    /// only `params`.
    fn with_params(mut self, params: impl IntoIterator<Item = ParamId>) -> Self
    where
        Self: Sized,
    {
        self.settings_mut().restrict_to(params);
        self
    }

    /// Builder form of [`Optimizer::add_group`].
    #[track_caller]
    fn with_group(mut self, group: ParamGroup) -> Self
    where
        Self: Sized,
    {
        self.add_group(group);
        self
    }
}

/// The accessors of [`Optimizer`] for an optimizer whose settings live in
/// field `settings` (of `self`, or of the field named first).
macro_rules! settings_access {
    ($($inner:tt)?) => {
        fn settings(&self) -> &super::Settings {
            &self$(.$inner)?.settings
        }
        fn settings_mut(&mut self) -> &mut super::Settings {
            &mut self$(.$inner)?.settings
        }
    };
}
pub(crate) use settings_access;

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
