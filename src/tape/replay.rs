//! Record once, run many times: give a recorded scalar program new leaf
//! values and re-run its forward in place, without recording again (what
//! JAX gets by tracing a function once and calling the compiled result).

use super::{Tape, Var, VarRange};
use crate::tensor::Element;

/// `Tape::last_read` when no value was read since the reset.
pub(crate) const NO_READ: u32 = u32::MAX;

/// Why a tape cannot be replayed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// A node is not an elementwise op on scalars (a tensor op, a custom
    /// op): replay re-runs scalar programs only.
    #[error(
        "replay: node %{node} ({op}) is not an elementwise op on scalars; only programs of \
         scalar nodes can be replayed (record tensor programs afresh each step)"
    )]
    NotReplayable {
        /// The node.
        node: usize,
        /// Its op.
        op: &'static str,
    },
    /// A value was read while the program was still being recorded, so
    /// what came after may depend on it (an `if` on `y.item()`), and a
    /// replay would take the recorded branch whatever the new values say;
    /// or a value was frozen into a constant (`detach`, an op inside
    /// `no_grad`), which a replay cannot recompute.
    #[error(
        "replay: a value was read (item(), value(), detach, a backward pass) or frozen inside \
         no_grad when the tape held {read_at} of its {len} nodes, so what was recorded after may \
         depend on it through your program's control flow, which the tape cannot see, or hold a \
         value a replay cannot recompute; record such programs afresh, or read values only \
         after the last node"
    )]
    ReadDuringRecording {
        /// Nodes on the tape at the last read.
        read_at: usize,
        /// Nodes on the tape.
        len: usize,
    },
}

impl<T: Element> Tape<T> {
    /// Notes that a value was read with this many nodes on the tape.
    #[inline]
    pub(crate) fn note_read(&self) {
        let len = self.arena.borrow().len();
        self.note_read_at(len);
    }

    /// [`Tape::note_read`] with the node count given (under a borrow).
    #[inline]
    pub(crate) fn note_read_at(&self, len: usize) {
        let last = self.last_read.get();
        if last == NO_READ || (last as usize) < len {
            self.last_read.set(len as u32);
        }
    }

    /// Gives scalar leaf `leaf` (made by [`Tape::var`] or
    /// [`Tape::constant`]) a new value, for the next [`Tape::replay`].
    ///
    /// # Panics
    /// If `leaf` is not a scalar leaf of this tape's current recording.
    #[track_caller]
    pub fn set_value(&self, leaf: Var<'_, T>, value: T) {
        let i = self.own_scalar_leaf(leaf, "set_value");
        self.arena.borrow_mut().set_scalar(i, value);
        self.program.borrow_mut().stale();
    }

    /// Gives the leaves of `leaves` (made by [`Tape::vars`]) new values.
    ///
    /// # Panics
    /// If the lengths differ, or the range is not this tape's.
    #[track_caller]
    pub fn set_values(&self, leaves: &VarRange<'_, T>, values: &[T]) {
        assert_eq!(
            leaves.len(),
            values.len(),
            "set_values: {} values for a range of {} leaves",
            values.len(),
            leaves.len()
        );
        let Some(first) = self.leaves_to_set(leaves, "set_values") else {
            return;
        };
        // A range's nodes are scalar leaves, one after another.
        self.arena.borrow_mut().values[first..first + values.len()].copy_from_slice(values);
    }

    /// Gives each leaf of `leaves` the value `f(k, old)`, from its
    /// position `k` in the range and its present value, in place: an
    /// update (an optimiser's step, new data) with no array of new values
    /// to fill and copy in. `f` may use the tape (read a gradient with
    /// `g[w.get(k)]`, a value with `item()`): it runs on a few values at a
    /// time, with the tape not borrowed.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.vars([1.0, 2.0]);
    /// let loss = w.iter().fold(tape.constant(0.0), |s, v| s + v * v);
    /// for _ in 0..3 {
    ///     let g = loss.backward();
    ///     let dw = g.items(&w);
    ///     // Plain gradient descent: w ← w − 0.25·dloss/dw (halves w).
    ///     tape.update_values(&w, |k, w| w - 0.25 * dw[k]);
    ///     tape.replay()?;
    /// }
    /// assert_eq!(loss.item(), 1.0 / 64.0 + 4.0 / 64.0);
    /// # Ok::<(), tapegrad::tape::ReplayError>(())
    /// ```
    ///
    /// # Panics
    /// If the range is not this tape's, or `f` resets the tape.
    #[track_caller]
    pub fn update_values(&self, leaves: &VarRange<'_, T>, mut f: impl FnMut(usize, T) -> T) {
        let Some(first) = self.leaves_to_set(leaves, "update_values") else {
            return;
        };
        let epoch = self.epoch();
        // Chunks small enough to stay in L1, large enough that the two
        // borrows and the check per chunk cost nothing per value.
        const CHUNK: usize = 256;
        let mut chunk = [T::zero(); CHUNK];
        for start in (0..leaves.len()).step_by(CHUNK) {
            let n = CHUNK.min(leaves.len() - start);
            let (chunk, at) = (&mut chunk[..n], first + start);
            chunk.copy_from_slice(&self.arena.borrow().values[at..at + n]);
            for (j, v) in chunk.iter_mut().enumerate() {
                *v = f(start + j, *v);
            }
            assert!(
                self.epoch() == epoch,
                "update_values: the tape was reset while updating {leaves:?}; f must not \
                 reset the tape"
            );
            self.arena.borrow_mut().values[at..at + n].copy_from_slice(chunk);
        }
        // In case `f` replayed: the partials are not those of the new values.
        self.program.borrow_mut().stale();
    }

    /// The first node of `leaves`, checked to be this tape's, with the
    /// replay's partials marked out of date; `None` for an empty range.
    #[track_caller]
    fn leaves_to_set(&self, leaves: &VarRange<'_, T>, op: &str) -> Option<usize> {
        if leaves.is_empty() {
            return None;
        }
        let first = self.own_scalar_leaf(leaves.get(0), op);
        self.program.borrow_mut().stale();
        Some(first)
    }

    #[track_caller]
    fn own_scalar_leaf(&self, leaf: Var<'_, T>, op: &str) -> usize {
        assert!(
            std::ptr::eq(leaf.tape(), self),
            "{op}: {} belongs to another tape",
            leaf.label()
        );
        let i = leaf.index();
        let flags = self.arena.borrow().flags[i];
        assert!(
            flags.is_leaf() && !flags.is_tensor(),
            "{op}: {} ({}) is not a scalar leaf; only the values of scalar leaves (tape.var, \
             tape.vars, tape.constant of a number) can be set",
            leaf.label(),
            leaf.op_name()
        );
        i
    }

    /// Re-runs the recorded program forward from the leaves' current
    /// values ([`Tape::set_value`], [`Tape::set_values`]), in place: every
    /// node's value is recomputed by its op's forward, in record order, and
    /// nothing is recorded. A backward pass after it gives the gradients
    /// at the new values. The results are bit for bit those of recording
    /// the program afresh with those values.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let (x, w) = (tape.var(0.5), tape.var(2.0));
    /// let y = (x * w).tanh();
    /// let dw = |y: f64| 0.5 * (1.0 - y * y); // dy/dw = x (1 - y²)
    /// assert!((y.backward()[w].item() - dw(1f64.tanh())).abs() < 1e-15);
    /// tape.set_value(w, 3.0);
    /// tape.replay()?;
    /// assert_eq!(y.item(), 1.5f64.tanh());
    /// assert!((y.backward()[w].item() - dw(1.5f64.tanh())).abs() < 1e-15);
    /// # Ok::<(), tapegrad::tape::ReplayError>(())
    /// ```
    ///
    /// The tape records ops, not your program's control flow. If the
    /// program read a value while recording (`if y.item() > 0.0 { … }`)
    /// and then recorded more nodes, a replay could silently follow the
    /// branch taken when recording; such a tape is refused. Reading values
    /// after the last node (the loss, the gradients) is fine. Branches on
    /// data outside the tape are yours to keep fixed.
    ///
    /// # Errors
    /// [`ReplayError::NotReplayable`] if a node is not an elementwise op
    /// on scalars, [`ReplayError::ReadDuringRecording`] as above. Nothing
    /// is changed then.
    pub fn replay(&self) -> Result<(), ReplayError> {
        let mut arena = self.arena.borrow_mut();
        let len = arena.len();
        let read = self.last_read.get();
        if read != NO_READ && (read as usize) < len {
            return Err(ReplayError::ReadDuringRecording {
                read_at: read as usize,
                len,
            });
        }
        // Compiled once per recording (checked: every op node is a
        // scalar op of at most two scalar inputs with a forward on
        // numbers), then run: each step's value and local derivatives.
        let mut program = self.program.borrow_mut();
        program.extend(self, &arena)?;
        program.run(self, &mut arena.values);
        Ok(())
    }
}
