//! The tape: an arena of nodes in record order, the [`Var`] handles that
//! point into it, and the backward walk.

mod anomaly;
pub(crate) mod arena;
pub(crate) mod backward;
mod gradients;
mod program;
mod replay;
mod var;
mod var_range;

pub use gradients::{GradVars, Gradients};
pub use replay::ReplayError;
pub use var::Var;
pub use var_range::VarRange;

use crate::ops::{ErasedCustomOp, Op};
use crate::tensor::{Element, Tensor};
pub(crate) use arena::Arena;
pub use arena::NodeValue;
pub(crate) use gradients::GradSlots;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Records operations on scalars and tensors so that their derivatives can
/// be computed by [`Var::backward`].
///
/// Every method takes `&self` (the nodes sit behind a `RefCell`), so that
/// [`Var`] handles can be `Copy` and combined with ordinary operators.
/// Nodes are stored in the order they were recorded, which is already a
/// topological order: the backward walk is a plain reverse loop.
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let x = tape.var(3.0);
/// let y = x * x + 2.0 * x;
/// let g = y.backward();
/// assert_eq!(g[x].item(), 8.0); // 2x + 2
/// ```
pub struct Tape<T: Element = f32> {
    id: u64,
    epoch: Cell<u32>,
    pub(crate) arena: RefCell<Arena<T>>,
    grad_enabled: Cell<bool>,
    /// The gradient storage of the last dropped [`Gradients`], kept for reuse.
    spare: RefCell<GradSlots<T>>,
    /// The numbers of the ops recorded since the last reset that carry
    /// some (see `ops::NumSlot`).
    numbers: RefCell<Vec<[f64; 2]>>,
    /// The rules of the custom ops recorded since the last reset.
    customs: RefCell<Vec<Rc<dyn ErasedCustomOp<T>>>>,
    /// Names given with `Var::named`, by node index (sorted).
    names: RefCell<Vec<(u32, Box<str>)>>,
    /// Which node each outside leaf (a parameter of an `nn::ParamStore`,
    /// keyed by store and parameter) is on this recording. A fact about
    /// this tape and epoch, so gradients always find their parameters
    /// whatever other tapes or `no_grad` forwards ran in between.
    bound: RefCell<HashMap<BindKey, Bound>>,
    /// Anomaly mode (see `anomaly.rs`), and where each node was recorded
    /// while it was on, by node index.
    anomaly: Cell<bool>,
    sites: RefCell<Vec<(u32, &'static std::panic::Location<'static>)>>,
    /// For [`Tape::replay`]: how many nodes the tape held when a value was
    /// last read (`NO_READ` if none since the reset), and the recording
    /// compiled for replay, with the local derivatives the last replay
    /// computed (the backward walk then needs only these numbers).
    pub(crate) last_read: Cell<u32>,
    pub(crate) program: RefCell<program::Program<T>>,
}

/// An outside leaf's key on a tape: `(owner id, item id)`.
pub(crate) type BindKey = (u64, u64);

/// Where an outside leaf sits on a tape, and whether that node needs a
/// gradient (a leaf first put on inside `no_grad` does not, and is put on
/// again when recording resumes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bound {
    pub(crate) index: u32,
    pub(crate) requires_grad: bool,
    /// The owner's version of the leaf's value when it was put on.
    pub(crate) version: u64,
}

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(1);

impl<T: Element> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape {
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
            epoch: Cell::new(0),
            arena: RefCell::new(Arena::with_capacity(64)),
            grad_enabled: Cell::new(true),
            spare: RefCell::new(GradSlots::default()),
            numbers: RefCell::new(Vec::new()),
            customs: RefCell::new(Vec::new()),
            names: RefCell::new(Vec::new()),
            bound: RefCell::new(HashMap::new()),
            anomaly: Cell::new(false),
            sites: RefCell::new(Vec::new()),
            last_read: Cell::new(replay::NO_READ),
            program: RefCell::new(program::Program::default()),
        }
    }

    /// A leaf that requires a gradient (a parameter or an input to
    /// differentiate with respect to).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let s = tape.var(2.0);                          // a scalar
    /// let m = tape.var(Tensor::ones([2, 3]));         // a tensor
    /// assert_eq!(m.shape().as_slice(), &[2, 3]);
    /// # let _ = s;
    /// ```
    #[inline]
    #[track_caller]
    pub fn var(&self, value: impl Into<NodeValue<T>>) -> Var<'_, T> {
        let requires = self.grad_enabled.get();
        self.push_node(Op::Leaf, &[], value.into(), Some(requires))
    }

    /// Scalar leaves that require a gradient, one per value, recorded
    /// together under one [`VarRange`] handle. Cheaper than a [`Tape::var`]
    /// each when there are many (one borrow, no handle per leaf), and their
    /// gradients come back as one slice ([`Gradients::items`]).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let p = tape.vars((0..4).map(|j| 0.1 * j as f64));
    /// assert_eq!(p.len(), 4);
    /// assert_eq!(p.get(3).item(), 0.30000000000000004);
    /// ```
    #[track_caller]
    pub fn vars(&self, values: impl IntoIterator<Item = T>) -> VarRange<'_, T> {
        let requires = self.grad_enabled.get();
        let mut arena = self.arena.borrow_mut();
        let start = arena.len();
        let len = arena.push_scalar_leaves(values, true, requires);
        drop(arena);
        if self.anomaly.get() {
            (start..start + len).for_each(|i| self.anomaly_forward(i));
        }
        let first = Var::from_parts(self, start as u32, self.epoch.get());
        VarRange::new(first, len)
    }

    /// A leaf that never gets a gradient (data, targets, fixed numbers).
    ///
    /// Passing `&tensor` shares its buffer instead of copying it: data
    /// captured once by a closure that is recorded many times (an
    /// objective, a residual function) costs nothing per call.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let data = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]);
    /// let tape = Tape::<f64>::new();
    /// let c = tape.constant(&data);
    /// assert_eq!(c.value(), data);
    /// ```
    #[track_caller]
    pub fn constant(&self, value: impl Into<NodeValue<T>>) -> Var<'_, T> {
        self.push_node(Op::Constant, &[], value.into(), Some(false))
    }

    /// Runs `f` with recording switched off: every op inside produces a
    /// constant with no inputs and no gradient (like `torch.no_grad()`).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(2.0);
    /// let y = tape.no_grad(|| x * 3.0);
    /// assert!(!y.requires_grad());
    /// ```
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Cell<bool>, bool);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.grad_enabled, self.grad_enabled.replace(false));
        f()
    }

    /// Whether ops record their inputs (false inside [`Tape::no_grad`]).
    pub fn is_grad_enabled(&self) -> bool {
        self.grad_enabled.get()
    }

    /// Forgets every node but keeps the allocated capacity, so that a loop
    /// that records the same shapes each step stops allocating. Handles
    /// from before the reset become stale: using one panics.
    pub fn reset(&self) {
        self.arena.borrow_mut().clear();
        self.numbers.borrow_mut().clear();
        self.customs.borrow_mut().clear();
        self.names.borrow_mut().clear();
        self.bound.borrow_mut().clear();
        self.sites.borrow_mut().clear();
        self.last_read.set(replay::NO_READ);
        self.program.borrow_mut().clear();
        self.epoch.set(self.epoch.get().wrapping_add(1));
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.arena.borrow().len()
    }

    /// Bytes the recorded nodes take in the tape's own arrays (each node's
    /// value and flags, each op's record, input lists, the numbers of ops
    /// like `x * 2.0`, tensor slots), not counting tensors' data or spare
    /// capacity: about 9 per scalar leaf and 25 per scalar op node.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.vars((0..1000).map(f64::from));
    /// let leaves = tape.bytes_used();
    /// assert!(leaves < 1000 * 10);
    /// let _y = x.get(0) * x.get(1);
    /// assert_eq!(tape.bytes_used() - leaves, 25);
    /// ```
    pub fn bytes_used(&self) -> usize {
        let numbers = std::mem::size_of_val(&self.numbers.borrow()[..]);
        self.arena.borrow().bytes() + numbers
    }

    /// True if nothing has been recorded since creation or the last reset.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn epoch(&self) -> u32 {
        self.epoch.get()
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Records an op whose forward value is already computed. Inside
    /// `no_grad`, or when no input needs a gradient and the op is not a
    /// leaf, the node still keeps its inputs (for pictures and traces)
    /// unless recording is off.
    #[track_caller]
    pub(crate) fn record<'t>(
        &'t self,
        op: Op,
        inputs: &[Var<'t, T>],
        value: Tensor<T>,
    ) -> Var<'t, T> {
        let value = value.into();
        self.record_with(op, inputs, |_| Some(value))
            .expect("a computed value is always recorded")
    }

    /// Records an op whose value `forward` computes from the arena (its
    /// inputs' values), under the one borrow that also appends the node:
    /// the cheap path for scalar ops. `None` from `forward` (inputs that do
    /// not fit) records nothing and is returned for the caller to report.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn record_with<'t>(
        &'t self,
        op: Op,
        inputs: &[Var<'t, T>],
        forward: impl FnOnce(&Arena<T>) -> Option<NodeValue<T>>,
    ) -> Option<Var<'t, T>> {
        let index = {
            let mut arena = self.arena.borrow_mut();
            let value = forward(&arena)?;
            if self.grad_enabled.get() {
                let ins = inputs.iter().map(|v| v.index() as u32);
                arena.push(op, ins, value, None)
            } else {
                // A value computed outside the recording is frozen: a
                // replay could not recompute it (see `Tape::replay`).
                self.note_read_at(arena.len());
                arena.push(Op::Constant, [].into_iter(), value, None)
            }
        };
        if self.anomaly.get() {
            self.anomaly_forward(index as usize);
        }
        Some(Var::from_parts(self, index, self.epoch.get()))
    }

    /// Records a scalar op if all its inputs are scalars: `forward` gets
    /// their values and returns the op's (the chapter's graphs); `None`
    /// means an input is a tensor, and leaves the op to the tensor path.
    /// One borrow, one look at each input node (its value and whether it
    /// needs a gradient). `inputs` are node indices the caller has already
    /// checked (`Var::index`).
    #[inline(always)]
    #[track_caller]
    pub(crate) fn record_scalar<const N: usize>(
        &self,
        op: Op,
        inputs: [usize; N],
        forward: impl FnOnce([T; N]) -> T,
    ) -> Option<Var<'_, T>> {
        let index = {
            let mut arena = self.arena.borrow_mut();
            let mut xs = [T::zero(); N];
            let mut requires_grad = false;
            for (x, &j) in xs.iter_mut().zip(&inputs) {
                let flags = arena.flags[j];
                if flags.is_tensor() {
                    return None;
                }
                *x = arena.values[j];
                requires_grad |= flags.requires_grad();
            }
            let value = forward(xs);
            if self.grad_enabled.get() {
                arena.push_scalar(op, inputs.map(|i| i as u32), value, requires_grad)
            } else {
                let index = arena.len();
                self.note_read_at(index);
                arena.push_scalar_leaves([value], false, false);
                index as u32
            }
        };
        if self.anomaly.get() {
            self.anomaly_forward(index as usize);
        }
        Some(Var::from_parts(self, index, self.epoch.get()))
    }

    /// Appends a node. `requires_grad` is given for leaves; for ops it is
    /// derived from the inputs under the same borrow as the push.
    #[inline(always)]
    #[track_caller]
    fn push_node(
        &self,
        op: Op,
        inputs: &[Var<'_, T>],
        value: NodeValue<T>,
        requires_grad: Option<bool>,
    ) -> Var<'_, T> {
        let inputs = inputs.iter().map(|v| v.index() as u32);
        let index = self
            .arena
            .borrow_mut()
            .push(op, inputs, value, requires_grad);
        if self.anomaly.get() {
            self.anomaly_forward(index as usize);
        }
        Var::from_parts(self, index, self.epoch.get())
    }

    /// The node an outside leaf was bound to in this recording.
    pub(crate) fn bound(&self, key: BindKey) -> Option<Bound> {
        self.bound.borrow().get(&key).copied()
    }

    /// Binds an outside leaf to a node of this recording (until reset).
    pub(crate) fn bind(&self, key: BindKey, at: Bound) {
        self.bound.borrow_mut().insert(key, at);
    }

    pub(crate) fn set_name(&self, index: u32, name: &str) {
        let mut names = self.names.borrow_mut();
        match names.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => names[at].1 = name.into(),
            Err(at) => names.insert(at, (index, name.into())),
        }
    }

    /// The name given to node `index`, if any.
    pub(crate) fn name_of(&self, index: usize) -> Option<String> {
        let names = self.names.borrow();
        names
            .binary_search_by_key(&(index as u32), |(i, _)| *i)
            .ok()
            .map(|at| names[at].1.to_string())
    }

    /// Node `index`'s name, or `%index` if it has none.
    pub(crate) fn label_of(&self, index: usize) -> String {
        self.name_of(index).unwrap_or_else(|| format!("%{index}"))
    }

    /// An op's name; custom ops report the name their rule gives.
    pub(crate) fn op_name(&self, op: &Op) -> &'static str {
        match op {
            Op::Custom(c) => self.custom_op(c.slot).name(),
            op => op.name(),
        }
    }

    pub(crate) fn push_numbers(&self, n: [f64; 2]) -> crate::ops::NumSlot {
        let mut numbers = self.numbers.borrow_mut();
        numbers.push(n);
        crate::ops::NumSlot((numbers.len() - 1) as u32)
    }

    #[inline]
    pub(crate) fn numbers(&self, slot: crate::ops::NumSlot) -> [f64; 2] {
        self.numbers.borrow()[slot.0 as usize]
    }

    pub(crate) fn push_custom(&self, op: Rc<dyn ErasedCustomOp<T>>) -> u32 {
        let mut customs = self.customs.borrow_mut();
        customs.push(op);
        (customs.len() - 1) as u32
    }

    pub(crate) fn custom_op(&self, slot: u32) -> Rc<dyn ErasedCustomOp<T>> {
        self.customs.borrow()[slot as usize].clone()
    }

    pub(crate) fn take_spare(&self) -> GradSlots<T> {
        std::mem::take(&mut *self.spare.borrow_mut())
    }

    pub(crate) fn give_spare(&self, mut slots: GradSlots<T>) {
        slots.clear();
        let mut spare = self.spare.borrow_mut();
        if slots.capacity() > spare.capacity() {
            *spare = slots;
        }
    }
}

impl<T: Element> std::fmt::Debug for Tape<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tape {{ id: {}, epoch: {}, nodes: {} }}",
            self.id,
            self.epoch(),
            self.len()
        )
    }
}
