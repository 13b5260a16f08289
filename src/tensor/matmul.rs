//! Matrix products on top of the GEMM kernel of [`Element::gemm`].

use super::{Buffer, Element, Shape, Tensor};

impl<T: Element> Tensor<T> {
    /// Matrix product for 2-d `(m,k)·(k,n)`, batched 3-d `(b,m,k)·(b,k,n)`,
    /// and the broadcast forms `(b,m,k)·(k,n)` and `(m,k)·(b,k,n)`.
    /// Shapes are validated by the `matmul` op before this runs.
    pub(crate) fn matmul(&self, b: &Tensor<T>) -> Tensor<T> {
        let (sa, sb) = (self.shape(), b.shape());
        let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
        let n = sb[sb.len() - 1];
        let batch =
            if sa.len() == 3 { sa[0] } else { 1 }.max(if sb.len() == 3 { sb[0] } else { 1 });
        let mut shape: Shape = Shape::new();
        if sa.len() == 3 || sb.len() == 3 {
            shape.push(batch);
        }
        shape.extend([m, n]);
        let mut data = Buffer::filled(batch * m * n, T::zero());
        let c = data.as_mut_slice();
        if sa.len() == 3 && sb.len() == 2 {
            // One tall product: (b·m, k)·(k, n).
            T::gemm(
                batch * m,
                k,
                n,
                self.data(),
                (k as isize, 1),
                b.data(),
                (n as isize, 1),
                c,
            );
        } else {
            let a_step = if sa.len() == 3 { m * k } else { 0 };
            let b_step = if sb.len() == 3 { k * n } else { 0 };
            for i in 0..batch {
                T::gemm(
                    m,
                    k,
                    n,
                    &self.data()[i * a_step..],
                    (k as isize, 1),
                    &b.data()[i * b_step..],
                    (n as isize, 1),
                    &mut c[i * m * n..],
                );
            }
        }
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
}
