//! Matrix products on top of the GEMM kernel of [`Element::gemm`].

use super::{Buffer, Element, Shape, Tensor};
use std::mem::MaybeUninit;

/// The (rows, cols) of a matrix operand and its (row, col) strides, as read
/// by the product: transposed operands are read through swapped strides,
/// never copied.
fn operand(shape: &[usize], transposed: bool) -> ((usize, usize), (isize, isize)) {
    let (r, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    if transposed {
        ((c, r), (1, c as isize))
    } else {
        ((r, c), (c as isize, 1))
    }
}

impl<T: Element> Tensor<T> {
    /// One (m×k)·(k×n) product of strided operands, as a tensor of `shape`
    /// (m·n elements).
    pub(crate) fn product(
        shape: &[usize],
        (m, k, n): (usize, usize, usize),
        a: &[T],
        a_strides: (isize, isize),
        b: &[T],
        b_strides: (isize, isize),
    ) -> Tensor<T> {
        assert_eq!(shape.iter().product::<usize>(), m * n);
        let write = |c: &mut [MaybeUninit<T>]| T::gemm(m, k, n, a, a_strides, b, b_strides, c);
        // SAFETY: the product writes all m·n elements.
        let data = unsafe { Buffer::written(m * n, write) };
        Tensor::from_parts(Shape::from_slice(shape), data)
    }

    /// Matrix product for 2-d `(m,k)·(k,n)`, batched 3-d `(b,m,k)·(b,k,n)`,
    /// and the broadcast forms `(b,m,k)·(k,n)` and `(m,k)·(b,k,n)`.
    /// Shapes are validated by the `matmul` op before this runs.
    #[cfg(test)]
    pub(crate) fn matmul(&self, b: &Tensor<T>) -> Tensor<T> {
        self.matmul_t(b, false, false)
    }

    /// `op(self) · op(b)` where `op` transposes the last two dimensions of
    /// an operand when its flag is set.
    pub(crate) fn matmul_t(&self, b: &Tensor<T>, ta: bool, tb: bool) -> Tensor<T> {
        let (sa, sb) = (self.shape(), b.shape());
        let ((m, k), a_strides) = operand(sa, ta);
        let ((_, n), b_strides) = operand(sb, tb);
        let batch =
            if sa.len() == 3 { sa[0] } else { 1 }.max(if sb.len() == 3 { sb[0] } else { 1 });
        let mut shape: Shape = Shape::new();
        if sa.len() == 3 || sb.len() == 3 {
            shape.push(batch);
        }
        shape.extend([m, n]);
        if sa.len() == 3 && sb.len() == 2 && !ta {
            // One tall product: (b·m, k)·(k, n).
            let (a, b) = (self.data(), b.data());
            return Tensor::product(&shape, (batch * m, k, n), a, a_strides, b, b_strides);
        }
        let a_step = if sa.len() == 3 { m * k } else { 0 };
        let b_step = if sb.len() == 3 { k * n } else { 0 };
        let write = |c: &mut [MaybeUninit<T>]| {
            for i in 0..batch {
                T::gemm(
                    m,
                    k,
                    n,
                    &self.data()[i * a_step..],
                    a_strides,
                    &b.data()[i * b_step..],
                    b_strides,
                    &mut c[i * m * n..],
                );
            }
        };
        // SAFETY: the products write all batch·m·n elements.
        let data = unsafe { Buffer::written(batch * m * n, write) };
        Tensor::from_parts(shape, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_the_definition() {
        let a = Tensor::<f64>::from_fn([2, 3], |i| (i[0] * 3 + i[1]) as f64);
        let b = Tensor::<f64>::from_fn([3, 2], |i| (i[0] as f64) - (i[1] as f64));
        let c = a.matmul(&b);
        for i in 0..2 {
            for j in 0..2 {
                let want: f64 = (0..3).map(|p| a.get(&[i, p]) * b.get(&[p, j])).sum();
                assert_eq!(c.get(&[i, j]), want);
            }
        }
        let a3 = Tensor::<f32>::from_fn([2, 2, 3], |i| (i[0] + i[1] * i[2]) as f32);
        let b3 = Tensor::<f32>::from_fn([2, 3, 4], |i| (i[0] * i[2] + i[1]) as f32);
        let c3 = a3.matmul(&b3);
        assert_eq!(c3.shape(), &[2, 2, 4]);
        let want: f32 = (0..3)
            .map(|p| a3.get(&[1, 1, p]) * b3.get(&[1, p, 2]))
            .sum();
        assert_eq!(c3.get(&[1, 1, 2]), want);
    }

    #[test]
    fn transposed_operands_are_read_through_strides() {
        let a = Tensor::<f64>::from_fn([2, 2, 3], |i| (i[0] * 7 + i[1] * 3 + i[2]) as f64);
        let b = Tensor::<f64>::from_fn([2, 4, 3], |i| (i[0] + i[1] * 2) as f64 - i[2] as f64);
        let bt = b.permute(&[0, 2, 1]);
        assert_eq!(a.matmul_t(&b, false, true), a.matmul(&bt));
        let at = a.permute(&[0, 2, 1]);
        assert_eq!(at.matmul_t(&bt, true, false), a.matmul(&bt));
        assert_eq!(at.matmul_t(&b, true, true), a.matmul(&bt));
    }

    /// Products big enough to be split into row halves (one on the helper
    /// thread), with an odd row count and every transposition: the same
    /// numbers as the definition, to rounding (integers, so exactly).
    #[test]
    fn split_products_match_the_definition() {
        let (m, k, n) = (131, 128, 129);
        assert!(m * k * n >= 1 << 21, "large enough to split");
        let a = Tensor::<f64>::from_fn([m, k], |i| ((i[0] * 7 + i[1] * 3) % 11) as f64 - 5.0);
        let b = Tensor::<f64>::from_fn([k, n], |i| ((i[0] * 5 + i[1]) % 13) as f64 - 6.0);
        let want = Tensor::<f64>::from_fn([m, n], |i| {
            (0..k).map(|p| a.get(&[i[0], p]) * b.get(&[p, i[1]])).sum()
        });
        let (at, bt) = (a.permute(&[1, 0]), b.permute(&[1, 0]));
        assert_eq!(a.matmul(&b), want);
        assert_eq!(at.matmul_t(&b, true, false), want);
        assert_eq!(a.matmul_t(&bt, false, true), want);
        assert_eq!(at.matmul_t(&bt, true, true), want);
    }
}
