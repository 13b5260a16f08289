//! 2-d convolution kernels (NCHW, PyTorch's semantics) through im2col and
//! the GEMM: the forward, its adjoint in the input (a transposed
//! convolution) and in the weight. Each image and group is one product of
//! the group's weight rows with the image's columns, read through strides
//! without copying the weight.

use super::{Element, Tensor};

/// The geometry of a 2-d convolution: per spatial axis the stride, the
/// zero padding and the dilation, and the number of channel groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    /// Step between windows, (rows, columns).
    pub stride: [usize; 2],
    /// Zeros added on each side, (rows, columns).
    pub padding: [usize; 2],
    /// Spacing between kernel taps, (rows, columns).
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels split into this many
    /// independent convolutions (1: dense; the channel count: depthwise).
    pub groups: usize,
}

impl Default for Conv2dGeom {
    fn default() -> Self {
        Conv2dGeom {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl Conv2dGeom {
    /// The output size along axis `a` for input size `n` and kernel `k`,
    /// or `None` if the kernel does not fit.
    pub fn out_len(&self, a: usize, n: usize, k: usize) -> Option<usize> {
        let span = self.dilation[a] * (k.max(1) - 1) + 1;
        let padded = n + 2 * self.padding[a];
        (padded >= span && self.stride[a] > 0).then(|| (padded - span) / self.stride[a] + 1)
    }
}

/// The sizes of one convolution: batch, channels in and out, input and
/// output spatial sizes, kernel size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) o: usize,
    pub(crate) hw: [usize; 2],
    pub(crate) out: [usize; 2],
    pub(crate) k: [usize; 2],
}

impl Dims {
    /// Per group: input channels, output channels, column rows
    /// (`c/g · kh · kw`), column count (output pixels).
    fn per_group(&self, g: &Conv2dGeom) -> (usize, usize, usize, usize) {
        let (cg, og) = (self.c / g.groups, self.o / g.groups);
        (
            cg,
            og,
            cg * self.k[0] * self.k[1],
            self.out[0] * self.out[1],
        )
    }
}

/// Fills `cols` (`cg·kh·kw` rows of `oh·ow`) with the windows of channels
/// `c0..c0+cg` of one image `x` (`c × h × w`), zeros where a tap falls in
/// the padding.
fn im2col<T: Element>(x: &[T], d: &Dims, g: &Conv2dGeom, c0: usize, cg: usize, cols: &mut [T]) {
    let ([h, w], [oh, ow], [kh, kw]) = (d.hw, d.out, d.k);
    let mut row = 0;
    for c in c0..c0 + cg {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for i in 0..kh {
            for j in 0..kw {
                let out = &mut cols[row * oh * ow..(row + 1) * oh * ow];
                for oy in 0..oh {
                    let iy =
                        (oy * g.stride[0] + i * g.dilation[0]) as isize - g.padding[0] as isize;
                    let line = &mut out[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= h as isize {
                        line.fill(T::zero());
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    for (ox, v) in line.iter_mut().enumerate() {
                        let ix =
                            (ox * g.stride[1] + j * g.dilation[1]) as isize - g.padding[1] as isize;
                        *v = if ix < 0 || ix >= w as isize {
                            T::zero()
                        } else {
                            src[ix as usize]
                        };
                    }
                }
                row += 1;
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column entry back into the image
/// position it was read from.
fn col2im<T: Element>(cols: &[T], d: &Dims, g: &Conv2dGeom, c0: usize, cg: usize, x: &mut [T]) {
    let ([h, w], [oh, ow], [kh, kw]) = (d.hw, d.out, d.k);
    let mut row = 0;
    for c in c0..c0 + cg {
        let plane = &mut x[c * h * w..(c + 1) * h * w];
        for i in 0..kh {
            for j in 0..kw {
                let src = &cols[row * oh * ow..(row + 1) * oh * ow];
                for oy in 0..oh {
                    let iy =
                        (oy * g.stride[0] + i * g.dilation[0]) as isize - g.padding[0] as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    for (ox, &v) in src[oy * ow..(oy + 1) * ow].iter().enumerate() {
                        let ix =
                            (ox * g.stride[1] + j * g.dilation[1]) as isize - g.padding[1] as isize;
                        if ix >= 0 && ix < w as isize {
                            dst[ix as usize] = dst[ix as usize] + v;
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// `y = conv(x, w)`: `x` is `(n, c, h, w)`, `w` is `(o, c/g, kh, kw)`, `y`
/// is `(n, o, oh, ow)`. Shapes are checked by the op.
pub(crate) fn forward<T: Element>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    d: &Dims,
    g: &Conv2dGeom,
) -> Tensor<T> {
    let (cg, og, rows, pix) = d.per_group(g);
    // Pooled buffers (Tensor::zeros), not fresh vectors: a training loop
    // reuses them instead of faulting new pages in every step.
    let mut y = Tensor::zeros([d.n, d.o, d.out[0], d.out[1]]);
    let mut cols = Tensor::zeros([rows * pix]);
    let image = d.c * d.hw[0] * d.hw[1];
    for n in 0..d.n {
        let xn = &x.data()[n * image..(n + 1) * image];
        for gi in 0..g.groups {
            im2col(xn, d, g, gi * cg, cg, cols.data_mut());
            let wg = &w.data()[gi * og * rows..(gi + 1) * og * rows];
            let part = Tensor::product(
                &[og, pix],
                (og, rows, pix),
                wg,
                (rows as isize, 1),
                cols.data(),
                (pix as isize, 1),
            );
            let at = (n * d.o + gi * og) * pix;
            y.data_mut()[at..at + og * pix].copy_from_slice(part.data());
        }
    }
    y
}

/// The adjoint in the input: `dx = convᵀ(gy, w)`, `(n, c, h, w)` from
/// `gy` `(n, o, oh, ow)` (a transposed convolution).
pub(crate) fn input_grad<T: Element>(
    gy: &Tensor<T>,
    w: &Tensor<T>,
    d: &Dims,
    g: &Conv2dGeom,
) -> Tensor<T> {
    let (cg, og, rows, pix) = d.per_group(g);
    let image = d.c * d.hw[0] * d.hw[1];
    let mut out = Tensor::zeros([d.n, d.c, d.hw[0], d.hw[1]]);
    let dx = out.data_mut();
    for n in 0..d.n {
        for gi in 0..g.groups {
            let wg = &w.data()[gi * og * rows..(gi + 1) * og * rows];
            let at = (n * d.o + gi * og) * pix;
            let gg = &gy.data()[at..at + og * pix];
            // (rows × og) · (og × pix): the weight block read transposed.
            let cols = Tensor::product(
                &[rows, pix],
                (rows, og, pix),
                wg,
                (1, rows as isize),
                gg,
                (pix as isize, 1),
            );
            col2im(
                cols.data(),
                d,
                g,
                gi * cg,
                cg,
                &mut dx[n * image..(n + 1) * image],
            );
        }
    }
    out
}

/// The adjoint in the weight: `dw = Σ_images gy · colsᵀ`, `(o, c/g, kh, kw)`.
pub(crate) fn weight_grad<T: Element>(
    x: &Tensor<T>,
    gy: &Tensor<T>,
    d: &Dims,
    g: &Conv2dGeom,
) -> Tensor<T> {
    let (cg, og, rows, pix) = d.per_group(g);
    let image = d.c * d.hw[0] * d.hw[1];
    let mut out = Tensor::zeros([d.o, d.c / g.groups, d.k[0], d.k[1]]);
    let mut cols = Tensor::zeros([rows * pix]);
    for n in 0..d.n {
        let xn = &x.data()[n * image..(n + 1) * image];
        for gi in 0..g.groups {
            im2col(xn, d, g, gi * cg, cg, cols.data_mut());
            let at = (n * d.o + gi * og) * pix;
            let gg = &gy.data()[at..at + og * pix];
            // (og × pix) · (pix × rows): the columns read transposed.
            let part = Tensor::product(
                &[og, rows],
                (og, pix, rows),
                gg,
                (pix as isize, 1),
                cols.data(),
                (1, pix as isize),
            );
            for (acc, &v) in out.data_mut()[gi * og * rows..(gi + 1) * og * rows]
                .iter_mut()
                .zip(part.data())
            {
                *acc = *acc + v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one multiply-add at a time.
    fn direct(x: &Tensor<f64>, w: &Tensor<f64>, d: &Dims, g: &Conv2dGeom) -> Tensor<f64> {
        let (cg, og, _, _) = d.per_group(g);
        Tensor::from_fn([d.n, d.o, d.out[0], d.out[1]], |i| {
            let (n, o, oy, ox) = (i[0], i[1], i[2], i[3]);
            let gi = o / og;
            let mut s = 0.0;
            for c in 0..cg {
                for ky in 0..d.k[0] {
                    for kx in 0..d.k[1] {
                        let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize
                            - g.padding[0] as isize;
                        let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize
                            - g.padding[1] as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < d.hw[0] && (ix as usize) < d.hw[1]
                        {
                            s += x.get(&[n, gi * cg + c, iy as usize, ix as usize])
                                * w.get(&[o, c, ky, kx]);
                        }
                    }
                }
            }
            s
        })
    }

    fn case(stride: [usize; 2], padding: [usize; 2], dilation: [usize; 2], groups: usize) {
        let g = Conv2dGeom {
            stride,
            padding,
            dilation,
            groups,
        };
        let (n, c, o, hw, k) = (2, 2 * groups, 3 * groups, [7, 6], [3, 2]);
        let out = [
            g.out_len(0, hw[0], k[0]).unwrap(),
            g.out_len(1, hw[1], k[1]).unwrap(),
        ];
        let d = Dims {
            n,
            c,
            o,
            hw,
            out,
            k,
        };
        let x = Tensor::<f64>::rand_uniform([n, c, hw[0], hw[1]], -1.0, 1.0, 1);
        let w = Tensor::<f64>::rand_uniform([o, c / groups, k[0], k[1]], -1.0, 1.0, 2);
        let y = forward(&x, &w, &d, &g);
        assert!(y.max_abs_diff(&direct(&x, &w, &d, &g)) < 1e-12, "{g:?}");
        // Adjoints: ⟨conv(x, w), u⟩ = ⟨x, convᵀ(u, w)⟩ = ⟨w, wgrad(x, u)⟩.
        let u = Tensor::<f64>::rand_uniform(y.shape(), -1.0, 1.0, 3);
        let dot = |a: &Tensor<f64>, b: &Tensor<f64>| crate::optim::dot(a.data(), b.data());
        let lhs = dot(&y, &u);
        assert!(
            (lhs - dot(&x, &input_grad(&u, &w, &d, &g))).abs() < 1e-10,
            "{g:?}"
        );
        assert!(
            (lhs - dot(&w, &weight_grad(&x, &u, &d, &g))).abs() < 1e-10,
            "{g:?}"
        );
    }

    #[test]
    fn the_kernels_match_the_definition_and_are_adjoint() {
        case([1, 1], [0, 0], [1, 1], 1);
        case([2, 1], [1, 2], [1, 1], 1);
        case([1, 2], [2, 1], [2, 1], 1);
        case([2, 2], [1, 1], [1, 2], 2);
        case([1, 1], [1, 1], [1, 1], 3);
    }
}
