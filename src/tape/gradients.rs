//! The results of a backward walk, indexed by the [`Var`]s they belong to.

use super::{Tape, Var};
use crate::tensor::{Element, Tensor};
use std::ops::Index;

/// Gradients from [`Var::backward`]: one tensor per node that needs one,
/// indexed by [`Var`]. A leaf that requires a gradient but does not reach the
/// output has a zero gradient.
///
/// Dropping it hands its storage back to the tape for the next step.
pub struct Gradients<'t, T: Element> {
    tape: &'t Tape<T>,
    tape_id: u64,
    epoch: u32,
    grads: Vec<Option<Tensor<T>>>,
}

impl<'t, T: Element> Gradients<'t, T> {
    pub(crate) fn new(tape: &'t Tape<T>, grads: Vec<Option<Tensor<T>>>) -> Self {
        Gradients {
            tape,
            tape_id: tape.id(),
            epoch: tape.epoch(),
            grads,
        }
    }

    /// The gradient of `v`, or `None` if it has none (a constant, or a node
    /// the output does not depend on).
    #[track_caller]
    pub fn get(&self, v: Var<'_, T>) -> Option<&Tensor<T>> {
        self.check(&v);
        self.grads.get(v.index()).and_then(|g| g.as_ref())
    }

    /// The gradient of the node at `index`, if these gradients come from
    /// that tape and epoch (how parameters find theirs).
    pub(crate) fn get_node(&self, tape_id: u64, epoch: u32, index: usize) -> Option<&Tensor<T>> {
        if tape_id != self.tape_id || epoch != self.epoch {
            return None;
        }
        self.grads.get(index).and_then(|g| g.as_ref())
    }

    /// Mutable form of [`Gradients::get_node`] (for gradient clipping).
    pub(crate) fn get_node_mut(
        &mut self,
        tape_id: u64,
        epoch: u32,
        index: usize,
    ) -> Option<&mut Tensor<T>> {
        if tape_id != self.tape_id || epoch != self.epoch {
            return None;
        }
        self.grads.get_mut(index).and_then(|g| g.as_mut())
    }

    #[track_caller]
    fn check(&self, v: &Var<'_, T>) {
        assert!(
            v.tape().id() == self.tape_id,
            "Gradients: {} belongs to tape #{}, but these gradients come from tape #{}",
            v.label(),
            v.tape().id(),
            self.tape_id
        );
        assert!(
            self.epoch == self.tape.epoch(),
            "Gradients: these gradients were computed before the tape was reset; \
             they no longer belong to any node"
        );
        v.index();
    }
}

impl<T: Element> Index<Var<'_, T>> for Gradients<'_, T> {
    type Output = Tensor<T>;

    #[track_caller]
    fn index(&self, v: Var<'_, T>) -> &Tensor<T> {
        match self.get(v) {
            Some(g) => g,
            None => panic!(
                "Gradients: no gradient for {} ({}): it does not require a gradient, \
                 or it is not an input of the output's graph",
                v.label(),
                v.op_name()
            ),
        }
    }
}

impl<T: Element> Drop for Gradients<'_, T> {
    fn drop(&mut self) {
        self.tape.give_spare(std::mem::take(&mut self.grads));
    }
}

/// Gradients from [`Var::backward_recorded`]: each one is a [`Var`] on the
/// same tape, so it can be used in further ops and differentiated again.
pub struct GradVars<'t, T: Element> {
    tape: &'t Tape<T>,
    grads: Vec<Option<Var<'t, T>>>,
}

impl<'t, T: Element> GradVars<'t, T> {
    pub(crate) fn new(tape: &'t Tape<T>, grads: Vec<Option<Var<'t, T>>>) -> Self {
        GradVars { tape, grads }
    }

    /// The gradient of `v` as a recorded [`Var`], if it has one.
    #[track_caller]
    pub fn get(&self, v: Var<'t, T>) -> Option<Var<'t, T>> {
        assert!(
            std::ptr::eq(v.tape(), self.tape),
            "GradVars: {} belongs to tape #{}, but these gradients were recorded on tape #{}",
            v.label(),
            v.tape().id(),
            self.tape.id()
        );
        self.grads.get(v.index()).copied().flatten()
    }
}

impl<'t, T: Element> Index<Var<'t, T>> for GradVars<'t, T> {
    type Output = Var<'t, T>;

    #[track_caller]
    fn index(&self, v: Var<'t, T>) -> &Var<'t, T> {
        if self.get(v).is_none() {
            panic!(
                "GradVars: no gradient for {} ({}): it does not require a gradient, \
                 or it is not an input of the output's graph",
                v.label(),
                v.op_name()
            );
        }
        self.grads[v.index()].as_ref().unwrap()
    }
}
