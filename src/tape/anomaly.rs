//! Anomaly mode: the first non-finite forward value or backward
//! contribution panics, naming the op, its node, its inputs' shapes and
//! the line that recorded it (as PyTorch's `detect_anomaly`). Off by
//! default; when off, recording pays one flag test per node and the
//! backward walk nothing (it takes its unchecked path).

use super::Tape;
use crate::tensor::{Element, Tensor};
use std::panic::Location;

impl<T: Element> Tape<T> {
    /// Switches anomaly detection on or off for everything recorded and
    /// every backward pass from now on.
    ///
    /// ```should_panic
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// tape.set_detect_anomaly(true);
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 0.0], [2]));
    /// let y = x.ln(); // panics: ln produced -inf at element 1, recorded here
    /// # let _ = y;
    /// ```
    pub fn set_detect_anomaly(&self, on: bool) {
        self.anomaly.set(on);
    }

    /// Whether anomaly detection is on.
    pub fn is_detecting_anomaly(&self) -> bool {
        self.anomaly.get()
    }

    /// Runs `f` with anomaly detection on, then restores the setting.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(4.0);
    /// let g = tape.detect_anomaly(|| x.sqrt().backward().item(x));
    /// assert_eq!(g, 0.25);
    /// ```
    pub fn detect_anomaly<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a std::cell::Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.anomaly, self.anomaly.replace(true));
        f()
    }

    /// Called for each node recorded in anomaly mode: remembers where it
    /// was recorded and checks its value.
    #[cold]
    #[inline(never)]
    #[track_caller]
    pub(crate) fn anomaly_forward(&self, index: usize) {
        let site = Location::caller();
        self.sites.borrow_mut().push((index as u32, site));
        let arena = self.arena.borrow();
        let value = arena.value(index);
        if let Some((e, v)) = first_non_finite(&value) {
            let op = self.op_name(&arena.op(index));
            let inputs = self.describe_inputs(index);
            panic!(
                "anomaly: {op} node {} produced {v} at element {e} (shape {:?}); inputs: {inputs}; \
                 recorded at {site}",
                self.label_of(index),
                value.shape(),
            );
        }
    }

    /// Checks one contribution of the backward walk: node `i` passing `c`
    /// to its `k`-th input, node `j`.
    pub(crate) fn anomaly_backward(&self, i: usize, k: usize, j: usize, c: &Tensor<T>) {
        if let Some((e, v)) = first_non_finite(c) {
            let op = self.op_name(&self.arena.borrow().op(i));
            let site = self.site_of(i);
            panic!(
                "anomaly: the backward of {op} node {} passed {v} at element {e} to its input {k} \
                 ({}, shape {:?}); inputs: {}; node recorded at {site}",
                self.label_of(i),
                self.label_of(j),
                c.shape(),
                self.describe_inputs(i),
            );
        }
    }

    /// Where node `i` was recorded, if anomaly mode was on then.
    fn site_of(&self, i: usize) -> String {
        let sites = self.sites.borrow();
        match sites.binary_search_by_key(&(i as u32), |(n, _)| *n) {
            Ok(at) => sites[at].1.to_string(),
            Err(_) => "(unknown: recorded before anomaly mode was switched on)".into(),
        }
    }

    /// `label (op, shape)` of each input of node `i`.
    fn describe_inputs(&self, i: usize) -> String {
        let arena = self.arena.borrow();
        let inputs: Vec<String> = arena
            .inputs(i)
            .iter()
            .map(|&j| {
                let j = j as usize;
                format!(
                    "{} ({}, shape {:?})",
                    self.label_of(j),
                    self.op_name(&arena.op(j)),
                    arena.value(j).shape()
                )
            })
            .collect();
        if inputs.is_empty() {
            "none (a leaf: the data put on the tape)".into()
        } else {
            inputs.join(", ")
        }
    }
}

/// The first element that is NaN or infinite, with its flat index.
fn first_non_finite<T: Element>(t: &Tensor<T>) -> Option<(usize, T)> {
    t.data()
        .iter()
        .copied()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
}
