//! The elementwise loops, compiled also for AVX2 and AVX-512 and picked at
//! run time (the `multiversion` crate): the x86-64 baseline handles two
//! `f64` or four `f32` per instruction, AVX-512 eight or sixteen. Same
//! results bit for bit: Rust never fuses a multiply and an add on its own,
//! and the closures are the same code in every version.

use multiversion::multiversion;
use std::mem::MaybeUninit;

/// Writes `f(x[i])` to `out[i]`, every one of them (equal lengths).
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn map_write<T: Copy, F: Fn(T) -> T>(out: &mut [MaybeUninit<T>], x: &[T], f: &F) {
    assert_eq!(out.len(), x.len());
    for (o, &p) in out.iter_mut().zip(x) {
        o.write(f(p));
    }
}

/// Writes `f(x[i], y[i])` to `out[i]`, every one of them (equal lengths).
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn zip_write<T: Copy, F: Fn(T, T) -> T>(
    out: &mut [MaybeUninit<T>],
    x: &[T],
    y: &[T],
    f: &F,
) {
    assert!(out.len() == x.len() && x.len() == y.len());
    for ((o, &p), &q) in out.iter_mut().zip(x).zip(y) {
        o.write(f(p, q));
    }
}

/// Writes `g[i] · local([x[i] for x in xs])` to `out[i]`, every one of them
/// (equal lengths): the chain rule for an elementwise op in one loop, its
/// local derivative evaluated element by element.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn chain_write<
    T: Copy + std::ops::Mul<Output = T>,
    F: Fn([T; N]) -> T,
    const N: usize,
>(
    out: &mut [MaybeUninit<T>],
    g: &[T],
    xs: [&[T]; N],
    local: &F,
) {
    let n = out.len();
    assert!(g.len() == n && xs.iter().all(|x| x.len() == n));
    // Slices cut to `n` let the indexing below go unchecked.
    let (g, xs) = (&g[..n], xs.map(|x| &x[..n]));
    for (i, o) in out.iter_mut().enumerate() {
        o.write(g[i] * local(xs.map(|x| x[i])));
    }
}

/// `dst[i] += src[i]` (equal lengths).
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn add_to<T: Copy + std::ops::Add<Output = T>>(dst: &mut [T], src: &[T]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = *d + v;
    }
}

/// Writes `f(x[i], y[i mod len y])` to `out[i]`: `y` repeated along `x`'s
/// rows (a bias added to every row). With `swap`, `f(y[i mod len y], x[i])`
/// instead. `x` holds whole rows and `out` as many elements.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn zip_rows_write<T: Copy, F: Fn(T, T) -> T>(
    out: &mut [MaybeUninit<T>],
    x: &[T],
    y: &[T],
    swap: bool,
    f: &F,
) {
    assert!(out.len() == x.len() && x.len().is_multiple_of(y.len()));
    for (o, row) in out.chunks_exact_mut(y.len()).zip(x.chunks_exact(y.len())) {
        if swap {
            for ((o, &p), &q) in o.iter_mut().zip(y).zip(row) {
                o.write(f(p, q));
            }
        } else {
            for ((o, &p), &q) in o.iter_mut().zip(row).zip(y) {
                o.write(f(p, q));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `n` values a writing loop produces.
    fn written(n: usize, write: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
        let mut v = Vec::with_capacity(n);
        write(&mut v.spare_capacity_mut()[..n]);
        // SAFETY: each loop above asserts that it writes all of `out`.
        unsafe { v.set_len(n) };
        v
    }

    /// The versions picked at run time give the same bits as a plain loop,
    /// on lengths that leave a remainder after the widest vectors.
    #[test]
    fn dispatched_loops_match_plain_loops_exactly() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() + 1.5).collect();
        let y: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let f = |p: f32, q: f32| p.sqrt() / (q * q + 0.5) - p * q;
        let out = written(37, |o| zip_write(o, &x, &y, &f));
        let want: Vec<f32> = x.iter().zip(&y).map(|(&p, &q)| f(p, q)).collect();
        assert_eq!(out, want);

        let out = written(37, |o| map_write(o, &x, &|p| f(p, 0.25)));
        let want: Vec<f32> = x.iter().map(|&p| f(p, 0.25)).collect();
        assert_eq!(out, want);

        // 36 entries as 4 rows of 9, against a row of 9, both ways round.
        let (big, row) = (&x[..36], &y[..9]);
        let out = written(36, |o| zip_rows_write(o, big, row, false, &f));
        let want: Vec<f32> = big
            .iter()
            .enumerate()
            .map(|(i, &p)| f(p, row[i % 9]))
            .collect();
        assert_eq!(out, want);
        let out = written(36, |o| zip_rows_write(o, big, row, true, &f));
        let want: Vec<f32> = big
            .iter()
            .enumerate()
            .map(|(i, &q)| f(row[i % 9], q))
            .collect();
        assert_eq!(out, want);

        let local = |[p, q]: [f32; 2]| 1.0 - p * q;
        let out = written(37, |o| chain_write(o, &y, [&x, &x], &local));
        let want: Vec<f32> = x.iter().zip(&y).map(|(&p, &g)| g * local([p, p])).collect();
        assert_eq!(out, want);

        let mut acc = x.clone();
        add_to(&mut acc, &y);
        let want: Vec<f32> = x.iter().zip(&y).map(|(&p, &q)| p + q).collect();
        assert_eq!(acc, want);
    }

    #[test]
    #[should_panic]
    fn a_short_output_is_refused() {
        written(3, |o| map_write(&mut o[..2], &[1.0, 2.0, 3.0], &|p| p));
    }
}

/// The elements summed in 16 interleaved lanes (element `i` into lane
/// `i % 16`): independent adds, so the loop runs as wide as the vectors.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn lane_sums<T: Copy + std::ops::Add<Output = T>>(xs: &[T], zero: T) -> [T; 16] {
    let mut lanes = [zero; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        let c: &[T; 16] = c.try_into().expect("chunks of 16");
        for k in 0..16 {
            lanes[k] = lanes[k] + c[k];
        }
    }
    for (l, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *l = *l + x;
    }
    lanes
}
