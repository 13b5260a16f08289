//! Ops that move data without arithmetic: reshape, permute (transpose),
//! broadcast_to and its adjoint sum_to, narrow (slice) and its adjoint pad,
//! concat and stack. Each backward is the inverse movement.

use super::{check_axis, shape_error, Algebra, Axis, AxisIndex, Op, Rule, U32Bytes};
use crate::tape::Var;
use crate::tensor::{broadcasts_to, numel, Element, Shape, Tensor};

/// Same elements, new shape; the gradient is reshaped back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Reshape;
impl Rule for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        g.reshape(&xs[0].shape())
    }
}

/// The most dimensions a permutation can hold inline.
const MAX_PERMUTE_DIMS: usize = 8;

/// Output dimension `d` is input dimension `perm[d]`; the gradient goes
/// through the inverse permutation. Each entry is below 8, so two share a
/// byte (keeping `Op` at 8 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Permute {
    nibbles: [u8; MAX_PERMUTE_DIMS / 2],
    n: u8,
}
impl Permute {
    /// `perm` must be a permutation of at most [`MAX_PERMUTE_DIMS`] axes.
    fn new(perm: &[usize]) -> Self {
        let mut nibbles = [0u8; MAX_PERMUTE_DIMS / 2];
        for (d, &p) in perm.iter().enumerate() {
            nibbles[d / 2] |= (p as u8) << (4 * (d % 2));
        }
        Permute {
            nibbles,
            n: perm.len() as u8,
        }
    }

    fn perm(&self) -> Shape {
        (0..self.n as usize)
            .map(|d| ((self.nibbles[d / 2] >> (4 * (d % 2))) & 0xf) as usize)
            .collect()
    }
}
impl Rule for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, _xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        let perm = self.perm();
        let mut inverse: Shape = perm.clone();
        for (d, &p) in perm.iter().enumerate() {
            inverse[p] = d;
        }
        g.permute(&inverse)
    }
}

/// Repeats along stretched dimensions; the gradient is summed back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BroadcastTo;
impl Rule for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        g.clone().sum_to(&xs[0].shape())
    }
}

/// Sums down to a shape the input broadcasts from; the gradient is
/// broadcast back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SumTo;
impl Rule for SumTo {
    fn name(&self) -> &'static str {
        "sum_to"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        g.broadcast_to(&xs[0].shape())
    }
}

/// `len` entries along `axis` from `start`; the gradient is zero-padded back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Narrow {
    axis: Axis,
    start: U32Bytes,
}
impl Narrow {
    #[track_caller]
    fn new(axis: usize, start: usize) -> Self {
        Narrow {
            axis: Axis::new(axis),
            start: U32Bytes::new(start, "narrow: start"),
        }
    }
}
impl Rule for Narrow {
    fn name(&self) -> &'static str {
        "narrow"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        let (axis, start) = (self.axis.get(), self.start.get());
        g.pad(axis, start, xs[0].shape()[axis])
    }
}

/// Zero-padding along `axis` with the input at `start`; the gradient is
/// the matching narrow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pad {
    axis: Axis,
    start: U32Bytes,
}
impl Pad {
    #[track_caller]
    fn new(axis: usize, start: usize) -> Self {
        Pad {
            axis: Axis::new(axis),
            start: U32Bytes::new(start, "pad: start"),
        }
    }
}
impl Rule for Pad {
    fn name(&self) -> &'static str {
        "pad"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        let (axis, start) = (self.axis.get(), self.start.get());
        g.narrow(axis, start, xs[0].shape()[axis])
    }
}

/// Joins inputs along an existing axis; each gets its slice of the gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Concat {
    axis: Axis,
}
impl Rule for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        let axis = self.axis.get();
        let offset: usize = xs[..k].iter().map(|x| x.shape()[axis]).sum();
        g.narrow(axis, offset, xs[k].shape()[axis])
    }
}

/// Joins equal-shaped inputs along a new axis; each gets its slice.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stack {
    axis: Axis,
}
impl Rule for Stack {
    fn name(&self) -> &'static str {
        "stack"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        g.narrow(self.axis.get(), k, 1).reshape(&xs[k].shape())
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// The same elements with another shape of equal size.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(Tensor::zeros([2, 3]));
    /// assert_eq!(x.reshape([3, 2]).shape().as_slice(), &[3, 2]);
    /// ```
    #[track_caller]
    pub fn reshape(self, shape: impl AsRef<[usize]>) -> Var<'t, T> {
        let shape = shape.as_ref();
        let own = self.shape();
        if numel(shape) != numel(&own) {
            shape_error(
                "reshape",
                &[self],
                &format!("cannot view {} elements as shape {shape:?}", numel(&own)),
            );
        }
        let v = self.peek(|v| v.reshape(shape));
        self.tape().record(Op::Reshape(Reshape), &[self], v)
    }

    /// Reorders dimensions: output dimension `d` is input dimension `perm[d]`.
    #[track_caller]
    pub fn permute(self, perm: impl AsRef<[usize]>) -> Var<'t, T> {
        let perm = perm.as_ref();
        let n = self.shape().len();
        let mut seen = [false; MAX_PERMUTE_DIMS];
        let valid = perm.len() == n
            && n <= MAX_PERMUTE_DIMS
            && perm
                .iter()
                .all(|&p| p < n && !std::mem::replace(&mut seen[p], true));
        if !valid {
            shape_error(
                "permute",
                &[self],
                &format!("{perm:?} is not a permutation of the {n} dimensions (at most {MAX_PERMUTE_DIMS})"),
            );
        }
        let v = self.peek(|v| v.permute(perm));
        self.tape()
            .record(Op::Permute(Permute::new(perm)), &[self], v)
    }

    /// Swaps the last two dimensions (the matrix transpose for 2-d).
    #[track_caller]
    pub fn transpose(self) -> Var<'t, T> {
        let n = self.shape().len();
        if n < 2 {
            shape_error("transpose", &[self], "needs at least 2 dimensions");
        }
        let mut perm: Shape = (0..n).collect();
        perm.swap(n - 2, n - 1);
        self.permute(perm)
    }

    /// Repeats along dimensions of length 1 (and new leading ones) to fill
    /// `shape`, following NumPy's rules.
    #[track_caller]
    pub fn broadcast_to(self, shape: impl AsRef<[usize]>) -> Var<'t, T> {
        let shape = shape.as_ref();
        if !broadcasts_to(&self.shape(), shape) {
            shape_error(
                "broadcast_to",
                &[self],
                &format!("cannot broadcast to {shape:?}"),
            );
        }
        let v = self.peek(|v| v.broadcast_to(shape));
        self.tape().record(Op::BroadcastTo(BroadcastTo), &[self], v)
    }

    /// Sums down to `shape`, a shape that broadcasts to this one (the
    /// adjoint of [`Var::broadcast_to`]).
    #[track_caller]
    pub fn sum_to(self, shape: impl AsRef<[usize]>) -> Var<'t, T> {
        let shape = shape.as_ref();
        let own = self.shape();
        if own.as_slice() == shape {
            return self;
        }
        if !broadcasts_to(shape, &own) {
            shape_error(
                "sum_to",
                &[self],
                &format!("{shape:?} does not broadcast to it"),
            );
        }
        let v = self.peek(|v| v.sum_to(shape));
        self.tape().record(Op::SumTo(SumTo), &[self], v)
    }

    /// `len` entries along `axis` starting at `start` (a slice).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::arange(5));
    /// assert_eq!(x.narrow(0, 1, 3).value().data(), &[1.0, 2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn narrow(self, axis: impl AxisIndex, start: usize, len: usize) -> Var<'t, T> {
        let axis = check_axis("narrow", self, axis);
        let n = self.shape()[axis];
        if start + len > n {
            shape_error(
                "narrow",
                &[self],
                &format!(
                    "range {start}..{} exceeds length {n} of axis {axis}",
                    start + len
                ),
            );
        }
        let v = self.peek(|v| v.narrow(axis, start, len));
        self.tape()
            .record(Op::Narrow(Narrow::new(axis, start)), &[self], v)
    }

    /// Entry `i` along the first axis: for a vector, coordinate `i` as a
    /// scalar node (`x.at(0)` is x₀ in an objective); for a matrix, row `i`.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![3.0, 4.0], [2]));
    /// let f = x.at(0) * x.at(1).square();
    /// assert_eq!(f.item(), 48.0);
    /// assert_eq!(f.backward()[x].data(), &[16.0, 24.0]);
    /// ```
    #[track_caller]
    pub fn at(self, i: usize) -> Var<'t, T> {
        let shape = self.shape();
        if shape.is_empty() || i >= shape[0] {
            shape_error(
                "at",
                &[self],
                &format!("index {i} is out of range (it needs an axis 0 longer than {i})"),
            );
        }
        self.narrow(0, i, 1).reshape(&shape[1..])
    }

    /// A vector built from scalar nodes (the inverse of [`Var::at`]).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// // The residuals of Rosenbrock's function as one vector.
    /// let r = Var::from_scalars(&[(x.at(1) - x.at(0).square()) * 10.0, 1.0 - x.at(0)]);
    /// assert_eq!(r.value().data(), &[10.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn from_scalars(parts: &[Var<'t, T>]) -> Var<'t, T> {
        if let Some(p) = parts.iter().find(|p| !p.shape().is_empty()) {
            shape_error("from_scalars", &[*p], "every part must be a scalar (0-d)");
        }
        Var::stack(parts, 0)
    }

    /// Zero-pads along `axis` to length `total`, placing this tensor at
    /// `start` (the adjoint of [`Var::narrow`]).
    #[track_caller]
    pub fn pad(self, axis: impl AxisIndex, start: usize, total: usize) -> Var<'t, T> {
        let axis = check_axis("pad", self, axis);
        let n = self.shape()[axis];
        if start + n > total {
            shape_error(
                "pad",
                &[self],
                &format!("{n} entries at {start} do not fit in length {total}"),
            );
        }
        let v = self.peek(|v| v.pad(axis, start, total));
        self.tape()
            .record(Op::Pad(Pad::new(axis, start)), &[self], v)
    }

    /// Joins tensors along an existing axis; all other dimensions must match.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::zeros([2, 1]));
    /// let b = tape.var(Tensor::ones([2, 2]));
    /// assert_eq!(Var::concat(&[a, b], 1).shape().as_slice(), &[2, 3]);
    /// ```
    #[track_caller]
    pub fn concat(parts: &[Var<'t, T>], axis: impl AxisIndex) -> Var<'t, T> {
        let first = *parts.first().expect("concat: needs at least one input");
        let axis = check_axis("concat", first, axis);
        let s0 = first.shape();
        for p in parts {
            first.same_tape(p, "concat");
            let s = p.shape();
            let ok = s.len() == s0.len() && (0..s.len()).all(|d| d == axis || s[d] == s0[d]);
            if !ok {
                shape_error(
                    "concat",
                    &[first, *p],
                    &format!("shapes differ outside axis {axis}"),
                );
            }
        }
        let v = {
            let arena = first.tape().arena.borrow();
            let mut scalars = smallvec::SmallVec::new();
            let vals = arena.values_of(parts.iter().map(|p| p.index()), &mut scalars);
            Tensor::concat(&vals, axis)
        };
        first.tape().record(
            Op::Concat(Concat {
                axis: Axis::new(axis),
            }),
            parts,
            v,
        )
    }

    /// Joins equal-shaped tensors along a new axis at position `axis`.
    #[track_caller]
    pub fn stack(parts: &[Var<'t, T>], axis: impl AxisIndex) -> Var<'t, T> {
        let first = *parts.first().expect("stack: needs at least one input");
        let s0 = first.shape();
        // The new axis can go anywhere among the result's ndim + 1 axes.
        let Some(axis) = axis.resolve(s0.len() + 1) else {
            shape_error(
                "stack",
                &[first],
                &format!("axis {axis} is out of range for stacking"),
            );
        };
        for p in parts {
            first.same_tape(p, "stack");
            if p.shape() != s0 {
                shape_error("stack", &[first, *p], "inputs must have equal shapes");
            }
        }
        let mut unit: Shape = s0.clone();
        unit.insert(axis, 1);
        let v = {
            let arena = first.tape().arena.borrow();
            let vals: Vec<Tensor<T>> = parts
                .iter()
                .map(|p| arena.value(p.index()).reshape(&unit))
                .collect();
            let refs: Vec<&Tensor<T>> = vals.iter().collect();
            Tensor::concat(&refs, axis)
        };
        first.tape().record(
            Op::Stack(Stack {
                axis: Axis::new(axis),
            }),
            parts,
            v,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_pack_two_entries_per_byte() {
        for perm in [vec![], vec![0], vec![1, 0], vec![7, 0, 6, 1, 5, 2, 4, 3]] {
            assert_eq!(Permute::new(&perm).perm().as_slice(), perm.as_slice());
        }
        // What keeps an op node's record at 16 bytes.
        assert_eq!(std::mem::size_of::<Op>(), 8);
    }

    #[test]
    fn narrow_keeps_its_start_and_axis() {
        let n = Narrow::new(3, 4_000_000_000);
        assert_eq!((n.axis.get(), n.start.get()), (3, 4_000_000_000));
    }
}
