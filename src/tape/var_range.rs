//! [`VarRange`]: many scalar leaves recorded at once, under one handle.

use super::{Tape, Var};
use crate::tensor::Element;

/// Consecutive scalar leaves made by [`Tape::vars`]: one handle for any
/// number of parameters (a scalar network's weights, a long chain's
/// coefficients), instead of one [`Var`] each, and their gradients read
/// back as one slice with [`crate::Gradients::items`].
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let w = tape.vars([1.0, 2.0, 3.0]);
/// let y = w.iter().fold(tape.constant(0.0), |s, v| s + v * v);
/// let g = y.backward();
/// assert_eq!(&g.items(&w)[..], &[2.0, 4.0, 6.0]);
/// assert_eq!(g.item(w.get(1)), 4.0);
/// ```
#[derive(Clone, Copy)]
pub struct VarRange<'t, T: Element = f32> {
    first: Var<'t, T>,
    len: usize,
}

impl<'t, T: Element> VarRange<'t, T> {
    pub(crate) fn new(first: Var<'t, T>, len: usize) -> Self {
        VarRange { first, len }
    }

    /// How many leaves the range holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range holds no leaf.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `k`-th leaf.
    ///
    /// # Panics
    /// If `k` is not below [`VarRange::len`].
    #[track_caller]
    #[inline]
    pub fn get(&self, k: usize) -> Var<'t, T> {
        if k >= self.len {
            self.out_of_range(k);
        }
        self.first.offset(k)
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn out_of_range(&self, k: usize) -> ! {
        panic!(
            "VarRange::get: index {k} is out of range for {} vars (nodes %{}..%{})",
            self.len,
            self.first.raw_index(),
            self.first.raw_index() + self.len
        );
    }

    /// The leaves in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Var<'t, T>> + '_ {
        (0..self.len).map(|k| self.first.offset(k))
    }

    /// The first leaf's handle (checked when the caller uses it) and the
    /// node range, for [`crate::Gradients::items`].
    pub(crate) fn parts(&self) -> (Var<'t, T>, usize) {
        (self.first, self.len)
    }

    /// The tape the leaves belong to.
    pub fn tape(&self) -> &'t Tape<T> {
        self.first.tape()
    }
}

impl<T: Element> std::fmt::Debug for VarRange<'_, T> {
    /// `VarRange(%3..%7, 4 vars)`: the node range, not every value.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let _x = tape.var(1.0);
    /// let w = tape.vars([0.5, 0.25]);
    /// assert_eq!(format!("{w:?}"), "VarRange(%1..%3, 2 vars)");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = self.first.raw_index();
        write!(
            f,
            "VarRange(%{start}..%{}, {} vars)",
            start + self.len,
            self.len
        )
    }
}
