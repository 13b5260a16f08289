//! Direct 2-d convolution at unit column stride, for few input channels
//! per group: im2col would copy each pixel `kh·kw` times and hand the GEMM
//! a product whose inner dimension (`c/g·kh·kw`, 9 for a grey image) is
//! too short to pay for its packing; the two measured 6.7 ms for one
//! 16×27×102400 product where this kernel reads the image once.
//!
//! The kernel keeps a block of [`OB`] output channels by [`PX`] pixels of
//! one output row in registers and sweeps every tap over it: per tap one
//! load of `PX` input pixels and `OB` weights for `OB·PX` multiply-adds.
//! Inputs are read from a zero-padded copy of the planes (so no tap needs
//! a bounds test), with [`PX`] spare elements at the end for the last
//! block's overhang.

use super::Element;
use std::mem::MaybeUninit;

/// Output channels per register block.
const OB: usize = 4;
/// Output pixels per register block (two AVX2 vectors of `f32`).
const PX: usize = 16;

/// A padded copy's length: `planes` planes of `hp × wp` and the overhang.
pub(crate) fn padded_len(planes: usize, [hp, wp]: [usize; 2]) -> usize {
    planes * hp * wp + PX
}

/// Copies `planes` planes of `h × w` from `x` into `out`, each surrounded
/// by `pad` zeros (rows, columns), and returns the copy (padded size
/// `(h + 2·pad[0]) × (w + 2·pad[1])`, then the zero overhang).
pub(crate) fn pad_planes<'a, T: Element>(
    x: &[T],
    planes: usize,
    [h, w]: [usize; 2],
    pad: [usize; 2],
    out: &'a mut [MaybeUninit<T>],
) -> &'a [T] {
    let (hp, wp) = (h + 2 * pad[0], w + 2 * pad[1]);
    let n = padded_len(planes, [hp, wp]);
    let zero = MaybeUninit::new(T::zero());
    let out = &mut out[..n];
    for c in 0..planes {
        let dst = &mut out[c * hp * wp..(c + 1) * hp * wp];
        dst[..pad[0] * wp].fill(zero);
        dst[(pad[0] + h) * wp..].fill(zero);
        for y in 0..h {
            let line = &mut dst[(pad[0] + y) * wp..(pad[0] + y + 1) * wp];
            line[..pad[1]].fill(zero);
            line[pad[1] + w..].fill(zero);
            let src = &x[(c * h + y) * w..(c * h + y + 1) * w];
            for (d, &s) in line[pad[1]..pad[1] + w].iter_mut().zip(src) {
                *d = MaybeUninit::new(s);
            }
        }
    }
    out[planes * hp * wp..].fill(zero);
    // SAFETY: every element of `out` was written above.
    unsafe { super::conv::assume_init(out) }
}

/// The length of [`pack_weights`]' output.
pub(crate) fn packed_len(cout: usize, taps: usize) -> usize {
    cout.div_ceil(OB) * taps * OB
}

/// Weights in the kernel's order: per block of [`OB`] output channels,
/// per tap, the block's `OB` weights side by side (zeros past `cout`).
/// `weight(o, t)` is output channel `o`'s weight at tap `t`.
pub(crate) fn pack_weights<T: Element>(
    cout: usize,
    taps: usize,
    weight: impl Fn(usize, usize) -> T,
    out: &mut [MaybeUninit<T>],
) {
    let n = packed_len(cout, taps);
    let out = &mut out[..n];
    for (i, v) in out.iter_mut().enumerate() {
        let (block, t, lane) = (i / (taps * OB), i / OB % taps, i % OB);
        let o = block * OB + lane;
        *v = MaybeUninit::new(if o < cout { weight(o, t) } else { T::zero() });
    }
}

/// The geometry of one direct convolution of a padded image.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Direct {
    /// Input channels (planes of the padded copy).
    pub(crate) cin: usize,
    /// Output channels.
    pub(crate) cout: usize,
    /// Padded plane size.
    pub(crate) padded: [usize; 2],
    /// Kernel size and dilation.
    pub(crate) k: [usize; 2],
    pub(crate) dilation: [usize; 2],
    /// Row stride (the column stride is 1).
    pub(crate) stride_y: usize,
    /// Output plane size.
    pub(crate) out: [usize; 2],
}

impl Direct {
    /// Whether every tap of every output reads inside the padded planes
    /// (the kernels read through raw pointers).
    fn fits(&self) -> bool {
        let span = |a: usize| self.dilation[a] * (self.k[a] - 1);
        self.out[0] > 0
            && self.out[1] > 0
            && (self.out[0] - 1) * self.stride_y + span(0) < self.padded[0]
            && self.out[1] + span(1) <= self.padded[1]
    }
}

/// Whether [`conv`] runs on this machine for `T`: `f32` with AVX2 and FMA
/// (the kernel is written for them; LLVM would not keep a generic
/// version's accumulators in registers). Elsewhere the callers take
/// im2col and the GEMM.
pub(crate) fn available<T: Element>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::any::TypeId;
        TypeId::of::<T>() == TypeId::of::<f32>()
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `y[o, oy, ox] = Σ_{c, ky, kx} w[o, c, ky, kx] · xp[c, oy·sy + ky·dy, ox + kx·dx]`
/// for one image: `xp` from [`pad_planes`], `wt` from [`pack_weights`]
/// with taps `(c, ky, kx)`, `y` the `cout × oh × ow` output, all written.
/// Only where [`available`] says so.
pub(crate) fn conv<T: Element>(xp: &[T], wt: &[T], g: &Direct, y: &mut [MaybeUninit<T>]) {
    let taps = g.cin * g.k[0] * g.k[1];
    assert!(xp.len() >= padded_len(g.cin, g.padded) && y.len() >= g.cout * g.out[0] * g.out[1]);
    assert!(
        wt.len() >= packed_len(g.cout, taps) && available::<T>() && g.fits(),
        "{g:?}"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available` checked that T is f32 (so the casts only rename
    // the type) and that the CPU has AVX2 and FMA; the lengths were
    // checked above, and the kernel reads and writes within them.
    unsafe {
        conv_avx2(
            &*(xp as *const [T] as *const [f32]),
            &*(wt as *const [T] as *const [f32]),
            g,
            &mut *(y as *mut [MaybeUninit<T>] as *mut [MaybeUninit<f32>]),
        )
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_avx2(xp: &[f32], wt: &[f32], g: &Direct, y: &mut [MaybeUninit<f32>]) {
    use std::arch::x86_64::*;
    let ([hp, wp], [kh, kw], [dy, dx]) = (g.padded, g.k, g.dilation);
    let [oh, ow] = g.out;
    let taps = g.cin * kh * kw;
    // Rows outermost: the input rows one output row reads stay in the
    // cache while every block of output channels sweeps them.
    for oy in 0..oh {
        for (block, wb) in wt.chunks_exact(taps * OB).enumerate() {
            let o0 = block * OB;
            let lanes = OB.min(g.cout - o0);
            for ox0 in (0..ow).step_by(PX) {
                let mut acc = [_mm256_setzero_ps(); 2 * OB];
                let mut w = wb.as_ptr();
                for c in 0..g.cin {
                    for ky in 0..kh {
                        let row = (c * hp + oy * g.stride_y + ky * dy) * wp + ox0;
                        for kx in 0..kw {
                            // In bounds: the last block's overhang stays in
                            // the padded copy's spare PX elements.
                            let s = xp.as_ptr().add(row + kx * dx);
                            let (s0, s1) = (_mm256_loadu_ps(s), _mm256_loadu_ps(s.add(8)));
                            for o in 0..OB {
                                let wo = _mm256_broadcast_ss(&*w.add(o));
                                acc[2 * o] = _mm256_fmadd_ps(wo, s0, acc[2 * o]);
                                acc[2 * o + 1] = _mm256_fmadd_ps(wo, s1, acc[2 * o + 1]);
                            }
                            w = w.add(OB);
                        }
                    }
                }
                let px = PX.min(ow - ox0);
                for o in 0..lanes {
                    let at = ((o0 + o) * oh + oy) * ow + ox0;
                    if px == PX {
                        let d = y[at..at + PX].as_mut_ptr().cast::<f32>();
                        _mm256_storeu_ps(d, acc[2 * o]);
                        _mm256_storeu_ps(d.add(8), acc[2 * o + 1]);
                        continue;
                    }
                    let mut out = [0f32; PX];
                    _mm256_storeu_ps(out.as_mut_ptr(), acc[2 * o]);
                    _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[2 * o + 1]);
                    for (d, &v) in y[at..at + px].iter_mut().zip(&out) {
                        d.write(v);
                    }
                }
            }
        }
    }
}

/// `dw[o, t] += Σ_{oy, ox} gy[o, oy, ox] · xp[c, oy·sy + ky·dy, ox + kx·dx]`
/// for one image, `t = (c, ky, kx)`: the weight gradient of [`conv`],
/// `gy` the `cout × oh × ow` output gradient, `dw` `cout × taps`. Only
/// where [`available`] says so.
pub(crate) fn weight_grad<T: Element>(xp: &[T], gy: &[T], g: &Direct, dw: &mut [T]) {
    let taps = g.cin * g.k[0] * g.k[1];
    assert!(xp.len() >= padded_len(g.cin, g.padded) && gy.len() >= g.cout * g.out[0] * g.out[1]);
    assert!(
        dw.len() >= g.cout * taps && available::<T>() && g.fits(),
        "{g:?}"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `conv`.
    unsafe {
        weight_grad_avx2(
            &*(xp as *const [T] as *const [f32]),
            &*(gy as *const [T] as *const [f32]),
            g,
            &mut *(dw as *mut [T] as *mut [f32]),
        )
    }
}

/// Two taps by [`OB`] output channels of sums in registers, one output
/// row at a time: per 8 pixels, `OB` loads of `gy` and two of the input
/// for `2·OB` multiply-adds. The sums of a block live in `acc` (in the
/// cache) between rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_grad_avx2(xp: &[f32], gy: &[f32], g: &Direct, dw: &mut [f32]) {
    use std::arch::x86_64::*;
    let ([hp, wp], [kh, kw], [dy, dx]) = (g.padded, g.k, g.dilation);
    let [oh, ow] = g.out;
    let taps = g.cin * kh * kw;
    // Where tap t starts in the padded copy, relative to the output pixel.
    let start = |t: usize| (t / (kh * kw) * hp + t / kw % kh * dy) * wp + t % kw * dx;
    let pairs = taps.div_ceil(2);
    let mut acc = vec![_mm256_setzero_ps(); pairs * 2 * OB];
    // Lanes of the last chunk of a row that lie inside it.
    let tail = ow % 8;
    let mask = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail as i32), mask);
    for o0 in (0..g.cout).step_by(OB) {
        let lanes = OB.min(g.cout - o0);
        acc.fill(_mm256_setzero_ps());
        for oy in 0..oh {
            // Rows past `cout` read channel `o0` again; their sums are dropped.
            let grow: [*const f32; OB] = std::array::from_fn(|o| {
                gy.as_ptr()
                    .add(((o0 + if o < lanes { o } else { 0 }) * oh + oy) * ow)
            });
            let base = oy * g.stride_y * wp;
            for p in 0..pairs {
                let (t0, t1) = (2 * p, (2 * p + 1).min(taps - 1));
                let (s0, s1) = (
                    xp.as_ptr().add(base + start(t0)),
                    xp.as_ptr().add(base + start(t1)),
                );
                let a = &mut acc[p * 2 * OB..(p + 1) * 2 * OB];
                let mut r: [__m256; 2 * OB] = (&*a).try_into().unwrap();
                let mut ox = 0;
                while ox < ow {
                    // The last chunk of a row reads its lanes only (an
                    // infinity in the next row must not turn into NaN).
                    let load = |p: *const f32| {
                        if ox + 8 <= ow {
                            _mm256_loadu_ps(p)
                        } else {
                            _mm256_maskload_ps(p, mask)
                        }
                    };
                    let gv: [__m256; OB] = std::array::from_fn(|o| load(grow[o].add(ox)));
                    let (x0, x1) = (load(s0.add(ox)), load(s1.add(ox)));
                    for o in 0..OB {
                        r[o] = _mm256_fmadd_ps(gv[o], x0, r[o]);
                        r[OB + o] = _mm256_fmadd_ps(gv[o], x1, r[OB + o]);
                    }
                    ox += 8;
                }
                a.copy_from_slice(&r);
            }
        }
        let sum = |v: __m256| {
            let mut l = [0f32; 8];
            _mm256_storeu_ps(l.as_mut_ptr(), v);
            l.iter().sum::<f32>()
        };
        for p in 0..pairs {
            for (j, t) in [2 * p, 2 * p + 1].into_iter().enumerate() {
                if t >= taps {
                    continue;
                }
                for o in 0..lanes {
                    dw[(o0 + o) * taps + t] += sum(acc[p * 2 * OB + j * OB + o]);
                }
            }
        }
    }
}
