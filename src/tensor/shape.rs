//! Shapes, strides and NumPy broadcasting rules.

use smallvec::SmallVec;

/// The dimensions of a tensor, outermost first. Up to four dimensions live
/// inline, so building a shape never allocates for the common cases.
pub type Shape = SmallVec<[usize; 4]>;

/// Number of elements of a shape (1 for the 0-d shape of a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a contiguous tensor of this shape.
pub fn strides(shape: &[usize]) -> Shape {
    let mut s: Shape = SmallVec::from_elem(1, shape.len());
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The shape two operands broadcast to under NumPy's rules (align trailing
/// dimensions; a dimension of 1 stretches), or `None` if they do not.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Shape> {
    let n = a.len().max(b.len());
    let mut out: Shape = SmallVec::from_elem(0, n);
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// True if `from` can be broadcast to `to` (every aligned dimension equal or 1).
pub fn broadcasts_to(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(&f, &t)| f == t || f == 1)
}

/// Strides for reading a tensor of shape `from` as if it had shape `to`:
/// broadcast (stretched or missing) dimensions get stride 0.
pub(crate) fn broadcast_strides(from: &[usize], to: &[usize]) -> Shape {
    let own = strides(from);
    let lead = to.len() - from.len();
    (0..to.len())
        .map(|d| {
            if d < lead || from[d - lead] == 1 {
                0
            } else {
                own[d - lead]
            }
        })
        .collect()
}

/// Splits a shape around `axis` into (outer, len, inner) element counts, the
/// view every along-an-axis kernel works in.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}

/// Visits, in row-major order of `shape`, the element offsets of two operands
/// read with strides `sa` and `sb`. The innermost dimension is a plain loop.
pub(crate) fn for_each_offset2(
    shape: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize),
) {
    let nd = shape.len();
    if nd == 0 {
        f(0, 0);
        return;
    }
    if shape.contains(&0) {
        return;
    }
    let last = nd - 1;
    let (len, la, lb) = (shape[last], sa[last], sb[last]);
    let mut idx: Shape = SmallVec::from_elem(0, nd);
    let (mut oa, mut ob) = (0usize, 0usize);
    loop {
        for i in 0..len {
            f(oa + i * la, ob + i * lb);
        }
        let mut d = last;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < shape[d] {
                break;
            }
            oa -= sa[d] * shape[d];
            ob -= sb[d] * shape[d];
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[3, 1], &[4]).unwrap().as_slice(), &[3, 4]);
        assert_eq!(broadcast_shapes(&[], &[2, 2]).unwrap().as_slice(), &[2, 2]);
        assert_eq!(
            broadcast_shapes(&[5, 1, 3], &[4, 1]).unwrap().as_slice(),
            &[5, 4, 3]
        );
        assert!(broadcast_shapes(&[3], &[4]).is_none());
        assert!(broadcasts_to(&[1, 3], &[2, 3]));
        assert!(!broadcasts_to(&[2, 3], &[3]));
    }

    #[test]
    fn offsets_walk_row_major_with_broadcast_strides() {
        let mut seen = vec![];
        let sb = broadcast_strides(&[3], &[2, 3]);
        for_each_offset2(&[2, 3], &strides(&[2, 3]), &sb, |a, b| seen.push((a, b)));
        assert_eq!(seen, vec![(0, 0), (1, 1), (2, 2), (3, 0), (4, 1), (5, 2)]);
    }
}

/// An axis argument: a `usize` counted from the front, or a signed index
/// where `-1` is the last axis (as in NumPy and PyTorch). Every op that
/// takes an axis accepts either.
///
/// ```
/// use tapegrad::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
/// assert_eq!(x.sum_axis(-1, false).value(), x.sum_axis(1, false).value());
/// assert_eq!(x.softmax(-1).value(), x.softmax(1).value());
/// ```
pub trait AxisIndex: Copy + std::fmt::Display {
    /// The axis among `ndim` axes, or `None` if out of range.
    fn resolve(self, ndim: usize) -> Option<usize>;
}

impl AxisIndex for usize {
    fn resolve(self, ndim: usize) -> Option<usize> {
        (self < ndim).then_some(self)
    }
}

macro_rules! signed_axis {
    ($($t:ty),*) => {$(
        impl AxisIndex for $t {
            fn resolve(self, ndim: usize) -> Option<usize> {
                let a = if self < 0 { ndim as i64 + self as i64 } else { self as i64 };
                (0..ndim as i64).contains(&a).then_some(a as usize)
            }
        }
    )*};
}
signed_axis!(i32, i64, isize);
