//! The tape's storage: nodes in record order, their input lists, and the
//! values of the nodes that hold tensors.
//!
//! Most nodes of a scalar graph (the chapter's networks, W1's chain) hold
//! one number, so a node keeps a scalar value inline and refers to a tensor
//! by slot only when it has one. A scalar node is then 32 bytes (f64) with
//! no heap storage of its own, and its gradient is one number in a dense
//! array (see [`super::Gradients`]).

use crate::ops::Op;
use crate::tensor::{Element, Tensor};
use smallvec::SmallVec;
use std::borrow::Cow;

/// `Node::tensor` of a node whose value is the scalar in `Node::scalar`.
pub(crate) const SCALAR: u32 = u32::MAX;

/// `Node::n_inputs` of a node whose inputs are a range of `Arena::edges`.
const MANY: u8 = u8::MAX;

/// One recorded operation: what it was, its inputs, and where its forward
/// value lives.
#[derive(Clone, Copy)]
pub(crate) struct Node<T: Element> {
    pub(crate) op: Op,
    /// The value of a scalar node (0-d); unused for tensor nodes.
    pub(crate) scalar: T,
    /// The slot of the value in `Arena::tensors`, or [`SCALAR`].
    pub(crate) tensor: u32,
    /// The inputs themselves when there are at most two (nearly every op),
    /// else `[first, count]` of a range of `Arena::edges`.
    pub(crate) ins: [u32; 2],
    /// 0, 1, 2, or [`MANY`].
    pub(crate) n_inputs: u8,
    pub(crate) requires_grad: bool,
}

impl<T: Element> Node<T> {
    /// The scalar value, if the node holds one.
    #[inline]
    pub(crate) fn as_scalar(&self) -> Option<T> {
        (self.tensor == SCALAR).then_some(self.scalar)
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.n_inputs == 0
    }
}

/// What a new leaf holds: one number (stored inline in its node, the
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
    pub(crate) nodes: Vec<Node<T>>,
    pub(crate) edges: Vec<u32>,
    pub(crate) tensors: Vec<Tensor<T>>,
    /// The node that holds each tensor slot.
    pub(crate) owners: Vec<u32>,
}

impl<T: Element> Arena<T> {
    /// Room for `n` nodes before the first reallocation: short-lived tapes
    /// (one per `grad`/`hvp` call) skip the first doublings.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Arena {
            nodes: Vec::with_capacity(n),
            edges: Vec::new(),
            tensors: Vec::with_capacity(n / 2),
            owners: Vec::with_capacity(n / 2),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        self.edges.clear();
        self.tensors.clear();
        self.owners.clear();
    }

    /// Node `i`'s inputs.
    #[inline]
    pub(crate) fn inputs(&self, i: usize) -> &[u32] {
        let n = &self.nodes[i];
        if n.n_inputs == MANY {
            &self.edges[n.ins[0] as usize..][..n.ins[1] as usize]
        } else {
            &n.ins[..n.n_inputs as usize]
        }
    }

    /// Node `i`'s value as a tensor: borrowed for tensor nodes, a 0-d
    /// tensor (no heap storage) for scalar nodes.
    #[inline]
    pub(crate) fn value(&self, i: usize) -> Cow<'_, Tensor<T>> {
        let n = &self.nodes[i];
        match n.as_scalar() {
            Some(s) => Cow::Owned(Tensor::scalar(s)),
            None => Cow::Borrowed(&self.tensors[n.tensor as usize]),
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
                .filter_map(|j| self.nodes[j].as_scalar().map(Tensor::scalar)),
        );
        let mut built = scalars.iter();
        inputs
            .map(|j| match self.nodes[j].as_scalar() {
                Some(_) => built.next().expect("one scalar built per scalar input"),
                None => &self.tensors[self.nodes[j].tensor as usize],
            })
            .collect()
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
        match value {
            NodeValue::Scalar(s) => self.push_raw(op, inputs, s, SCALAR, requires_grad),
            NodeValue::Tensor(t) => {
                let slot = self.tensors.len() as u32;
                self.tensors.push(t);
                self.owners.push(self.nodes.len() as u32);
                self.push_raw(op, inputs, T::zero(), slot, requires_grad)
            }
        }
    }

    /// Appends a scalar node of at most two inputs (the path scalar graphs
    /// take: no enum to move, no edge list); the caller has looked at the
    /// inputs and says whether any needs a gradient.
    #[inline(always)]
    pub(crate) fn push_scalar<const N: usize>(
        &mut self,
        op: Op,
        inputs: [u32; N],
        value: T,
        requires_grad: bool,
    ) -> u32 {
        const { assert!(N <= 2) };
        let index = self.nodes.len();
        assert!(index < u32::MAX as usize, "tape is full: 2^32 - 1 nodes");
        let mut ins = [0; 2];
        ins[..N].copy_from_slice(&inputs);
        self.nodes.push(Node {
            op,
            scalar: value,
            tensor: SCALAR,
            ins,
            n_inputs: N as u8,
            requires_grad,
        });
        index as u32
    }

    #[inline(always)]
    fn push_raw(
        &mut self,
        op: Op,
        inputs: impl ExactSizeIterator<Item = u32>,
        scalar: T,
        tensor: u32,
        requires_grad: Option<bool>,
    ) -> u32 {
        let index = self.nodes.len();
        assert!(index < u32::MAX as usize, "tape is full: 2^32 - 1 nodes");
        let count = inputs.len();
        let mut requires = requires_grad.unwrap_or(false);
        let (mut ins, n_inputs) = if count <= 2 {
            ([0; 2], count as u8)
        } else {
            let first = u32::try_from(self.edges.len()).expect("tape is full: 2^32 edges");
            ([first, count as u32], MANY)
        };
        for (k, j) in inputs.enumerate() {
            requires |= self.nodes[j as usize].requires_grad;
            if n_inputs == MANY {
                self.edges.push(j);
            } else {
                ins[k] = j;
            }
        }
        self.nodes.push(Node {
            op,
            scalar,
            tensor,
            ins,
            n_inputs,
            requires_grad: requires,
        });
        index as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scalar_node_stays_small() {
        // Keeps W1's memory in check: see docs/performance.md.
        assert_eq!(std::mem::size_of::<Op>(), 8);
        assert!(std::mem::size_of::<Node<f64>>() <= 32);
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
        assert_eq!(a.nodes[s as usize].as_scalar(), Some(2.0));
        assert_eq!(a.nodes[t as usize].as_scalar(), None);
        assert_eq!(a.value(t as usize).shape(), &[1]);
        assert_eq!(a.tensors.len(), 1);
    }
}
