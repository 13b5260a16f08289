//! Gradient accumulation: the gradients of several micro-batches summed
//! (and scaled) into one, for one optimizer step.

use super::{GradSource, StepError};
use crate::nn::{ParamId, ParamKey, ParamStore};
use crate::tape::Gradients;
use crate::tensor::{Element, Tensor};
use slotmap::SecondaryMap;
use std::cell::Cell;

/// Sums the parameter gradients of several backward passes (possibly on
/// tapes reset in between), each scaled, so that one optimizer step sees
/// the gradient of a batch too large to record at once.
///
/// A step that uses it marks it spent: the next [`GradAccumulator::add`]
/// starts a new sum, and a second step on the same sum is refused, so no
/// micro-batch is applied twice and none leaks into the next step.
///
/// ```
/// use tapegrad::nn::{GradAccumulator, Optimizer, ParamStore, Sgd};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f64>::new();
/// let w = params.add("w", Tensor::scalar(1.0));
/// let mut opt = Sgd::new(0.1);
/// let mut acc = GradAccumulator::new();
/// let tape = Tape::new();
/// for x in [1.0, 3.0] {
///     tape.reset();
///     let loss = params.var(&tape, w) * x; // gradient x
///     acc.add(&params, &loss.backward(), 0.5); // the mean of the two
/// }
/// opt.step(&mut params, &acc);
/// assert_eq!(params.value(w).item(), 1.0 - 0.1 * 2.0);
/// ```
#[derive(Default)]
pub struct GradAccumulator<T: Element> {
    store: Option<u64>,
    /// The running sum of each parameter, and whether it holds one in the
    /// current accumulation (tensors are kept between steps, for reuse).
    sums: SecondaryMap<ParamId, (Tensor<T>, bool)>,
    added: usize,
    spent: Cell<bool>,
}

impl<T: Element> GradAccumulator<T> {
    /// An empty accumulator.
    pub fn new() -> Self {
        GradAccumulator {
            store: None,
            sums: SecondaryMap::new(),
            added: 0,
            spent: Cell::new(false),
        }
    }

    /// Adds `scale ×` every trainable parameter's gradient in `grads`.
    ///
    /// # Panics
    /// If no trainable parameter of `params` has a gradient in `grads`
    /// (the message says why), or the accumulator holds gradients of
    /// another store.
    #[track_caller]
    pub fn add(&mut self, params: &ParamStore<T>, grads: &Gradients<'_, T>, scale: f64) {
        if self.spent.replace(false) {
            self.clear();
        }
        let store = params.key_store();
        assert!(
            self.store.is_none_or(|s| s == store),
            "GradAccumulator::add: it holds gradients of another ParamStore; use one accumulator per store"
        );
        if let Err(e) =
            super::settings::check_gradients("GradAccumulator::add", params, grads, false, |_| true)
        {
            panic!("{e}");
        }
        self.store = Some(store);
        let k = T::lit(scale);
        for id in params.trainable() {
            let Some(g) = params.grad(grads, id) else {
                continue;
            };
            let entry = self
                .sums
                .entry(id)
                .expect("parameter ids are never removed")
                .or_insert_with(|| (Tensor::zeros(g.shape()), false));
            let (sum, live) = entry;
            if sum.shape() != g.shape() {
                // Restarting the sum here would drop earlier micro-batches.
                assert!(
                    !*live,
                    "GradAccumulator::add: the gradient of `{}` changed shape from {:?} to {:?} \
                     within one accumulation; step or clear() before reshaping a parameter",
                    params.name(id),
                    sum.shape(),
                    g.shape()
                );
                *sum = Tensor::zeros(g.shape());
            }
            if !*live {
                for (s, &x) in sum.data_mut().iter_mut().zip(g.data()) {
                    *s = k * x;
                }
                *live = true;
            } else {
                for (s, &x) in sum.data_mut().iter_mut().zip(g.data()) {
                    *s = *s + k * x;
                }
            }
        }
        self.added += 1;
    }

    /// Number of backward passes added since the last step or clear.
    pub fn len(&self) -> usize {
        if self.spent.get() {
            0
        } else {
            self.added
        }
    }

    /// True if nothing was added since the last step or clear.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The summed gradient of `id`, if it has one.
    pub fn get(&self, id: ParamId) -> Option<&Tensor<T>> {
        if self.spent.get() {
            return None;
        }
        self.sums.get(id).filter(|(_, live)| *live).map(|(t, _)| t)
    }

    /// The summed gradient of `id` to change in place (data-parallel
    /// training reduces it over processes).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn get_mut(&mut self, id: ParamId) -> Option<&mut Tensor<T>> {
        if self.spent.get() {
            return None;
        }
        self.sums
            .get_mut(id)
            .filter(|(_, live)| *live)
            .map(|(t, _)| t)
    }

    /// Forgets the sum (keeping its storage).
    pub fn clear(&mut self) {
        for (_, (_, live)) in self.sums.iter_mut() {
            *live = false;
        }
        self.added = 0;
        self.store = None;
        self.spent.set(false);
    }

    /// Scales the summed gradients so that their global L2 norm is at most
    /// `max_norm`, as [`super::clip_grad_norm`] does; returns the norm
    /// before clipping.
    ///
    /// # Errors
    /// If the norm is not finite (nothing is changed) or the sum is empty.
    ///
    /// # Panics
    /// If `max_norm` is not a positive finite number.
    #[track_caller]
    pub fn clip_norm(&mut self, max_norm: f64) -> Result<f64, StepError> {
        let op = "GradAccumulator::clip_norm";
        super::clip::check_max_norm(op, max_norm);
        if self.is_empty() {
            return Err(StepError::NoGradients {
                op,
                why: "the accumulator is empty".into(),
            });
        }
        let live = || self.sums.values().filter(|(_, l)| *l).map(|(t, _)| t);
        let norm = super::clip::global_norm(live());
        let scale = super::clip::clip_scale(op, norm, max_norm)?;
        if let Some(s) = scale {
            for (t, _) in self.sums.values_mut().filter(|(_, l)| *l) {
                t.data_mut().iter_mut().for_each(|v| *v = *v * s);
            }
        }
        Ok(norm)
    }
}

impl<T: Element> GradSource<T> for GradAccumulator<T> {
    fn grad_of(&self, key: ParamKey) -> Option<&Tensor<T>> {
        if Some(key.tape_key().0) != self.store {
            return None;
        }
        self.get(key.id())
    }

    fn why_none(&self, params: &ParamStore<T>) -> String {
        if self.spent.get() {
            "this GradAccumulator was used by a step already; add the next micro-batches first"
                .into()
        } else if self.added == 0 {
            "the GradAccumulator is empty; add() micro-batch gradients before the step".into()
        } else if self.store != Some(params.key_store()) {
            "the GradAccumulator holds gradients of another ParamStore".into()
        } else {
            "no trainable parameter had a gradient in the micro-batches added".into()
        }
    }

    fn spend(&self) {
        self.spent.set(true);
    }
}
