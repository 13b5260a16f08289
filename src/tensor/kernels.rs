//! The loops behind the ops: elementwise with broadcasting, reductions along
//! an axis, and data movement. Shapes are validated by the callers (the ops
//! layer), which know the op and node names for the error message.

use super::{
    broadcast_shapes, broadcast_strides, for_each_offset2, numel, simd, split_at_axis, strides,
    Buffer, Element, Shape, Tensor,
};
use std::mem::MaybeUninit;

/// The trailing axes `k..` of `shape` along which an operand read with
/// strides `contiguous` is contiguous and one read with `constant` does not
/// move, if there are any and the block is long enough to pay: `(k, block
/// length)`.
fn constant_run(
    shape: &[usize],
    contiguous: &[usize],
    constant: &[usize],
) -> Option<(usize, usize)> {
    let (mut k, mut run) = (shape.len(), 1);
    while k > 0 && constant[k - 1] == 0 && contiguous[k - 1] == run {
        k -= 1;
        run *= shape[k];
    }
    (k < shape.len() && run >= 8).then_some((k, run))
}

impl<T: Element> Tensor<T> {
    /// Elementwise `f(a, b)` with NumPy broadcasting; `None` if the shapes
    /// do not broadcast.
    pub(crate) fn zip_map(&self, b: &Tensor<T>, f: impl Fn(T, T) -> T + Sync) -> Option<Tensor<T>> {
        let (x, y) = (self.data(), b.data());
        if self.ndim() == 0 && b.ndim() == 0 {
            return Some(Tensor::scalar(f(x[0], y[0])));
        }
        if self.shape() == b.shape() {
            let write = |at, out: &mut [_]| {
                simd::zip_write(out, &x[at..][..out.len()], &y[at..][..out.len()], &f)
            };
            // SAFETY: `zip_write` writes all of `out` (it checks the lengths).
            let data = unsafe { Buffer::written_in_halves(x.len(), 1, write) };
            return Some(Tensor::from_parts(Shape::from_slice(self.shape()), data));
        }
        let out = broadcast_shapes(self.shape(), b.shape())?;
        let n = numel(&out);
        if y.len() == 1 && out.as_slice() == self.shape() {
            let q = y[0];
            return Some(Tensor::from_parts(out, map_buffer(x, |p| f(p, q))));
        }
        if x.len() == 1 && out.as_slice() == b.shape() {
            let p = x[0];
            return Some(Tensor::from_parts(out, map_buffer(y, |q| f(p, q))));
        }
        // One side repeats along leading dimensions (a bias added to every
        // row); halves split between rows.
        let rows = |big: &[T], row: &[T], swap: bool| {
            let write = |at, out: &mut [_]| {
                simd::zip_rows_write(out, &big[at..][..out.len()], row, swap, &f)
            };
            // SAFETY: `zip_rows_write` writes all of `out` (it checks the
            // lengths), and halves hold whole rows.
            unsafe { Buffer::written_in_halves(n, row.len(), write) }
        };
        if out.as_slice() == self.shape() && out.ends_with(b.shape()) && !y.is_empty() {
            return Some(Tensor::from_parts(out, rows(x, y, false)));
        }
        if out.as_slice() == b.shape() && out.ends_with(self.shape()) && !x.is_empty() {
            return Some(Tensor::from_parts(out, rows(y, x, true)));
        }
        let (sa, sb) = (
            broadcast_strides(self.shape(), &out),
            broadcast_strides(b.shape(), &out),
        );
        let mut data = Buffer::with_capacity(n);
        // One side constant along a trailing block that the other reads
        // contiguously (a per-channel statistic against (N, C, H, W)): a
        // plain loop per block instead of an offset walk per element.
        if let Some((k, run)) = constant_run(&out, &sa, &sb) {
            for_each_offset2(&out[..k], &sa[..k], &sb[..k], |i, j| {
                let q = y[j];
                data.extend(x[i..i + run].iter().map(|&p| f(p, q)));
            });
            return Some(Tensor::from_parts(out, data));
        }
        if let Some((k, run)) = constant_run(&out, &sb, &sa) {
            for_each_offset2(&out[..k], &sa[..k], &sb[..k], |i, j| {
                let p = x[i];
                data.extend(y[j..j + run].iter().map(|&q| f(p, q)));
            });
            return Some(Tensor::from_parts(out, data));
        }
        for_each_offset2(&out, &sa, &sb, |i, j| data.push(f(x[i], y[j])));
        Some(Tensor::from_parts(out, data))
    }

    /// `self · local(xs)` element by element, where every tensor has
    /// `self`'s shape: an elementwise op's chain rule (`self` the global
    /// derivative) in one loop, with no tensor for the local derivative.
    pub(crate) fn chain<const N: usize>(
        &self,
        xs: [&Tensor<T>; N],
        local: impl Fn([T; N]) -> T + Sync,
    ) -> Tensor<T> {
        debug_assert!(xs.iter().all(|x| x.shape() == self.shape()));
        let (g, xs) = (self.data(), xs.map(|x| x.data()));
        let write = |at: usize, out: &mut [MaybeUninit<T>]| {
            let n = out.len();
            simd::chain_write(out, &g[at..][..n], xs.map(|x| &x[at..][..n]), &local)
        };
        // SAFETY: `chain_write` writes all of `out` (it checks the lengths).
        let data = unsafe { Buffer::written_in_halves(g.len(), 1, write) };
        Tensor::from_parts(Shape::from_slice(self.shape()), data)
    }

    /// Sums a tensor down to `target`, a shape it was broadcast from: the
    /// one helper every broadcasting op's backward uses.
    pub(crate) fn sum_to(&self, target: &[usize]) -> Tensor<T> {
        if self.shape() == target {
            return self.clone();
        }
        debug_assert!(super::broadcasts_to(target, self.shape()));
        let mut out = Tensor::zeros(target);
        if out.numel() == 1 {
            out.data_mut()[0] = self.data().iter().fold(T::zero(), |s, &v| s + v);
            return out;
        }
        // Summing away leading dimensions (a bias gradient): add rows.
        let own = self.shape();
        let lead = own.len() - target.len();
        if own[lead..] == *target {
            let w = out.numel();
            let dst = out.data_mut();
            for row in self.data().chunks_exact(w) {
                simd::add_to(dst, row);
            }
            return out;
        }
        let ts = broadcast_strides(target, self.shape());
        let (src, ss) = (self.data(), strides(self.shape()));
        let dst = out.data_mut();
        // Summing a trailing block into one entry (a per-channel gradient
        // of (N, C, H, W)): one sum per block.
        if let Some((k, run)) = constant_run(own, &ss, &ts) {
            for_each_offset2(&own[..k], &ss[..k], &ts[..k], |i, j| {
                let block = simd::lane_sums(&src[i..i + run], T::zero());
                dst[j] = block.iter().fold(dst[j], |acc, &v| acc + v);
            });
            return out;
        }
        for_each_offset2(own, &ss, &ts, |i, j| dst[j] = dst[j] + src[i]);
        out
    }

    /// Repeats a tensor along broadcast dimensions to fill `target`.
    pub(crate) fn broadcast_to(&self, target: &[usize]) -> Tensor<T> {
        debug_assert!(super::broadcasts_to(self.shape(), target));
        let n = numel(target);
        let src = self.data();
        if src.len() == 1 {
            return Tensor::full(target, src[0]);
        }
        let ss = broadcast_strides(self.shape(), target);
        let r = target.len();
        // Whole runs at a time, not one element per call: the trailing axes
        // the source repeats (each source element fills a run: a (1, C, 1, 1)
        // statistic's gradient in batch norm), or else the trailing axes it
        // has whole (contiguous runs copied).
        let repeated = (0..r).rev().take_while(|&d| ss[d] == 0).count();
        let whole = (0..r)
            .rev()
            .take_while(|&d| ss[d] != 0 || target[d] == 1)
            .count();
        let data = if numel(&target[r - repeated..]) > 1 {
            let (outer, run) = (r - repeated, numel(&target[r - repeated..]));
            Buffer::build(n, |v| {
                for_each_offset2(&target[..outer], &ss[..outer], &ss[..outer], |i, _| {
                    v.extend(std::iter::repeat_n(src[i], run))
                })
            })
        } else {
            let (outer, run) = (r - whole, numel(&target[r - whole..]));
            Buffer::build(n, |v| {
                for_each_offset2(&target[..outer], &ss[..outer], &ss[..outer], |i, _| {
                    v.extend_from_slice(&src[i..i + run])
                })
            })
        };
        Tensor::from_parts(Shape::from_slice(target), data)
    }

    /// Reorders dimensions: output dimension `d` is input dimension `perm[d]`.
    pub(crate) fn permute(&self, perm: &[usize]) -> Tensor<T> {
        let shape = self.shape();
        let out: Shape = perm.iter().map(|&p| shape[p]).collect();
        // Moving only axes of length 1 keeps the element order: a reshape.
        let moved: Shape = perm.iter().copied().filter(|&p| shape[p] != 1).collect();
        if moved.windows(2).all(|w| w[0] < w[1]) {
            return self.reshape(&out);
        }
        // Swapping the last two axes (a batch of transposes): a plain loop.
        let r = perm.len();
        let swaps_last_two = r >= 2
            && perm[..r - 2].iter().enumerate().all(|(i, &p)| i == p)
            && perm[r - 2] == r - 1
            && perm[r - 1] == r - 2;
        if swaps_last_two {
            let (m, n) = (shape[r - 2], shape[r - 1]);
            let mut t = Tensor::zeros(&out);
            for (dst, src) in t
                .data_mut()
                .chunks_exact_mut(m * n)
                .zip(self.data().chunks_exact(m * n))
            {
                for (i, row) in src.chunks_exact(n).enumerate() {
                    for (j, &v) in row.iter().enumerate() {
                        dst[j * m + i] = v;
                    }
                }
            }
            return t;
        }
        let own = strides(self.shape());
        let st: Shape = perm.iter().map(|&p| own[p]).collect();
        let src = self.data();
        let mut data = Buffer::with_capacity(src.len());
        for_each_offset2(&out, &st, &st, |i, _| data.push(src[i]));
        Tensor::from_parts(out, data)
    }

    /// Reduces along `axis` with a fold per lane; the output drops the axis
    /// (or keeps it with length 1).
    pub(crate) fn fold_axis(
        &self,
        axis: usize,
        keepdim: bool,
        init: T,
        f: impl Fn(T, T) -> T,
    ) -> Tensor<T> {
        let (outer, n, inner) = split_at_axis(self.shape(), axis);
        let src = self.data();
        let mut out = Tensor::full(reduced_shape(self.shape(), axis, keepdim), init);
        let dst = out.data_mut();
        for o in 0..outer {
            for i in 0..n {
                let row = &src[(o * n + i) * inner..][..inner];
                for (d, &v) in dst[o * inner..][..inner].iter_mut().zip(row) {
                    *d = f(*d, v);
                }
            }
        }
        out
    }

    /// Sum of all elements as a 0-d tensor.
    pub(crate) fn sum_all(&self) -> Tensor<T> {
        Tensor::scalar(self.data().iter().fold(T::zero(), |s, &v| s + v))
    }

    /// Sum along an axis.
    pub(crate) fn sum_axis(&self, axis: usize, keepdim: bool) -> Tensor<T> {
        self.fold_axis(axis, keepdim, T::zero(), |a, b| a + b)
    }

    /// 1 at the first maximum of each lane along `axis`, 0 elsewhere
    /// (the same shape as `self`).
    pub(crate) fn first_max_mask(&self, axis: usize) -> Tensor<T> {
        let (outer, n, inner) = split_at_axis(self.shape(), axis);
        let src = self.data();
        let mut out = Tensor::zeros(self.shape());
        let dst = out.data_mut();
        for o in 0..outer {
            for j in 0..inner {
                let at = |i: usize| (o * n + i) * inner + j;
                let mut best = 0;
                for i in 1..n {
                    // NaN wins so that it propagates, as in NumPy.
                    if src[at(i)] > src[at(best)]
                        || (src[at(i)].is_nan() && !src[at(best)].is_nan())
                    {
                        best = i;
                    }
                }
                if n > 0 {
                    dst[at(best)] = T::one();
                }
            }
        }
        out
    }

    /// Runs `f` on every lane along `axis` (copied into a contiguous
    /// scratch row) and writes its result back in place.
    pub(crate) fn map_lanes(&self, axis: usize, f: impl Fn(&mut [T])) -> Tensor<T> {
        let (outer, n, inner) = split_at_axis(self.shape(), axis);
        let mut out = self.clone();
        if inner == 1 {
            for lane in out.data_mut().chunks_exact_mut(n.max(1)) {
                f(lane);
            }
            return out;
        }
        let mut row = Buffer::filled(n, T::zero());
        let dst = out.data_mut();
        for o in 0..outer {
            for j in 0..inner {
                for (i, r) in row.as_mut_slice().iter_mut().enumerate() {
                    *r = dst[(o * n + i) * inner + j];
                }
                f(row.as_mut_slice());
                for (i, r) in row.as_slice().iter().enumerate() {
                    dst[(o * n + i) * inner + j] = *r;
                }
            }
        }
        out
    }

    /// `len` entries along `axis` starting at `start`.
    pub(crate) fn narrow(&self, axis: usize, start: usize, len: usize) -> Tensor<T> {
        let (outer, n, inner) = split_at_axis(self.shape(), axis);
        let mut shape = Shape::from_slice(self.shape());
        shape[axis] = len;
        let src = self.data();
        let data = Buffer::build(outer * len * inner, |v| {
            for o in 0..outer {
                v.extend_from_slice(&src[(o * n + start) * inner..][..len * inner]);
            }
        });
        Tensor::from_parts(shape, data)
    }

    /// Zeros of length `total` along `axis`, with `self` written at `start`
    /// (the inverse of [`Tensor::narrow`]).
    pub(crate) fn pad(&self, axis: usize, start: usize, total: usize) -> Tensor<T> {
        let (outer, len, inner) = split_at_axis(self.shape(), axis);
        let mut shape = Shape::from_slice(self.shape());
        shape[axis] = total;
        let mut out = Tensor::zeros(&shape);
        let src = self.data();
        let dst = out.data_mut();
        for o in 0..outer {
            dst[(o * total + start) * inner..][..len * inner]
                .copy_from_slice(&src[o * len * inner..][..len * inner]);
        }
        out
    }

    /// Joins tensors along an existing axis (shapes already checked).
    pub(crate) fn concat(parts: &[&Tensor<T>], axis: usize) -> Tensor<T> {
        let mut shape = Shape::from_slice(parts[0].shape());
        shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
        let (outer, total, inner) = split_at_axis(&shape, axis);
        let data = Buffer::build(outer * total * inner, |v| {
            for o in 0..outer {
                for p in parts {
                    let w = p.shape()[axis] * inner;
                    v.extend_from_slice(&p.data()[o * w..][..w]);
                }
            }
        });
        Tensor::from_parts(shape, data)
    }

    /// Picks entries `idx` along `axis` (indices stored as floats).
    pub(crate) fn index_select(&self, axis: usize, idx: &Tensor<T>) -> Tensor<T> {
        let (outer, n, inner) = split_at_axis(self.shape(), axis);
        let k = idx.numel();
        let mut shape = Shape::from_slice(self.shape());
        shape[axis] = k;
        let src = self.data();
        let data = Buffer::build(outer * k * inner, |v| {
            for o in 0..outer {
                for &i in idx.data() {
                    v.extend_from_slice(&src[(o * n + as_index(i)) * inner..][..inner]);
                }
            }
        });
        Tensor::from_parts(shape, data)
    }

    /// Adds the entries of `self` into zeros of length `n` along `axis`, at
    /// positions `idx` (the inverse of [`Tensor::index_select`]).
    pub(crate) fn index_add(&self, axis: usize, idx: &Tensor<T>, n: usize) -> Tensor<T> {
        let (outer, k, inner) = split_at_axis(self.shape(), axis);
        let mut shape = Shape::from_slice(self.shape());
        shape[axis] = n;
        let mut out = Tensor::zeros(&shape);
        let (src, dst) = (self.data(), out.data_mut());
        for o in 0..outer {
            for (p, &i) in idx.data().iter().enumerate() {
                let i = as_index(i);
                let d = &mut dst[(o * n + i) * inner..][..inner];
                for (d, &v) in d.iter_mut().zip(&src[(o * k + p) * inner..][..inner]) {
                    *d = *d + v;
                }
            }
        }
        out
    }

    /// `out[o, p, j] = self[o, idx[o, p, j], j]` along `axis`.
    pub(crate) fn gather(&self, axis: usize, idx: &Tensor<T>) -> Tensor<T> {
        let (_, n, inner) = split_at_axis(self.shape(), axis);
        let (outer, k, _) = split_at_axis(idx.shape(), axis);
        let src = self.data();
        // Pushed onto a Vec (SmallVec's push showed in the CNN profile).
        let data = Buffer::build(idx.numel(), |data| {
            for o in 0..outer {
                for p in 0..k {
                    for j in 0..inner {
                        let i = as_index(idx.data()[(o * k + p) * inner + j]);
                        data.push(src[(o * n + i) * inner + j]);
                    }
                }
            }
        });
        Tensor::from_parts(Shape::from_slice(idx.shape()), data)
    }

    /// Adds `self[o, p, j]` into zeros at `[o, idx[o, p, j], j]`, length `n`
    /// along `axis` (the inverse of [`Tensor::gather`]).
    pub(crate) fn scatter_add(&self, axis: usize, idx: &Tensor<T>, n: usize) -> Tensor<T> {
        let (outer, k, inner) = split_at_axis(idx.shape(), axis);
        let mut shape = Shape::from_slice(self.shape());
        shape[axis] = n;
        let mut out = Tensor::zeros(&shape);
        let (src, dst) = (self.data(), out.data_mut());
        for o in 0..outer {
            for p in 0..k {
                for j in 0..inner {
                    let at = (o * k + p) * inner + j;
                    let i = as_index(idx.data()[at]);
                    let d = &mut dst[(o * n + i) * inner + j];
                    *d = *d + src[at];
                }
            }
        }
        out
    }
}

/// `f` of every element of `x`, in two halves on two threads when large.
pub(crate) fn map_buffer<T: Element>(x: &[T], f: impl Fn(T) -> T + Sync) -> Buffer<T> {
    let write =
        |at: usize, out: &mut [MaybeUninit<T>]| simd::map_write(out, &x[at..][..out.len()], &f);
    // SAFETY: `map_write` writes all of `out` (it checks the lengths).
    unsafe { Buffer::written_in_halves(x.len(), 1, write) }
}

/// The shape after reducing `axis`.
pub(crate) fn reduced_shape(shape: &[usize], axis: usize, keepdim: bool) -> Shape {
    let mut s = Shape::from_slice(shape);
    if keepdim {
        s[axis] = 1;
    } else {
        s.remove(axis);
    }
    s
}

fn as_index<T: Element>(v: T) -> usize {
    v.to_usize().expect("indices are validated when recorded")
}

/// In-place softmax of one lane, shifted by its maximum so that no `exp`
/// overflows.
pub(crate) fn softmax_lane<T: Element>(lane: &mut [T]) {
    let m = lane.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    let m = if m.is_finite() { m } else { T::zero() };
    let mut s = T::zero();
    for v in lane.iter_mut() {
        *v = (*v - m).exp();
        s = s + *v;
    }
    for v in lane.iter_mut() {
        *v = *v / s;
    }
}

/// log-sum-exp of one lane, shifted by its maximum.
pub(crate) fn logsumexp_lane<T: Element>(lane: &[T]) -> T {
    let m = lane.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    if !m.is_finite() {
        // All -inf gives -inf; any +inf (or NaN) gives itself.
        return m;
    }
    m + lane.iter().fold(T::zero(), |s, &v| s + (v - m).exp()).ln()
}

/// In-place log-softmax of one lane: x - logsumexp(x).
pub(crate) fn log_softmax_lane<T: Element>(lane: &mut [T]) {
    let l = logsumexp_lane(lane);
    for v in lane.iter_mut() {
        *v = *v - l;
    }
}

impl<T: Element> Tensor<T> {
    /// Reduces every lane along `axis` with `f` (given the lane contiguous).
    pub(crate) fn reduce_lanes(
        &self,
        axis: usize,
        keepdim: bool,
        f: impl Fn(&[T]) -> T,
    ) -> Tensor<T> {
        let (outer, n, inner) = split_at_axis(self.shape(), axis);
        let src = self.data();
        let shape = reduced_shape(self.shape(), axis, keepdim);
        let mut data = Buffer::with_capacity(outer * inner);
        if inner == 1 {
            for o in 0..outer {
                data.push(f(&src[o * n..][..n]));
            }
        } else {
            let mut row = Buffer::filled(n, T::zero());
            for o in 0..outer {
                for j in 0..inner {
                    for (i, r) in row.as_mut_slice().iter_mut().enumerate() {
                        *r = src[(o * n + i) * inner + j];
                    }
                    data.push(f(row.as_slice()));
                }
            }
        }
        Tensor::from_parts(shape, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every run shape of `broadcast_to` (repeated trailing axes, whole
    /// trailing axes, neither) against reading each element by its index.
    #[test]
    fn broadcasts_match_reading_each_element() {
        let cases: [(&[usize], &[usize]); 7] = [
            (&[1, 3, 1, 1], &[2, 3, 4, 5]),
            (&[3, 1], &[3, 6]),
            (&[1, 4], &[5, 4]),
            (&[2, 1, 3], &[2, 4, 3]),
            (&[4], &[2, 3, 4]),
            (&[3, 1, 1], &[2, 3, 1, 2]),
            (&[1, 1, 2], &[3, 1, 2]),
        ];
        for (from, to) in cases {
            let x = Tensor::<f64>::from_fn(from, |i| {
                i.iter().fold(0.0, |a, &v| a * 10.0 + v as f64 + 1.0)
            });
            let lead = to.len() - from.len();
            let want = Tensor::from_fn(to, |i| {
                let at: Vec<usize> = (0..from.len())
                    .map(|d| if from[d] == 1 { 0 } else { i[d + lead] })
                    .collect();
                x.get(&at)
            });
            assert_eq!(x.broadcast_to(to), want, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn sum_to_undoes_broadcast() {
        let t = Tensor::<f64>::from_vec((0..6).map(|v| v as f64).collect(), [2, 3]);
        assert_eq!(t.sum_to(&[3]).data(), &[3.0, 5.0, 7.0]);
        assert_eq!(t.sum_to(&[2, 1]).data(), &[3.0, 12.0]);
        assert_eq!(t.sum_to(&[]).data(), &[15.0]);
        let b = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2, 1]).broadcast_to(&[2, 3]);
        assert_eq!(b.data(), &[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn lanes_along_middle_axis() {
        let t = Tensor::<f64>::from_vec((0..12).map(|v| v as f64).collect(), [2, 3, 2]);
        assert_eq!(t.sum_axis(1, false).data(), &[6.0, 9.0, 24.0, 27.0]);
        let p = t.permute(&[2, 0, 1]);
        assert_eq!(p.shape(), &[2, 2, 3]);
        assert_eq!(p.get(&[1, 0, 2]), t.get(&[0, 2, 1]));
        let n = t.narrow(1, 1, 2);
        assert_eq!(n.pad(1, 1, 3).narrow(1, 1, 2), n);
    }

    /// Every elementwise path gives what a plain loop gives, also on the
    /// sizes that run in two halves (rows of 1000 that do not halve evenly).
    #[test]
    fn large_elementwise_maps_match_plain_loops() {
        let (rows, width) = (263, 1000);
        let n = rows * width;
        let a = Tensor::<f32>::from_vec(
            (0..n).map(|i| (i as f32 * 0.01).sin()).collect(),
            [rows, width],
        );
        let b = Tensor::<f32>::from_vec(
            (0..n).map(|i| (i as f32 * 0.03).cos()).collect(),
            [rows, width],
        );
        let row = Tensor::<f32>::from_vec((0..width).map(|i| i as f32).collect(), [width]);
        let f = |p: f32, q: f32| p * 2.0 - q;
        let at = |t: &Tensor<f32>, i: usize| t.data()[i];
        let same = a.zip_map(&b, f).unwrap();
        let bias = a.zip_map(&row, f).unwrap();
        let bias_first = row.zip_map(&a, f).unwrap();
        let scalar = a.zip_map(&Tensor::scalar(3.0), f).unwrap();
        let mapped = a.map(|p| p * p);
        for i in 0..n {
            let (p, q, r) = (at(&a, i), at(&b, i), at(&row, i % width));
            assert_eq!(at(&same, i), f(p, q), "{i}");
            assert_eq!(at(&bias, i), f(p, r), "{i}");
            assert_eq!(at(&bias_first, i), f(r, p), "{i}");
            assert_eq!(at(&scalar, i), f(p, 3.0), "{i}");
            assert_eq!(at(&mapped, i), p * p, "{i}");
        }
    }

    /// The per-channel block paths (a `(1, C, 1, 1)` statistic against an
    /// `(N, C, H, W)` tensor, either side first, and the sum back down)
    /// give what the element-by-element definition gives.
    #[test]
    fn channel_broadcasts_and_their_sums_match_the_definition() {
        let (n, c, hw) = (3, 4, 10);
        let x = Tensor::<f64>::rand_uniform([n, c, 2, 5], -1.0, 1.0, 1);
        let s = Tensor::<f64>::rand_uniform([1, c, 1, 1], -1.0, 1.0, 2);
        let f = |p: f64, q: f64| p * 3.0 - q;
        let (xs, ss) = (x.data(), s.data());
        let ab = x.zip_map(&s, f).unwrap();
        let ba = s.zip_map(&x, f).unwrap();
        for (i, &p) in xs.iter().enumerate() {
            let ch = (i / hw) % c;
            assert_eq!(ab.data()[i], f(p, ss[ch]), "{i}");
            assert_eq!(ba.data()[i], f(ss[ch], p), "{i}");
        }
        let summed = x.sum_to(&[1, c, 1, 1]);
        for ch in 0..c {
            let want: f64 = (0..n * c * hw)
                .filter(|i| (i / hw) % c == ch)
                .map(|i| xs[i])
                .sum();
            assert!((summed.data()[ch] - want).abs() < 1e-12, "{ch}");
        }
    }
}
