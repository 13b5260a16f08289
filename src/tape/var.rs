//! [`Var`]: a copyable handle to one node of a [`Tape`].

use super::Tape;
use crate::tensor::{Element, Shape, Tensor};
use std::fmt;

/// A handle to a recorded value: a tape reference, the node's index and the
/// tape epoch it was made in. `Copy`, so it combines with ordinary
/// operators (`a * b + 1.0`).
///
/// A handle made before [`Tape::reset`], or combined with a handle from
/// another tape, is detected and panics with a message; it never reads
/// another node.
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let (x, w, b) = (tape.var(1.0), tape.var(0.5), tape.var(-0.2));
/// let y = (w * x + b).tanh();
/// let g = y.backward();
/// assert!((g[w].item() - 0.9151369618266293).abs() < 1e-12);
/// ```
#[derive(Clone, Copy)]
pub struct Var<'t, T: Element = f32> {
    tape: &'t Tape<T>,
    index: u32,
    epoch: u32,
}

impl<'t, T: Element> Var<'t, T> {
    pub(crate) fn from_parts(tape: &'t Tape<T>, index: u32, epoch: u32) -> Self {
        Var { tape, index, epoch }
    }

    /// The epoch the handle was made in (unchecked, for callers that
    /// compare it themselves).
    #[inline]
    pub(crate) fn epoch_unchecked(&self) -> u32 {
        self.epoch
    }

    /// The handle of the node `k` places after this one, same epoch (for
    /// [`super::VarRange`], whose leaves are consecutive).
    #[inline]
    pub(crate) fn offset(&self, k: usize) -> Self {
        Var::from_parts(self.tape, self.index + k as u32, self.epoch)
    }

    /// The node index, unchecked (for messages).
    pub(crate) fn raw_index(&self) -> usize {
        self.index as usize
    }

    /// The tape this handle belongs to.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The node's position on the tape, checked to be current.
    #[track_caller]
    #[inline]
    pub fn index(&self) -> usize {
        if self.epoch != self.tape.epoch() {
            self.stale();
        }
        self.index as usize
    }

    // The messages live out of line so that the checks inline (every op
    // runs them) and stay a compare and a branch.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn stale(&self) -> ! {
        panic!(
            "stale Var: node %{} was recorded before the tape was reset \
             (recorded in epoch {}, the tape is now in epoch {}); \
             record it again after reset()",
            self.index,
            self.epoch,
            self.tape.epoch()
        );
    }

    /// Gives the node a name, shown in traces, pictures and error messages.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.var(0.5).named("w");
    /// assert_eq!(w.label(), "w");
    /// assert_eq!((w * 2.0).label(), "%1");
    /// ```
    #[track_caller]
    pub fn named(self, name: &str) -> Self {
        let i = self.index();
        self.tape.set_name(i as u32, name);
        self
    }

    /// The node's name, if it was given one.
    pub fn name(&self) -> Option<String> {
        self.tape
            .name_of(self.index as usize)
            .filter(|_| self.epoch == self.tape.epoch())
    }

    /// A short label for messages and traces: the name, or `%12` (the
    /// node's position on the tape) for an unnamed node.
    pub fn label(&self) -> String {
        if self.epoch == self.tape.epoch() {
            self.tape.label_of(self.index as usize)
        } else {
            format!("%{}", self.index)
        }
    }

    /// Panics unless `other` lives on the same tape (for binary ops).
    #[track_caller]
    #[inline]
    pub(crate) fn same_tape(&self, other: &Var<'_, T>, op: &str) {
        if !std::ptr::eq(self.tape, other.tape) {
            self.different_tapes(other, op);
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn different_tapes(&self, other: &Var<'_, T>, op: &str) -> ! {
        panic!(
            "{op}: inputs {} and {} belong to different tapes (tape #{} and tape #{}); \
             an op's inputs must all be recorded on one tape",
            self.label(),
            other.label(),
            self.tape.id(),
            other.tape.id()
        );
    }

    /// Runs `f` on the forward value without copying it.
    ///
    /// Reading a value while recording tells [`Tape::replay`] that the
    /// rest of the program may depend on it (see there).
    ///
    /// [`Tape::replay`]: crate::Tape::replay
    #[track_caller]
    pub fn with_value<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> R {
        self.tape.note_read();
        self.peek(f)
    }

    /// [`Var::with_value`] for the engine's own use (an op reading its
    /// input to compute its output is not the program reading a value).
    #[track_caller]
    pub(crate) fn peek<R>(&self, f: impl FnOnce(&Tensor<T>) -> R) -> R {
        let i = self.index();
        f(&self.tape.arena.borrow().value(i))
    }

    /// A copy of the forward value.
    #[track_caller]
    pub fn value(&self) -> Tensor<T> {
        self.with_value(|v| v.clone())
    }

    /// The forward value of a one-element result.
    ///
    /// # Panics
    /// If the value has more than one element.
    #[track_caller]
    pub fn item(&self) -> T {
        self.with_value(|v| v.item())
    }

    /// The shape of the forward value.
    #[track_caller]
    pub fn shape(&self) -> Shape {
        self.peek(|v| Shape::from_slice(v.shape()))
    }

    /// Whether a gradient flows to this node.
    #[track_caller]
    pub fn requires_grad(&self) -> bool {
        let i = self.index();
        self.tape.arena.borrow().requires_grad(i)
    }

    /// The name of the op that produced this node (`"tanh"`, `"leaf"`, …).
    #[track_caller]
    pub fn op_name(&self) -> &'static str {
        let i = self.index();
        let op = self.tape.arena.borrow().op(i);
        self.tape.op_name(&op)
    }

    /// The same value as a constant: gradients do not flow through it.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(3.0);
    /// let y = x * x.detach(); // d/dx = x, not 2x
    /// assert_eq!(y.backward()[x].item(), 3.0);
    /// ```
    #[track_caller]
    pub fn detach(self) -> Var<'t, T> {
        let v = self.value();
        self.tape.constant(v)
    }

    /// A constant on the same tape.
    pub(crate) fn constant_like(&self, value: Tensor<T>) -> Var<'t, T> {
        self.tape.constant(value)
    }
}

impl<T: Element> fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != self.tape.epoch() {
            return write!(f, "Var({}, stale)", self.label());
        }
        self.peek(|v| write!(f, "Var({} {} = {})", self.label(), self.op_name(), v))
    }
}

impl<T: Element> fmt::Display for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.peek(|v| fmt::Display::fmt(v, f))
    }
}
