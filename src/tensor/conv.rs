//! 2-d convolution kernels (NCHW, PyTorch's semantics) through im2col and
//! the GEMM: the forward, its adjoint in the input (a transposed
//! convolution) and in the weight. Each image and group is one product of
//! the group's weight rows with the image's columns, read through strides
//! without copying the weight, written straight into the output. The
//! images are split between the two threads; column buffers come from the
//! pool, so a training loop stops allocating after its first step. A 1×1
//! kernel with stride 1 and no padding reads the image as its own columns.

use super::conv_direct::{self as direct, Direct};
use super::element::gemm_add;
use super::pool::Buffer;
use super::{parallel, Element, Shape, Tensor};
use std::mem::MaybeUninit;
use std::ops::Range;

/// Whether the direct kernel beats im2col and the GEMM for a product with
/// inner dimension `inner` (taps per output in the forward, output
/// channels in the input gradient) writing `lanes` planes of `plane`
/// pixels an image. Measured (W6): on large planes, where the GEMM's
/// output and columns leave the cache, with a short inner dimension (W6c
/// forward 17 → 3.5 ms, its input gradient 14 → 4 ms); at 28×28 and
/// below the GEMM stayed ahead (W6a forward 0.35 ms against 0.52), and
/// with a single output plane the kernel fills one of its four lanes.
fn direct_pays(inner: usize, lanes: usize, plane: [usize; 2], d: &Dims) -> bool {
    inner <= 64 && lanes >= 2 && plane[0] * plane[1] > 1024 && d.k != [1, 1]
}

/// Convolutions of at least this many multiply-adds split their images
/// between the two threads (as the GEMM splits its rows).
const SPLIT_MACS: usize = 1 << 21;

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
    fn image(&self) -> usize {
        self.c * self.hw[0] * self.hw[1]
    }

    fn macs(&self, g: &Conv2dGeom) -> usize {
        let (_, _, rows, pix) = self.per_group(g);
        self.n * self.o * rows * pix
    }

    /// The direct kernel's geometry for one group of this convolution.
    fn direct(&self, g: &Conv2dGeom) -> Direct {
        let (cg, og, _, _) = self.per_group(g);
        Direct {
            cin: cg,
            cout: og,
            padded: [self.hw[0] + 2 * g.padding[0], self.hw[1] + 2 * g.padding[1]],
            k: self.k,
            dilation: g.dilation,
            stride_y: g.stride[0],
            out: self.out,
        }
    }

    /// Whether the columns are the image itself: a 1×1 kernel at stride 1
    /// with no padding (and no rows a transposed convolution's
    /// `output_padding` added).
    fn pointwise(&self, g: &Conv2dGeom) -> bool {
        self.k == [1, 1] && g.stride == [1, 1] && g.padding == [0, 0] && self.out == self.hw
    }

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

/// The output positions `lo..hi` (of `out`) whose tap at offset `off`
/// (kernel index times dilation, minus padding) reads inside `0..n` with
/// stride `s`: the rest read zeros.
fn inside(out: usize, n: usize, s: usize, off: isize) -> Range<usize> {
    // ox·s + off ≥ 0 and ox·s + off < n, in whole output positions.
    let lo = if off >= 0 {
        0
    } else {
        ((-off) as usize).div_ceil(s)
    };
    let end = n as isize - off;
    let hi = if end <= 0 {
        0
    } else {
        (end as usize).div_ceil(s)
    };
    lo.min(out)..hi.min(out).max(lo.min(out))
}

/// One column row of im2col: tap `(i, j)` of input channel `c`.
struct Tap {
    /// The row's index among the columns.
    row: usize,
    c: usize,
    /// Output rows whose tap reads inside the image; the first reads input
    /// row `iy_first`, the next ones `sy` apart.
    ys: Range<usize>,
    iy_first: usize,
    /// Output columns whose tap reads inside; the first reads input column
    /// `first`, the next ones `sx` apart.
    xs: Range<usize>,
    first: usize,
}

/// The column rows of channels `c0..c0+cg`, in im2col's order, with the
/// output positions each reads inside the image (the rest read padding):
/// the geometry [`im2col`] and its adjoint [`col2im`] share.
fn taps(d: &Dims, g: &Conv2dGeom, c0: usize, cg: usize, mut f: impl FnMut(Tap)) {
    let ([h, w], [oh, ow], [kh, kw]) = (d.hw, d.out, d.k);
    let [sy, sx] = g.stride;
    let mut row = 0;
    for c in c0..c0 + cg {
        for i in 0..kh {
            let offy = (i * g.dilation[0]) as isize - g.padding[0] as isize;
            let ys = inside(oh, h, sy, offy);
            for j in 0..kw {
                let offx = (j * g.dilation[1]) as isize - g.padding[1] as isize;
                let xs = inside(ow, w, sx, offx);
                // Inside the image the taps land at or past 0 (an empty
                // range reads nothing: 0 stands in).
                let start = |r: &Range<usize>, s: usize, off: isize| {
                    if r.is_empty() {
                        0
                    } else {
                        ((r.start * s) as isize + off) as usize
                    }
                };
                let (iy_first, first) = (start(&ys, sy, offy), start(&xs, sx, offx));
                f(Tap {
                    row,
                    c,
                    ys: ys.clone(),
                    iy_first,
                    xs,
                    first,
                });
                row += 1;
            }
        }
    }
}

/// Fills `cols` (`cg·kh·kw` rows of `oh·ow`) with the windows of channels
/// `c0..c0+cg` of one image `x` (`c × h × w`), zeros where a tap falls in
/// the padding, and returns it initialised.
fn im2col<'a, T: Element>(
    x: &[T],
    d: &Dims,
    g: &Conv2dGeom,
    c0: usize,
    cg: usize,
    cols: &'a mut [MaybeUninit<T>],
) -> &'a [T] {
    let ([h, w], [oh, ow]) = (d.hw, d.out);
    let [sy, sx] = g.stride;
    let zero = MaybeUninit::new(T::zero());
    let mut rows = 0;
    taps(d, g, c0, cg, |t| {
        let plane = &x[t.c * h * w..(t.c + 1) * h * w];
        let out = &mut cols[t.row * oh * ow..(t.row + 1) * oh * ow];
        out[..t.ys.start * ow].fill(zero);
        out[t.ys.end * ow..].fill(zero);
        for oy in t.ys.clone() {
            let iy = t.iy_first + (oy - t.ys.start) * sy;
            let src = &plane[iy * w..(iy + 1) * w];
            let line = &mut out[oy * ow..(oy + 1) * ow];
            line[..t.xs.start].fill(zero);
            line[t.xs.end..].fill(zero);
            if sx == 1 {
                let src = &src[t.first..t.first + t.xs.len()];
                for (v, &s) in line[t.xs.clone()].iter_mut().zip(src) {
                    *v = MaybeUninit::new(s);
                }
            } else {
                for (k, v) in line[t.xs.clone()].iter_mut().enumerate() {
                    *v = MaybeUninit::new(src[t.first + k * sx]);
                }
            }
        }
        rows += 1;
    });
    let n = rows * oh * ow;
    // SAFETY: every one of the n elements was written above.
    unsafe { assume_init(&cols[..n]) }
}

/// `s`, every element of which has been written, as values.
///
/// # Safety
/// Every element of `s` must have been written.
pub(crate) unsafe fn assume_init<T>(s: &[MaybeUninit<T>]) -> &[T] {
    // SAFETY: `MaybeUninit<T>` has `T`'s layout; the caller vouches that
    // the contents are initialised.
    unsafe { &*(s as *const [MaybeUninit<T>] as *const [T]) }
}

/// The adjoint of [`im2col`]: adds each column entry back into the image
/// position it was read from.
fn col2im<T: Element>(cols: &[T], d: &Dims, g: &Conv2dGeom, c0: usize, cg: usize, x: &mut [T]) {
    let ([h, w], [oh, ow]) = (d.hw, d.out);
    let [sy, sx] = g.stride;
    taps(d, g, c0, cg, |t| {
        let plane = &mut x[t.c * h * w..(t.c + 1) * h * w];
        let src = &cols[t.row * oh * ow..(t.row + 1) * oh * ow];
        for oy in t.ys.clone() {
            let iy = t.iy_first + (oy - t.ys.start) * sy;
            let dst = &mut plane[iy * w..(iy + 1) * w];
            let line = &src[oy * ow + t.xs.start..oy * ow + t.xs.end];
            if sx == 1 {
                for (d, &v) in dst[t.first..t.first + line.len()].iter_mut().zip(line) {
                    *d = *d + v;
                }
            } else {
                for (k, &v) in line.iter().enumerate() {
                    let d = &mut dst[t.first + k * sx];
                    *d = *d + v;
                }
            }
        }
    });
}

/// Runs `f(images, out)` on all `n` images, or on two halves of them in
/// parallel when the convolution is large enough, `out` split at the
/// first half's end (`per_image` elements an image).
fn by_image_halves<C: Send>(
    d: &Dims,
    g: &Conv2dGeom,
    out: &mut [C],
    per_image: usize,
    f: impl Fn(Range<usize>, &mut [C]) + Sync,
) {
    let n = d.n;
    if n < 2 || d.macs(g) < SPLIT_MACS || !parallel::two_threads() {
        return f(0..n, out);
    }
    let mid = n / 2;
    let (a, b) = out.split_at_mut(mid * per_image);
    parallel::join(|| f(0..mid, a), || f(mid..n, b));
}

/// The direct kernel over a range of images of `src` (each `groups`
/// groups of `k.cin` planes of `hw`, padded by `pad`): each group
/// convolved with the weights `weight(group)` gives, into `out` (which
/// starts at the range's first image), that group's `k.cout` planes.
#[allow(clippy::too_many_arguments)]
fn direct_images<T: Element, W: Fn(usize, usize) -> T>(
    range: Range<usize>,
    groups: usize,
    k: &Direct,
    src: &[T],
    [h, w]: [usize; 2],
    pad: [usize; 2],
    weight: &impl Fn(usize) -> W,
    out: &mut [MaybeUninit<T>],
) {
    let taps = k.cin * k.k[0] * k.k[1];
    let packed = direct::packed_len(k.cout, taps);
    let padded = direct::padded_len(k.cin, k.padded);
    let (plane, block) = (h * w, k.cout * k.out[0] * k.out[1]);
    Buffer::<T>::with_scratch(groups * packed + padded, |scratch| {
        let (wts, xs) = scratch.split_at_mut(groups * packed);
        for (gi, chunk) in wts.chunks_exact_mut(packed).enumerate() {
            direct::pack_weights(k.cout, taps, weight(gi), chunk);
        }
        // SAFETY: `pack_weights` wrote every chunk.
        let wts = unsafe { assume_init(wts) };
        for (j, n) in range.enumerate() {
            for gi in 0..groups {
                let at = (n * groups + gi) * k.cin * plane;
                let xp = direct::pad_planes(&src[at..at + k.cin * plane], k.cin, [h, w], pad, xs);
                let at = (j * groups + gi) * block;
                let wg = &wts[gi * packed..(gi + 1) * packed];
                direct::conv(xp, wg, k, &mut out[at..at + block]);
            }
        }
    })
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
    let (image, pointwise) = (d.image(), d.pointwise(g));
    let (x, w) = (x.data(), w.data());
    let total = d.n * d.o * pix;
    if g.stride[1] == 1 && direct_pays(rows, og, d.out, d) && direct::available::<T>() {
        let k = d.direct(g);
        let weight = |gi: usize| move |o: usize, t: usize| w[(gi * og + o) * rows + t];
        let images = |range: Range<usize>, y: &mut [MaybeUninit<T>]| {
            direct_images(range, g.groups, &k, x, d.hw, g.padding, &weight, y)
        };
        // SAFETY: `direct_images` writes every output block.
        let data =
            unsafe { Buffer::written(total, |y| by_image_halves(d, g, y, d.o * pix, images)) };
        return Tensor::from_parts(Shape::from_slice(&[d.n, d.o, d.out[0], d.out[1]]), data);
    }
    let images = |range: Range<usize>, y: &mut [MaybeUninit<T>]| {
        let scratch = if pointwise { 0 } else { rows * pix };
        Buffer::<T>::with_scratch(scratch, |cols| {
            for (k, n) in range.enumerate() {
                let xn = &x[n * image..(n + 1) * image];
                for gi in 0..g.groups {
                    let b = if pointwise {
                        &xn[gi * cg * pix..(gi + 1) * cg * pix]
                    } else {
                        im2col(xn, d, g, gi * cg, cg, cols)
                    };
                    let wg = &w[gi * og * rows..(gi + 1) * og * rows];
                    let at = (k * d.o + gi * og) * pix;
                    let yg = &mut y[at..at + og * pix];
                    T::gemm(
                        og,
                        rows,
                        pix,
                        wg,
                        (rows as isize, 1),
                        b,
                        (pix as isize, 1),
                        yg,
                    );
                }
            }
        })
    };
    // SAFETY: each image's each group block of the output is written by
    // exactly one product, and together they cover it.
    let data = unsafe { Buffer::written(total, |y| by_image_halves(d, g, y, d.o * pix, images)) };
    Tensor::from_parts(Shape::from_slice(&[d.n, d.o, d.out[0], d.out[1]]), data)
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
    let (image, pointwise) = (d.image(), d.pointwise(g));
    let (gy, w) = (gy.data(), w.data());
    let mut out = Tensor::zeros([d.n, d.c, d.hw[0], d.hw[1]]);
    // At stride 1 the adjoint is itself a convolution: of `gy` padded by
    // `dilation·(k - 1) - padding` with the kernel flipped and its channel
    // axes swapped.
    let pad = [0, 1].map(|a| (g.dilation[a] * (d.k[a] - 1)).checked_sub(g.padding[a]));
    if let ([Some(py), Some(px)], [1, 1]) = (pad, g.stride) {
        // Not with rows that `output_padding` added (no output maps there).
        let natural =
            (0..2).all(|a| d.out[a] + 2 * [py, px][a] == d.hw[a] + g.dilation[a] * (d.k[a] - 1));
        if natural && direct_pays(og, cg, d.hw, d) && direct::available::<T>() {
            let k = Direct {
                cin: og,
                cout: cg,
                padded: [d.out[0] + 2 * py, d.out[1] + 2 * px],
                k: d.k,
                dilation: g.dilation,
                stride_y: 1,
                out: d.hw,
            };
            let [kh, kw] = d.k;
            let weight = |gi: usize| {
                move |c: usize, t: usize| {
                    let (o, ky, kx) = (t / (kh * kw), t / kw % kh, t % kw);
                    w[(gi * og + o) * rows + (c * kh + kh - 1 - ky) * kw + kw - 1 - kx]
                }
            };
            let images = |range: Range<usize>, dx: &mut [T]| {
                direct_images(
                    range,
                    g.groups,
                    &k,
                    gy,
                    d.out,
                    [py, px],
                    &weight,
                    as_uninit(dx),
                )
            };
            by_image_halves(d, g, out.data_mut(), image, images);
            return out;
        }
    }
    let images = |range: Range<usize>, dx: &mut [T]| {
        let scratch = if pointwise { 0 } else { rows * pix };
        Buffer::<T>::with_scratch(scratch, |cols| {
            for (k, n) in range.enumerate() {
                let dxn = &mut dx[k * image..(k + 1) * image];
                for gi in 0..g.groups {
                    let wg = &w[gi * og * rows..(gi + 1) * og * rows];
                    let at = (n * d.o + gi * og) * pix;
                    let gg = &gy[at..at + og * pix];
                    // (rows × og) · (og × pix): the weight block read transposed.
                    let product = |c: &mut [MaybeUninit<T>]| {
                        T::gemm(
                            rows,
                            og,
                            pix,
                            wg,
                            (1, rows as isize),
                            gg,
                            (pix as isize, 1),
                            c,
                        )
                    };
                    if pointwise {
                        product(as_uninit(&mut dxn[gi * cg * pix..(gi + 1) * cg * pix]));
                    } else {
                        product(&mut cols[..rows * pix]);
                        // SAFETY: the product wrote all rows·pix elements.
                        let c = unsafe { assume_init(&cols[..rows * pix]) };
                        col2im(c, d, g, gi * cg, cg, dxn);
                    }
                }
            }
        })
    };
    by_image_halves(d, g, out.data_mut(), image, images);
    out
}

/// `s` as memory that a product may overwrite (it writes only values).
fn as_uninit<T>(s: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has `T`'s layout, and the one writer here
    // (`Element::gemm`) stores initialised values only.
    unsafe { &mut *(s as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// The adjoint in the weight: `dw = Σ_images gy · colsᵀ`, `(o, c/g, kh, kw)`.
pub(crate) fn weight_grad<T: Element>(
    x: &Tensor<T>,
    gy: &Tensor<T>,
    d: &Dims,
    g: &Conv2dGeom,
) -> Tensor<T> {
    let (cg, og, rows, pix) = d.per_group(g);
    let (image, pointwise) = (d.image(), d.pointwise(g));
    let (x, gy) = (x.data(), gy.data());
    let shape = [d.o, d.c / g.groups, d.k[0], d.k[1]];
    // The sum over one range of images, added into `dw`.
    let images = |range: Range<usize>, dw: &mut [T]| {
        let scratch = if pointwise { 0 } else { rows * pix };
        Buffer::<T>::with_scratch(scratch, |cols| {
            for n in range {
                let xn = &x[n * image..(n + 1) * image];
                for gi in 0..g.groups {
                    let b = if pointwise {
                        &xn[gi * cg * pix..(gi + 1) * cg * pix]
                    } else {
                        im2col(xn, d, g, gi * cg, cg, cols)
                    };
                    let at = (n * d.o + gi * og) * pix;
                    let gg = &gy[at..at + og * pix];
                    // (og × pix) · (pix × rows): the columns read transposed.
                    let dwg = &mut dw[gi * og * rows..(gi + 1) * og * rows];
                    gemm_add(
                        og,
                        pix,
                        rows,
                        gg,
                        (pix as isize, 1),
                        b,
                        (1, pix as isize),
                        dwg,
                    );
                }
            }
        })
    };
    let direct_k = d.direct(g);
    let plane = d.hw[0] * d.hw[1];
    // The same sums by the direct kernel (see `direct_pays`).
    let direct_images = |range: Range<usize>, dw: &mut [T]| {
        let padded = direct::padded_len(cg, direct_k.padded);
        Buffer::<T>::with_scratch(padded, |xs| {
            for n in range {
                for gi in 0..g.groups {
                    let at = n * image + gi * cg * plane;
                    let xp = direct::pad_planes(&x[at..at + cg * plane], cg, d.hw, g.padding, xs);
                    let at = (n * d.o + gi * og) * pix;
                    let dwg = &mut dw[gi * og * rows..(gi + 1) * og * rows];
                    direct::weight_grad(xp, &gy[at..at + og * pix], &direct_k, dwg);
                }
            }
        })
    };
    let use_direct =
        g.stride[1] == 1 && direct_pays(rows, og, d.out, d) && direct::available::<T>();
    let images = |range: Range<usize>, dw: &mut [T]| {
        if use_direct {
            direct_images(range, dw)
        } else {
            images(range, dw)
        }
    };
    let mut out = Tensor::zeros(shape);
    if d.n < 2 || d.macs(g) < SPLIT_MACS || !parallel::two_threads() {
        images(0..d.n, out.data_mut());
    } else {
        let mid = d.n / 2;
        let mut other = Tensor::zeros(shape);
        parallel::join(
            || images(0..mid, out.data_mut()),
            || images(mid..d.n, other.data_mut()),
        );
        super::simd::add_to(out.data_mut(), other.data());
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

    /// The f32 kernels (the direct ones on large planes, where this
    /// machine has AVX2) against the definition in f64.
    #[test]
    fn the_f32_kernels_match_the_definition_on_large_planes() {
        let cases = [
            ([1, 1], [1, 1], [1, 1], 1, 2, 3, [3, 3]),
            ([1, 1], [0, 2], [2, 1], 1, 3, 5, [3, 2]),
            ([2, 1], [1, 0], [1, 1], 2, 4, 6, [2, 3]),
            ([1, 1], [2, 2], [1, 2], 3, 3, 9, [5, 3]),
        ];
        for (stride, padding, dilation, groups, c, o, k) in cases {
            let g = Conv2dGeom {
                stride,
                padding,
                dilation,
                groups,
            };
            let (n, hw) = (3, [37, 45]);
            let out = [0, 1].map(|a| g.out_len(a, hw[a], k[a]).unwrap());
            let d = Dims {
                n,
                c,
                o,
                hw,
                out,
                k,
            };
            let x = Tensor::<f64>::rand_uniform([n, c, hw[0], hw[1]], -1.0, 1.0, 4);
            let w = Tensor::<f64>::rand_uniform([o, c / groups, k[0], k[1]], -1.0, 1.0, 5);
            let u = Tensor::<f64>::rand_uniform([n, o, out[0], out[1]], -1.0, 1.0, 6);
            let f32s = |t: &Tensor<f64>| t.cast::<f32>();
            let f64s = |t: &Tensor<f32>| t.cast::<f64>();
            let (x32, w32, u32) = (f32s(&x), f32s(&w), f32s(&u));
            let close = |what: &str, got: Tensor<f32>, want: Tensor<f64>| {
                let scale = want.data().iter().fold(1.0f64, |m, v| m.max(v.abs()));
                let err = f64s(&got).max_abs_diff(&want);
                assert!(err < 1e-4 * scale, "{what} {g:?}: {err} (scale {scale})");
            };
            close(
                "forward",
                forward(&x32, &w32, &d, &g),
                direct(&x, &w, &d, &g),
            );
            close(
                "input grad",
                input_grad(&u32, &w32, &d, &g),
                input_grad(&u, &w, &d, &g),
            );
            close(
                "weight grad",
                weight_grad(&x32, &u32, &d, &g),
                weight_grad(&x, &u, &d, &g),
            );
        }
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
