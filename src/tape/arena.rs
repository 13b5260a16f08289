//! The tape's storage: every node's value and flags in dense arrays, the
//! ops and inputs of the nodes that are not leaves, and the values of the
//! nodes that hold tensors.
//!
//! Scalar graphs (the chapter's networks, W1's chain) are mostly numbers,
//! and most of their nodes are leaves. So a node is its value (one
//! number) and one byte of flags; only an op node adds a [`Record`] (its op
//! and inputs, 16 bytes). A scalar leaf is then 9 bytes and a scalar op
//! node 25, with no heap storage of their own; the backward walk reads
//! these arrays front to back in reverse, and a gradient is one number in a
//! dense array (see [`super::Gradients`]). Memory traffic is what a scalar
//! tape's speed is made of: see docs/performance.md.

use crate::ops::Op;
use crate::tensor::{Element, Tensor};
use smallvec::SmallVec;
use std::borrow::Cow;

/// What a node is, in one byte: how many inputs it has, whether it needs a
/// gradient, whether its value is a tensor, and whether it has a
/// [`Record`] (every node but the leaves made by `var` and `constant`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u8);

impl Flags {
    /// The low two bits: 0, 1 or 2 inputs in `Record::ins`, or [`MANY`].
    const ARITY: u8 = 0b11;
    const GRAD: u8 = 1 << 2;
    const TENSOR: u8 = 1 << 3;
    const RECORD: u8 = 1 << 4;
    /// A leaf without a record made by `var` ([`Op::Leaf`]), not
    /// `constant`.
    const VAR: u8 = 1 << 5;
    /// An elementwise op recorded on scalar inputs (`Arena::push_scalar`):
    /// the backward walk and the replay need not look at its inputs' flags.
    const SCALAR_OP: u8 = 1 << 6;

    #[inline(always)]
    const fn new(arity: u8, requires_grad: bool, tensor: bool, record: bool, var: bool) -> Self {
        Flags(
            arity
                | if requires_grad { Self::GRAD } else { 0 }
                | if tensor { Self::TENSOR } else { 0 }
                | if record { Self::RECORD } else { 0 }
                | if var { Self::VAR } else { 0 },
        )
    }

    /// Recorded by `Arena::push_scalar`: a scalar op of one or two scalar
    /// inputs.
    #[inline(always)]
    pub(crate) fn is_scalar_op(self) -> bool {
        self.0 & Self::SCALAR_OP != 0
    }

    /// 0, 1, 2, or [`MANY`].
    #[inline(always)]
    pub(crate) fn arity(self) -> u8 {
        self.0 & Self::ARITY
    }

    #[inline(always)]
    pub(crate) fn requires_grad(self) -> bool {
        self.0 & Self::GRAD != 0
    }

    /// The value is a tensor (in `Arena::tensors`), not a number.
    #[inline(always)]
    pub(crate) fn is_tensor(self) -> bool {
        self.0 & Self::TENSOR != 0
    }

    /// A leaf made by `var`, not `constant` (for nodes without a record).
    #[inline(always)]
    fn is_var(self) -> bool {
        self.0 & Self::VAR != 0
    }

    #[inline(always)]
    pub(crate) fn has_record(self) -> bool {
        self.0 & Self::RECORD != 0
    }

    /// No inputs: the backward walk stops here.
    #[inline(always)]
    pub(crate) fn is_leaf(self) -> bool {
        self.arity() == 0
    }
}

/// The most nodes a tape holds: every index stays below `u32::MAX`.
const MAX_NODES: usize = u32::MAX as usize - 1;

/// `Flags::arity` of a node whose inputs are a range of `Arena::edges`.
pub(crate) const MANY: u8 = 0b11;

/// The op and inputs of a node that is not a plain leaf.
#[derive(Clone, Copy)]
pub(crate) struct Record {
    pub(crate) op: Op,
    /// The inputs themselves when there are at most two (nearly every op),
    /// else `[first, count]` of a range of `Arena::edges`.
    pub(crate) ins: [u32; 2],
}

/// What a new leaf holds: one number (kept in the tape's value array, the
/// cheap case for scalar graphs) or a tensor. [`crate::Tape::var`] and
/// [`crate::Tape::constant`] take anything that converts into it.
///
/// ```
/// use tapegrad::{tape::NodeValue, Tensor};
/// assert!(matches!(NodeValue::from(2.0f64), NodeValue::Scalar(_)));
/// // A 0-d tensor is stored as a scalar too.
/// assert!(matches!(NodeValue::from(Tensor::scalar(2.0f64)), NodeValue::Scalar(_)));
/// ```
#[derive(Clone, Debug)]
pub enum NodeValue<T: Element> {
    /// One number.
    Scalar(T),
    /// A tensor of one or more dimensions.
    Tensor(Tensor<T>),
}

impl<T: Element> From<T> for NodeValue<T> {
    fn from(v: T) -> Self {
        NodeValue::Scalar(v)
    }
}

impl<T: Element> From<Tensor<T>> for NodeValue<T> {
    /// A 0-d tensor is stored as a scalar.
    fn from(t: Tensor<T>) -> Self {
        if t.ndim() == 0 {
            NodeValue::Scalar(t.item())
        } else {
            NodeValue::Tensor(t)
        }
    }
}

impl<T: Element> From<&Tensor<T>> for NodeValue<T> {
    /// Shares the tensor's buffer (no copy of the data), so data captured
    /// once outside a closure can go on every call's tape for free.
    fn from(t: &Tensor<T>) -> Self {
        t.clone().into()
    }
}

#[derive(Default)]
pub(crate) struct Arena<T: Element> {
    /// Each node's value if it is a number, else the slot of its tensor in
    /// `tensors` (kept in the element's bits).
    pub(crate) values: Vec<T>,
    pub(crate) flags: Vec<Flags>,
    /// The records of the nodes that have one, in node order.
    pub(crate) records: Vec<Record>,
    /// The number of records before each block of 64 nodes: node `i`'s
    /// record is found by counting the flags with a record in its block
    /// (a rank query), with no index per node.
    record_rank: Vec<u32>,
    /// How many nodes `values`, `flags` and `records` all have capacity
    /// for (at most [`MAX_NODES`]): while `flags.len() < room`, a node and
    /// a record can be written without checking each vector (capacities
    /// never shrink, so this stays a lower bound).
    room: usize,
    pub(crate) edges: Vec<u32>,
    pub(crate) tensors: Vec<Tensor<T>>,
    /// The node that holds each tensor slot.
    pub(crate) owners: Vec<u32>,
}

impl<T: Element> Arena<T> {
    /// Room for `n` nodes before the first reallocation: short-lived tapes
    /// (one per `grad`/`hvp` call) skip the first doublings.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let mut arena = Arena {
            values: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            records: Vec::with_capacity(n),
            record_rank: Vec::with_capacity(n / 64 + 1),
            room: 0,
            edges: Vec::new(),
            tensors: Vec::with_capacity(n / 2),
            owners: Vec::with_capacity(n / 2),
        };
        arena.room = arena.common_capacity();
        arena
    }

    /// The capacity `values`, `flags` and `records` all have.
    fn common_capacity(&self) -> usize {
        let c = self.flags.capacity().min(self.values.capacity());
        c.min(self.records.capacity()).min(MAX_NODES)
    }

    pub(crate) fn clear(&mut self) {
        self.values.clear();
        self.flags.clear();
        self.records.clear();
        self.record_rank.clear();
        self.edges.clear();
        self.tensors.clear();
        self.owners.clear();
    }

    /// Number of nodes.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.flags.len()
    }

    /// Bytes of storage per node the arena keeps for scalar graphs (its
    /// arrays' lengths times their element sizes; tensors' data aside).
    pub(crate) fn bytes(&self) -> usize {
        use std::mem::size_of_val;
        size_of_val(&self.values[..])
            + size_of_val(&self.flags[..])
            + size_of_val(&self.records[..])
            + size_of_val(&self.record_rank[..])
            + size_of_val(&self.edges[..])
            + size_of_val(&self.owners[..])
    }

    /// How many nodes below `i` have a record: the index of node `i`'s
    /// record if it has one.
    #[inline]
    pub(crate) fn records_before(&self, i: usize) -> usize {
        let block = i / 64;
        match self.record_rank.get(block) {
            Some(&rank) => {
                let within = &self.flags[block * 64..i];
                rank as usize + within.iter().filter(|f| f.has_record()).count()
            }
            None => self.records.len(),
        }
    }

    /// Node `i`'s record, if it has one.
    #[inline]
    pub(crate) fn record(&self, i: usize) -> Option<&Record> {
        self.flags[i]
            .has_record()
            .then(|| &self.records[self.records_before(i)])
    }

    /// Node `i`'s op.
    #[inline]
    pub(crate) fn op(&self, i: usize) -> Op {
        self.op_inputs(i).0
    }

    #[inline(always)]
    pub(crate) fn requires_grad(&self, i: usize) -> bool {
        self.flags[i].requires_grad()
    }

    #[inline(always)]
    pub(crate) fn is_leaf(&self, i: usize) -> bool {
        self.flags[i].is_leaf()
    }

    /// Node `i`'s inputs.
    #[inline]
    pub(crate) fn inputs(&self, i: usize) -> &[u32] {
        self.op_inputs(i).1
    }

    /// Node `i`'s op and inputs, with one look-up of its record.
    #[inline]
    pub(crate) fn op_inputs(&self, i: usize) -> (Op, &[u32]) {
        let flags = self.flags[i];
        let Some(r) = self.record(i) else {
            let op = if flags.is_var() {
                Op::Leaf
            } else {
                Op::Constant
            };
            return (op, &[]);
        };
        let inputs = match flags.arity() {
            MANY => &self.edges[r.ins[0] as usize..][..r.ins[1] as usize],
            n => &r.ins[..n as usize],
        };
        (r.op, inputs)
    }

    /// The scalar value, if node `i` holds one.
    #[inline(always)]
    pub(crate) fn as_scalar(&self, i: usize) -> Option<T> {
        (!self.flags[i].is_tensor()).then_some(self.values[i])
    }

    /// The slot of node `i`'s tensor in `tensors`, if it holds one.
    #[inline(always)]
    pub(crate) fn tensor_slot(&self, i: usize) -> Option<usize> {
        self.flags[i]
            .is_tensor()
            .then(|| self.values[i].to_slot_bits() as usize)
    }

    /// Node `i`'s value as a tensor: borrowed for tensor nodes, a 0-d
    /// tensor (no heap storage) for scalar nodes.
    #[inline]
    pub(crate) fn value(&self, i: usize) -> Cow<'_, Tensor<T>> {
        match self.tensor_slot(i) {
            None => Cow::Owned(Tensor::scalar(self.values[i])),
            Some(slot) => Cow::Borrowed(&self.tensors[slot]),
        }
    }

    /// The values of nodes `inputs` as tensor references, for a rule or a
    /// kernel: tensor nodes are borrowed, scalar nodes are built into
    /// `scalars` (which the caller keeps alive). Cheaper than collecting
    /// [`Arena::value`]'s `Cow`s, which moves a whole tensor per input.
    pub(crate) fn values_of<'a>(
        &'a self,
        inputs: impl Iterator<Item = usize> + Clone,
        scalars: &'a mut SmallVec<[Tensor<T>; 2]>,
    ) -> SmallVec<[&'a Tensor<T>; 4]> {
        scalars.clear();
        scalars.extend(
            inputs
                .clone()
                .filter_map(|j| self.as_scalar(j).map(Tensor::scalar)),
        );
        let mut built = scalars.iter();
        inputs
            .map(|j| match self.tensor_slot(j) {
                None => built.next().expect("one scalar built per scalar input"),
                Some(slot) => &self.tensors[slot],
            })
            .collect()
    }

    /// Gives scalar node `i` a new value (a replay's leaves and forward).
    #[inline(always)]
    pub(crate) fn set_scalar(&mut self, i: usize, v: T) {
        debug_assert!(!self.flags[i].is_tensor());
        self.values[i] = v;
    }

    /// Appends a node; `requires_grad` is given for leaves, and for ops is
    /// derived from the inputs.
    #[inline(always)]
    pub(crate) fn push(
        &mut self,
        op: Op,
        inputs: impl ExactSizeIterator<Item = u32>,
        value: NodeValue<T>,
        requires_grad: Option<bool>,
    ) -> u32 {
        let index = self.len();
        self.make_room(1);
        let count = inputs.len();
        let mut requires = requires_grad.unwrap_or(false);
        let (mut ins, arity) = if count <= 2 {
            ([0; 2], count as u8)
        } else {
            let first = u32::try_from(self.edges.len()).expect("tape is full: 2^32 edges");
            ([first, count as u32], MANY)
        };
        for (k, j) in inputs.enumerate() {
            requires |= self.flags[j as usize].requires_grad();
            if arity == MANY {
                self.edges.push(j);
            } else {
                ins[k] = j;
            }
        }
        let (value, tensor) = match value {
            NodeValue::Scalar(s) => (s, false),
            NodeValue::Tensor(t) => {
                assert!(
                    self.tensors.len() < 1 << 31,
                    "tape is full: 2^31 tensor nodes"
                );
                let slot = self.tensors.len() as u32;
                self.tensors.push(t);
                self.owners.push(index as u32);
                (T::from_slot_bits(slot), true)
            }
        };
        let (record, var) = match op {
            Op::Leaf => (count > 0, true),
            Op::Constant => (count > 0, false),
            _ => (true, false),
        };
        let flags = Flags::new(arity, requires, tensor, record, var);
        self.push_flags(flags);
        self.values.push(value);
        if record {
            self.records.push(Record { op, ins });
        }
        index as u32
    }

    /// Room for `more` nodes (and as many records) in the per-node arrays,
    /// with `room` saying so.
    #[inline(always)]
    fn make_room(&mut self, more: usize) {
        if self.room.saturating_sub(self.flags.len()) < more {
            self.grow(more);
        }
    }

    /// Grows the per-node arrays together (`records` is never longer than
    /// `flags`, `values` as long), so the hot path ([`Arena::push_scalar`])
    /// checks one number, `room`. Also where the node limit is checked:
    /// `room` never exceeds [`MAX_NODES`], so every index fits in a u32.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, more: usize) {
        let need = self.flags.len() + more;
        assert!(need <= MAX_NODES, "tape is full: 2^32 - 1 nodes");
        let target = need.max(2 * self.flags.capacity()).clamp(64, MAX_NODES);
        self.flags.reserve(target - self.flags.len());
        self.values.reserve(target - self.values.len());
        self.records.reserve(target - self.records.len());
        self.room = self.common_capacity();
        debug_assert!(self.room >= need);
    }

    /// Appends a scalar op node of at most two inputs (the path scalar
    /// graphs take: no enum to move, no edge list); the caller has looked
    /// at the inputs and says whether any needs a gradient.
    #[inline(always)]
    pub(crate) fn push_scalar<const N: usize>(
        &mut self,
        op: Op,
        inputs: [u32; N],
        value: T,
        requires_grad: bool,
    ) -> u32 {
        const { assert!(N >= 1 && N <= 2) };
        let index = self.len();
        self.make_room(1);
        let mut ins = [0; 2];
        ins[..N].copy_from_slice(&inputs);
        let flags = Flags::new(N as u8, requires_grad, false, true, false);
        self.note_block();
        let record = self.records.len();
        // SAFETY: `make_room` made `index < room`, and `room` is at most
        // the capacity of each of the three vectors (`common_capacity`;
        // capacities never shrink). `values` is as long as `flags` and
        // `records` no longer, so each slot written is the one just past
        // its vector's length, inside its capacity.
        unsafe {
            self.flags
                .as_mut_ptr()
                .add(index)
                .write(Flags(flags.0 | Flags::SCALAR_OP));
            self.flags.set_len(index + 1);
            self.values.as_mut_ptr().add(index).write(value);
            self.values.set_len(index + 1);
            self.records
                .as_mut_ptr()
                .add(record)
                .write(Record { op, ins });
            self.records.set_len(record + 1);
        }
        index as u32
    }

    /// Appends scalar leaves, `var`s (that need a gradient if
    /// `requires_grad`) or constants: a value and a flag byte each.
    #[inline]
    pub(crate) fn push_scalar_leaves(
        &mut self,
        values: impl IntoIterator<Item = T>,
        var: bool,
        requires_grad: bool,
    ) -> usize {
        let start = self.len();
        let values = values.into_iter();
        // Room for the leaves the iterator promises, grown together, so
        // that `extend` does not grow `values` alone; then for any more.
        self.make_room(values.size_hint().0);
        self.values.extend(values);
        let end = self.values.len();
        self.make_room(end - start);
        let flags = Flags::new(0, requires_grad, false, false, var);
        self.flags.resize(end, flags);
        // Blocks that start among the new nodes: no records among them.
        let records = self.records.len() as u32;
        self.record_rank.resize(end.div_ceil(64), records);
        end - start
    }

    /// Appends node `len()`'s flags, and a rank entry when it starts a
    /// block.
    #[inline(always)]
    fn push_flags(&mut self, flags: Flags) {
        self.note_block();
        self.flags.push(flags);
    }

    /// A rank entry if the next node, `len()`, starts a block of 64.
    #[inline(always)]
    fn note_block(&mut self) {
        if self.len().is_multiple_of(64) {
            self.record_rank.push(self.records.len() as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scalar_node_stays_small() {
        // Keeps W1's memory in check: see docs/performance.md.
        assert_eq!(std::mem::size_of::<Op>(), 8);
        assert_eq!(std::mem::size_of::<Record>(), 16);
        assert_eq!(std::mem::size_of::<Flags>(), 1);
    }

    #[test]
    fn zero_dim_tensors_are_stored_inline() {
        let mut a = Arena::<f64>::default();
        let s = a.push(
            Op::Leaf,
            [].into_iter(),
            Tensor::scalar(2.0).into(),
            Some(true),
        );
        let t = a.push(
            Op::Leaf,
            [].into_iter(),
            Tensor::from_vec(vec![1.0], [1]).into(),
            Some(true),
        );
        assert_eq!(a.as_scalar(s as usize), Some(2.0));
        assert_eq!(a.as_scalar(t as usize), None);
        assert_eq!(a.value(t as usize).shape(), &[1]);
        assert_eq!(a.tensors.len(), 1);
        assert!(a.records.is_empty(), "leaves have no record");
    }

    #[test]
    fn the_arrays_grow_together() {
        // The hot push checks `room` only (see `grow`).
        let mut a = Arena::<f64>::default();
        let check = |a: &Arena<f64>| {
            assert!(a.room <= a.values.capacity().min(a.flags.capacity()));
            assert!(a.room <= a.records.capacity());
            assert!(a.flags.len() <= a.room);
            assert_eq!(a.values.len(), a.flags.len());
        };
        for round in 0..40 {
            a.push_scalar_leaves((0..round * 7).map(|v| v as f64), true, true);
            check(&a);
            for _ in 0..round * 13 {
                a.push_scalar(Op::Leaf, [0], 1.0, true);
                check(&a);
            }
            a.push(Op::Constant, [].into_iter(), NodeValue::Scalar(2.0), None);
            a.push_scalar_leaves(std::iter::from_fn(|| Some(3.0)).take(round), false, false);
            check(&a);
        }
        assert_eq!(a.records.len(), (0..40).map(|r| r * 13).sum::<usize>());
    }

    #[test]
    fn records_are_found_by_rank() {
        // Leaves and op nodes interleaved across several rank words.
        let mut a = Arena::<f32>::default();
        let mut want = Vec::new();
        a.push_scalar_leaves((0..70).map(|v| v as f32), true, true);
        for i in 0..300u32 {
            if i % 3 == 0 {
                a.push_scalar_leaves([i as f32], false, false);
                want.push(None);
            } else {
                let j = a.push_scalar(Op::Leaf, [i], 0.0, true);
                want.push(Some(j));
            }
            if i % 50 == 0 {
                a.push_scalar_leaves((0..64).map(|v| v as f32), true, true);
                want.extend(std::iter::repeat_n(None, 64));
            }
        }
        let mut k = 0;
        for (n, w) in want.iter().enumerate() {
            let i = 70 + n;
            assert_eq!(a.flags[i].has_record(), w.is_some(), "node {i}");
            if w.is_some() {
                assert_eq!(a.records_before(i), k);
                k += 1;
            }
        }
        assert_eq!(a.records_before(a.len()), a.records.len());
        assert_eq!(a.op(0).name(), "leaf");
        assert_eq!(a.op(70).name(), "constant");
    }
}
