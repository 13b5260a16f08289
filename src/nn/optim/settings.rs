//! What every optimizer shares: learning rate and weight decay per
//! parameter group, the schedule, the step count, and the checks that
//! stop a step from silently doing nothing or spreading NaN.

use super::Schedule;
use crate::nn::{ParamId, ParamKey, ParamStore};
use crate::tape::Gradients;
use crate::tensor::{parallel, Element, Tensor};
use slotmap::SecondaryMap;

/// Where an optimizer finds each parameter's gradient: the
/// [`Gradients`] of a backward pass (through the tape they come from), or
/// a [`super::GradAccumulator`] that summed several.
pub trait GradSource<T: Element> {
    /// The gradient of the parameter `key` names, if there is one.
    fn grad_of(&self, key: ParamKey) -> Option<&Tensor<T>>;

    /// Why no trainable parameter of `params` has a gradient here.
    fn why_none(&self, params: &ParamStore<T>) -> String;

    /// Called once a step has applied these gradients.
    fn spend(&self) {}

    /// Why these gradients can no longer be read, if so (their tape was
    /// reset since).
    fn stale(&self) -> Option<String> {
        None
    }
}

impl<T: Element> GradSource<T> for Gradients<'_, T> {
    #[track_caller]
    fn grad_of(&self, key: ParamKey) -> Option<&Tensor<T>> {
        self.bound(key.tape_key())
    }

    fn why_none(&self, params: &ParamStore<T>) -> String {
        params.why_no_gradient(self)
    }

    fn spend(&self) {
        self.mark_applied();
    }

    fn stale(&self) -> Option<String> {
        self.reset_since().then(|| {
            format!(
                "these gradients were computed on tape #{} before it was reset, so their \
                 parameter bindings are gone; call backward() on this step's loss after its \
                 forward, and step before the next reset",
                self.tape().id()
            )
        })
    }
}

/// Why a step (or a clip) changed nothing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StepError {
    /// A gradient holds NaN or an infinity; every parameter was left as it
    /// was.
    #[error(
        "{op}: the gradient of `{param}` is {value} at element {index}: nothing was updated. \
         Find where it came from with Tape::detect_anomaly, or look for NaN/inf in the \
         batch; Settings::allow_non_finite applies such steps as PyTorch does"
    )]
    NonFinite {
        /// The optimizer or function that refused.
        op: &'static str,
        /// The parameter's name.
        param: String,
        /// The flat index of the first non-finite element.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A step while the store is in evaluation mode and holds state whose
    /// behaviour depends on the mode (dropout's random streams, buffers):
    /// `params.train()` was forgotten after a validation pass.
    #[error(
        "{op}: the ParamStore is in evaluation mode (params.eval() was called and \
         params.train() was not), so dropout and other mode-dependent layers are off \
         while training; nothing was updated. Call params.train() before the training \
         forward, or Settings::allow_eval_mode to train in evaluation mode on purpose"
    )]
    EvalMode {
        /// The optimizer that refused.
        op: &'static str,
    },
    /// The gradients' tape was reset since they were computed.
    #[error("{op}: {why}")]
    Stale {
        /// The optimizer or function that refused.
        op: &'static str,
        /// What happened and what to do.
        why: String,
    },
    /// No trainable parameter has a gradient, so the step would do nothing.
    #[error("{op}: no trainable parameter has a gradient, so nothing was updated: {why}")]
    NoGradients {
        /// The optimizer or function that refused.
        op: &'static str,
        /// What the gradients and the store say about why.
        why: String,
    },
}

/// A set of parameters with their own learning rate and weight decay
/// (PyTorch's `param_groups`). What it does not set, it takes from the
/// optimizer's defaults.
///
/// ```
/// use tapegrad::nn::{Adam, Linear, Optimizer, ParamGroup, ParamStore};
/// let mut params = ParamStore::<f32>::new();
/// let body = Linear::new(&mut params, "body", 4, 4, 1);
/// let head = Linear::new(&mut params, "head", 4, 2, 2);
/// let opt = Adam::<f32>::new(1e-3)
///     .with_group(ParamGroup::new([body.weight]).lr(1e-4))
///     .with_group(ParamGroup::new(head.bias).weight_decay(0.0));
/// assert_eq!(opt.settings().groups().len(), 2);
/// # let _ = head.weight;
/// ```
#[derive(Clone, Debug)]
pub struct ParamGroup {
    params: Vec<ParamId>,
    lr: Option<f64>,
    weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group of these parameters, with the optimizer's defaults.
    pub fn new(params: impl IntoIterator<Item = ParamId>) -> Self {
        ParamGroup {
            params: params.into_iter().collect(),
            lr: None,
            weight_decay: None,
        }
    }

    /// Its base learning rate (the schedule scales it like the default's).
    #[track_caller]
    pub fn lr(mut self, lr: f64) -> Self {
        check_rate("learning rate", lr);
        self.lr = Some(lr);
        self
    }

    /// Its weight decay.
    #[track_caller]
    pub fn weight_decay(mut self, wd: f64) -> Self {
        check_rate("weight decay", wd);
        self.weight_decay = Some(wd);
        self
    }

    /// The parameters in it.
    pub fn params(&self) -> &[ParamId] {
        &self.params
    }

    /// Changes its base learning rate.
    #[track_caller]
    pub fn set_lr(&mut self, lr: f64) {
        check_rate("learning rate", lr);
        self.lr = Some(lr);
    }
}

/// The hyperparameters of one parameter in one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    /// Learning rate, schedule applied.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// This step's number, from 1 (Adam's bias correction).
    pub step: u64,
}

/// The settings every optimizer shares.
#[derive(Clone, Debug)]
pub struct Settings {
    lr: f64,
    weight_decay: f64,
    steps: u64,
    groups: Vec<ParamGroup>,
    group_of: SecondaryMap<ParamId, usize>,
    /// The learning-rate schedule, advanced by every step (constant by
    /// default).
    pub schedule: Schedule,
    non_finite: bool,
    eval_mode: bool,
    /// The parameters this optimizer trains, if not every trainable one.
    scope: Option<SecondaryMap<ParamId, ()>>,
}

impl Settings {
    /// Base learning rate `lr` and weight decay `weight_decay` for every
    /// parameter not in a group; no schedule, no steps yet.
    ///
    /// # Panics
    /// If `lr` or `weight_decay` is negative or not finite.
    #[track_caller]
    pub fn new(lr: f64, weight_decay: f64) -> Self {
        check_rate("learning rate", lr);
        check_rate("weight decay", weight_decay);
        Settings {
            lr,
            weight_decay,
            steps: 0,
            groups: Vec::new(),
            group_of: SecondaryMap::new(),
            schedule: Schedule::Constant,
            non_finite: false,
            eval_mode: false,
            scope: None,
        }
    }

    /// Restricts the optimizer to these parameters (PyTorch's
    /// `Adam(model.parameters())`), for two optimizers over one store (a
    /// generator and a discriminator). By default it trains every
    /// trainable parameter that has a gradient.
    pub fn restrict_to(&mut self, params: impl IntoIterator<Item = ParamId>) {
        self.scope = Some(params.into_iter().map(|id| (id, ())).collect());
    }

    /// Whether this optimizer trains `id`.
    pub fn trains(&self, id: ParamId) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains_key(id))
    }

    /// The default group's learning rate at the current step.
    pub fn lr(&self) -> f64 {
        self.schedule.lr(self.lr, self.steps)
    }

    /// Sets the default group's base learning rate.
    ///
    /// # Panics
    /// If `lr` is negative or not finite.
    #[track_caller]
    pub fn set_lr(&mut self, lr: f64) {
        check_rate("learning rate", lr);
        self.lr = lr;
    }

    /// The default weight decay.
    pub fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    /// Sets the default weight decay.
    ///
    /// # Panics
    /// If `wd` is negative or not finite.
    #[track_caller]
    pub fn set_weight_decay(&mut self, wd: f64) {
        check_rate("weight decay", wd);
        self.weight_decay = wd;
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Sets the step count (a restored checkpoint).
    pub fn set_steps(&mut self, steps: u64) {
        self.steps = steps;
    }

    /// The parameter groups, in the order they were added.
    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// Mutable access to the groups (to change a group's learning rate).
    pub fn groups_mut(&mut self) -> &mut [ParamGroup] {
        &mut self.groups
    }

    /// Adds a group.
    ///
    /// # Panics
    /// If one of its parameters is in a group already.
    #[track_caller]
    pub fn add_group(&mut self, group: ParamGroup) {
        let at = self.groups.len();
        for &id in &group.params {
            if let Some(&other) = self.group_of.get(id) {
                panic!("add_group: parameter {id:?} is in group {other} already; a parameter belongs to one group");
            }
            self.group_of.insert(id, at);
        }
        self.groups.push(group);
    }

    /// Applies steps whose gradients hold NaN or infinities, as PyTorch
    /// does, instead of refusing them (the default refuses: every
    /// parameter is left as it was and the step reports an error).
    pub fn allow_non_finite(&mut self, allow: bool) {
        self.non_finite = allow;
    }

    /// Lets steps run while the store is in evaluation mode (training with
    /// dropout off, on purpose). Refused by default when the store has
    /// mode-dependent state, since it usually means a forgotten
    /// `params.train()` after validation.
    pub fn allow_eval_mode(&mut self, allow: bool) {
        self.eval_mode = allow;
    }

    /// The hyperparameters of `id` at the current step.
    pub fn hyper(&self, id: ParamId) -> Hyper {
        let group = self.group_of.get(id).map(|&g| &self.groups[g]);
        let base = group.and_then(|g| g.lr).unwrap_or(self.lr);
        Hyper {
            lr: self.schedule.lr(base, self.steps),
            weight_decay: group
                .and_then(|g| g.weight_decay)
                .unwrap_or(self.weight_decay),
            step: self.steps + 1,
        }
    }

    /// The loop every optimizer's step runs: checks every trainable
    /// parameter's gradient first (all finite, at least one present),
    /// then calls `f(id, value, gradient, hyper)` for each that has one,
    /// and counts the step. On error nothing is changed.
    #[track_caller]
    pub fn update<T: Element>(
        &mut self,
        op: &'static str,
        params: &mut ParamStore<T>,
        grads: &dyn GradSource<T>,
        mut f: impl FnMut(ParamId, &mut Tensor<T>, &Tensor<T>, Hyper),
    ) -> Result<(), StepError> {
        if !params.is_training() && !self.eval_mode && params.has_mode_dependent_state() {
            return Err(StepError::EvalMode { op });
        }
        let scope = |id| self.trains(id);
        check_gradients(op, params, grads, !self.non_finite, scope)?;
        for (id, key, value) in params.trainable_mut() {
            if !self.trains(id) {
                continue;
            }
            if let Some(g) = grads.grad_of(key) {
                f(id, value, g, self.hyper(id));
            }
        }
        self.steps += 1;
        grads.spend();
        Ok(())
    }
}

/// Checks that some trainable parameter in `scope` has a gradient in
/// `grads` and, if `finite`, that every such gradient is finite; returns
/// how many have one.
pub(crate) fn check_gradients<T: Element>(
    op: &'static str,
    params: &ParamStore<T>,
    grads: &dyn GradSource<T>,
    finite: bool,
    scope: impl Fn(ParamId) -> bool,
) -> Result<usize, StepError> {
    if let Some(why) = grads.stale() {
        return Err(StepError::Stale { op, why });
    }
    let mut found = 0;
    for id in params.trainable().filter(|&id| scope(id)) {
        let Some(g) = grads.grad_of(params.key(id)) else {
            continue;
        };
        found += 1;
        if finite && !all_finite(g.data()) {
            let (index, value) = g
                .data()
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_finite())
                .expect("a non-finite element");
            return Err(StepError::NonFinite {
                op,
                param: params.name(id).to_string(),
                index,
                value: value.to_f64().unwrap_or(f64::NAN),
            });
        }
    }
    if found == 0 {
        return Err(StepError::NoGradients {
            op,
            why: grads.why_none(params),
        });
    }
    Ok(found)
}

/// Gradients of at least this many elements are checked in two halves, one
/// on the helper thread (as Adam updates them): the check reads 4 bytes a
/// weight, a seventh of Adam's own traffic.
const TWO_THREADS_FROM: usize = 1 << 18;

/// Whether every element is finite.
pub(crate) fn all_finite<T: Element>(xs: &[T]) -> bool {
    if xs.len() < TWO_THREADS_FROM || !parallel::two_threads() {
        return sums_finite(xs) || xs.iter().all(|x| x.is_finite());
    }
    let (a, b) = xs.split_at(xs.len() / 2);
    let other = std::sync::atomic::AtomicBool::new(false);
    let here = parallel::join(
        || sums_finite(a),
        || other.store(sums_finite(b), std::sync::atomic::Ordering::Relaxed),
    );
    (here && other.into_inner()) || xs.iter().all(|x| x.is_finite())
}

/// A quick sufficient test: the sum of the elements in 16 lanes is finite
/// if every element is (a NaN or an infinity makes its lane non-finite;
/// a false alarm, a finite sum overflowing, is settled by the exact test
/// of the caller). One add per element, as wide as the vectors.
fn sums_finite<T: Element>(xs: &[T]) -> bool {
    crate::tensor::simd::lane_sums(xs, T::zero())
        .iter()
        .all(|l| l.is_finite())
}

/// Panics unless `v` is a finite number of at least 0 (a NaN learning rate
/// would make every weight NaN at the first step).
#[track_caller]
fn check_rate(what: &str, v: f64) {
    assert!(
        v.is_finite() && v >= 0.0,
        "optimizer: {what} {v} must be a finite number of at least 0"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick test's false alarm (a sum overflowing) is settled by the
    /// exact one, and a NaN or an infinity anywhere is found, on one thread
    /// and in two halves.
    #[test]
    fn all_finite_finds_every_non_finite_element_and_nothing_else() {
        for n in [1, 17, 1000, TWO_THREADS_FROM + 33] {
            let mut xs = vec![1.5f32; n];
            assert!(all_finite(&xs), "{n}");
            for at in [0, n / 2, n - 1] {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let keep = xs[at];
                    xs[at] = bad;
                    assert!(!all_finite(&xs), "{n} {at} {bad}");
                    xs[at] = keep;
                }
            }
        }
        let huge = vec![f32::MAX; 64]; // every lane overflows, all finite
        assert!(all_finite(&huge));
    }
}
