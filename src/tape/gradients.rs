//! The results of a backward walk, indexed by the [`Var`]s they belong to.

use super::arena::Arena;
use super::{BindKey, Bound, Tape, Var, VarRange};
use crate::tensor::{Element, Tensor};
use elsa::FrozenMap;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::ops::Index;

/// The walk's gradient storage: one number per node for scalar nodes (a
/// dense array, no tensor per node) and one optional tensor per tensor slot.
pub(crate) struct GradSlots<T: Element> {
    /// Gradient of each scalar node, by node index: meaningful only where
    /// `reached` says so (the walk writes a slot's first contribution over
    /// whatever an earlier walk left there, so reusing the storage costs no
    /// clearing pass over it).
    pub(crate) scalar: Vec<T>,
    /// Whether `scalar[i]` is node `i`'s gradient: a scalar node that needs
    /// a gradient and was reached by the walk, or is a leaf.
    pub(crate) reached: Vec<bool>,
    /// Gradient of each tensor node, by its value's slot.
    pub(crate) tensor: Vec<Option<Tensor<T>>>,
    /// 0-d tensors handed out by reference for scalar nodes (and changed
    /// through `get_node_mut`); they take precedence over `scalar`.
    boxed: FrozenMap<u32, Box<Tensor<T>>>,
    /// Boxes of earlier steps, reused so that reading a scalar parameter's
    /// gradient as a tensor does not allocate in a steady training loop.
    spare_boxes: RefCell<Vec<Box<Tensor<T>>>>,
    /// Whether `boxed` holds anything (read without borrowing the map).
    any_boxed: Cell<bool>,
}

impl<T: Element> Default for GradSlots<T> {
    fn default() -> Self {
        GradSlots {
            scalar: Vec::new(),
            reached: Vec::new(),
            tensor: Vec::new(),
            boxed: FrozenMap::new(),
            spare_boxes: RefCell::new(Vec::new()),
            any_boxed: Cell::new(false),
        }
    }
}

impl<T: Element> GradSlots<T> {
    /// Forgets the gradients; `scalar` keeps its stale numbers (see there).
    pub(crate) fn clear(&mut self) {
        self.reached.clear();
        self.tensor.clear();
        let spare = self.spare_boxes.get_mut();
        spare.extend(self.boxed.as_mut().drain().map(|(_, b)| b));
        self.any_boxed.set(false);
    }

    /// A 0-d tensor holding `g`, at a stable address, for node `i`.
    fn boxed(&self, i: usize, g: T) -> &Tensor<T> {
        let b = match self.spare_boxes.borrow_mut().pop() {
            Some(mut b) => {
                *b = Tensor::scalar(g);
                b
            }
            None => Box::new(Tensor::scalar(g)),
        };
        self.any_boxed.set(true);
        self.boxed.insert(i as u32, b)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.scalar.capacity() + self.tensor.capacity()
    }

    /// Empty slots for nodes `0..nodes` and tensor slots `0..tensors`.
    pub(crate) fn reset(&mut self, nodes: usize, tensors: usize) {
        self.clear();
        self.reached.resize(nodes, false);
        self.size(nodes, tensors);
    }

    /// Slots for nodes `0..reached.len()`, those marked in `reached`
    /// counted as reached (a replay's plan knows them before the walk),
    /// and empty tensor slots `0..tensors`.
    pub(crate) fn reset_reached(&mut self, reached: &[bool], tensors: usize) {
        self.clear();
        self.reached.extend_from_slice(reached);
        self.size(reached.len(), tensors);
    }

    fn size(&mut self, nodes: usize, tensors: usize) {
        if self.scalar.len() > nodes {
            self.scalar.truncate(nodes);
        } else {
            self.scalar.resize(nodes, T::zero());
        }
        self.tensor.resize_with(tensors, || None);
    }

    /// Node `i`'s gradient, if it has one: a node that needs a gradient and
    /// was reached by the walk, or any leaf that needs one (a zero gradient
    /// if the output does not depend on it).
    pub(crate) fn get<'a>(&'a self, arena: &Arena<T>, i: usize) -> Option<Cow<'a, Tensor<T>>> {
        if let Some(g) = self.scalar_grad(i) {
            return Some(Cow::Owned(Tensor::scalar(g)));
        }
        self.tensor_grad(arena, i).map(Cow::Borrowed)
    }

    /// Node `i`'s gradient if it is a scalar node that has one.
    #[inline]
    fn scalar_grad(&self, i: usize) -> Option<T> {
        (*self.reached.get(i)?).then(|| self.scalar[i])
    }

    /// Node `i`'s gradient if it is a tensor node that has one.
    fn tensor_grad(&self, arena: &Arena<T>, i: usize) -> Option<&Tensor<T>> {
        if i >= self.scalar.len() {
            return None;
        }
        self.tensor.get(arena.tensor_slot(i)?)?.as_ref()
    }
}

/// Gradients from [`Var::backward`]: one per node that needs one, indexed by
/// [`Var`]. A leaf that requires a gradient but does not reach the output has
/// a zero gradient.
///
/// A scalar node's gradient is stored as a plain number: read it with
/// [`Gradients::item`]; `grads[x]` builds a 0-d tensor for it on first use.
/// Dropping it hands its storage back to the tape for the next step.
pub struct Gradients<'t, T: Element> {
    tape: &'t Tape<T>,
    tape_id: u64,
    epoch: u32,
    slots: GradSlots<T>,
    /// Set once an optimizer step has applied these gradients (clipping
    /// them afterwards would change nothing).
    applied: Cell<bool>,
}

impl<'t, T: Element> Gradients<'t, T> {
    pub(crate) fn new(tape: &'t Tape<T>, slots: GradSlots<T>) -> Self {
        Gradients {
            tape,
            tape_id: tape.id(),
            epoch: tape.epoch(),
            slots,
            applied: Cell::new(false),
        }
    }

    /// Whether the tape was reset after these gradients were computed.
    pub(crate) fn reset_since(&self) -> bool {
        self.epoch != self.tape.epoch()
    }

    /// Marks these gradients as applied by an optimizer step.
    pub(crate) fn mark_applied(&self) {
        self.applied.set(true);
    }

    /// Whether an optimizer step has applied these gradients.
    ///
    /// ```
    /// use tapegrad::nn::{Optimizer, ParamStore, Sgd};
    /// use tapegrad::{Tape, Tensor};
    /// let mut params = ParamStore::<f64>::new();
    /// let w = params.add("w", Tensor::scalar(1.0));
    /// let tape = Tape::new();
    /// let grads = (params.var(&tape, w) * 2.0).backward();
    /// assert!(!grads.applied());
    /// Sgd::new(0.1).step(&mut params, &grads);
    /// assert!(grads.applied());
    /// ```
    pub fn applied(&self) -> bool {
        self.applied.get()
    }

    /// The gradient of `v`, or `None` if it has none (a constant, or a node
    /// the output does not depend on).
    #[track_caller]
    pub fn get(&self, v: Var<'_, T>) -> Option<&Tensor<T>> {
        self.check(&v);
        self.node(v.index())
    }

    /// The gradient of a one-element `v` as a number, without building a
    /// tensor (the fast way to read scalar graphs).
    ///
    /// # Panics
    /// If `v` has no gradient or more than one element.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(3.0);
    /// let g = (x * x).backward();
    /// assert_eq!(g.item(x), 6.0);
    /// ```
    #[track_caller]
    #[inline]
    pub fn item(&self, v: Var<'_, T>) -> T {
        // The common case in one test: a current handle of this tape, a
        // scalar gradient not changed through a box.
        if self.current(&v) && !self.slots.any_boxed.get() {
            if let Some(g) = self.slots.scalar_grad(v.index()) {
                return g;
            }
        }
        self[v].item()
    }

    /// The gradients of every leaf of `r` (from [`Tape::vars`]), in order,
    /// as numbers: a view of the walk's own storage when it can be (no
    /// copy), else a vector. The fast way to read many scalar parameters.
    ///
    /// # Panics
    /// If `r` belongs to another tape or epoch, or one of its leaves has
    /// no gradient (it was made with gradients switched off, or recorded
    /// after the output), as [`Gradients::item`] does for one leaf.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let (x, w) = (tape.var(2.0), tape.vars([3.0, 4.0]));
    /// let y = x * w.get(0) + w.get(1);
    /// let g = y.backward();
    /// assert_eq!(&g.items(&w)[..], &[2.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn items(&self, r: &VarRange<'_, T>) -> Cow<'_, [T]> {
        let (first, len) = r.parts();
        self.check(&first);
        let span = first.index()..first.index() + len;
        let borrowable = !self.slots.any_boxed.get()
            && span.end <= self.slots.scalar.len()
            && all_true(&self.slots.reached[span.clone()]);
        if borrowable {
            return Cow::Borrowed(&self.slots.scalar[span]);
        }
        // Gradients changed through a box, leaves recorded after the
        // output, or no gradient at all: one at a time, with `item`'s
        // rules and messages.
        Cow::Owned(r.iter().map(|v| self.item(v)).collect())
    }

    /// The gradient of the outside leaf `key` (a parameter) as bound on
    /// this recording's tape, if it was bound there before the output.
    ///
    /// # Panics
    /// If the tape was reset since these gradients were computed: the
    /// bindings they were recorded with are gone.
    #[track_caller]
    pub(crate) fn bound(&self, key: BindKey) -> Option<&Tensor<T>> {
        let b = self.binding(key)?;
        self.node(b.index as usize)
    }

    /// The tape node of the outside leaf `key` if it needs a gradient.
    #[track_caller]
    fn binding(&self, key: BindKey) -> Option<Bound> {
        self.assert_not_reset();
        self.tape.bound(key).filter(|b| b.requires_grad)
    }

    /// The gradient of the node at `index`, if these gradients come from
    /// that tape and epoch (the graph pictures).
    pub(crate) fn get_node(&self, tape_id: u64, epoch: u32, index: usize) -> Option<&Tensor<T>> {
        if tape_id != self.tape_id || epoch != self.epoch {
            return None;
        }
        self.node(index)
    }

    /// The tape these gradients come from.
    pub(crate) fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    #[track_caller]
    fn assert_not_reset(&self) {
        assert!(
            self.epoch == self.tape.epoch(),
            "Gradients: these gradients were computed on tape #{} before it was reset; \
             their nodes and parameter bindings are gone. Call backward() on this step's \
             loss after its forward, and use the gradients before the next reset",
            self.tape_id
        );
    }

    fn node(&self, i: usize) -> Option<&Tensor<T>> {
        if let Some(t) = self.slots.boxed.get(&(i as u32)) {
            return Some(t);
        }
        if let Some(g) = self.slots.scalar_grad(i) {
            return Some(self.slots.boxed(i, g));
        }
        self.slots.tensor_grad(&self.tape.arena.borrow(), i)
    }

    /// Mutable form of [`Gradients::bound`] (for gradient clipping and
    /// accumulation).
    #[track_caller]
    pub(crate) fn bound_mut(&mut self, key: BindKey) -> Option<&mut Tensor<T>> {
        let index = self.binding(key)?.index as usize;
        let key = index as u32;
        // A scalar gradient is changed through its box, which every later
        // read then sees.
        if self.slots.boxed.get(&key).is_none() {
            if let Some(g) = self.slots.scalar_grad(index) {
                self.slots.boxed(index, g);
            }
        }
        if let Some(b) = self.slots.boxed.as_mut().get_mut(&key) {
            return Some(&mut **b);
        }
        if index >= self.slots.scalar.len() {
            return None;
        }
        let slot = self.tape.arena.borrow().tensor_slot(index)?;
        self.slots.tensor.get_mut(slot)?.as_mut()
    }

    #[track_caller]
    #[inline]
    fn check(&self, v: &Var<'_, T>) {
        if !self.current(v) {
            self.mismatch(v);
            v.index(); // a stale handle of this tape: says so
        }
    }

    /// Whether `v` and these gradients both belong to the tape as it is now.
    #[inline]
    fn current(&self, v: &Var<'_, T>) -> bool {
        v.tape().id() == self.tape_id
            && v.epoch_unchecked() == self.epoch
            && self.epoch == self.tape.epoch()
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn mismatch(&self, v: &Var<'_, T>) {
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
        self.tape.give_spare(std::mem::take(&mut self.slots));
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

/// Whether every flag is set: 64 at a time with no early exit, which the
/// compiler turns into vector code (a byte-at-a-time `all` is a loop of
/// branches, a cost seen when reading W1's 200,000 gradients).
fn all_true(flags: &[bool]) -> bool {
    let chunks = flags.chunks_exact(64);
    let rest = chunks.remainder().iter().all(|&f| f);
    rest && chunks
        .into_iter()
        .all(|c| c.iter().fold(true, |all, &f| all & f))
}

#[cfg(test)]
mod tests {
    use super::all_true;

    #[test]
    fn all_true_finds_any_unset_flag() {
        for len in [0, 1, 63, 64, 65, 128, 130] {
            let mut flags = vec![true; len];
            assert!(all_true(&flags), "len {len}");
            for i in 0..len {
                flags[i] = false;
                assert!(!all_true(&flags), "len {len}, unset at {i}");
                flags[i] = true;
            }
        }
    }
}
