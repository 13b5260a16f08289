//! The elementwise loops, compiled also for AVX2 and AVX-512 and picked at
//! run time (the `multiversion` crate): the x86-64 baseline handles two
//! `f64` or four `f32` per instruction, AVX-512 eight or sixteen. Same
//! results bit for bit: Rust never fuses a multiply and an add on its own,
//! and the closures are the same code in every version.

use multiversion::multiversion;

/// Appends `f(x[i])` for every `i`.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn map_into<T: Copy, F: Fn(T) -> T>(out: &mut Vec<T>, x: &[T], f: &F) {
    out.extend(x.iter().map(|&p| f(p)));
}

/// Appends `f(x[i], y[i])` for every `i` (equal lengths).
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn zip_into<T: Copy, F: Fn(T, T) -> T>(out: &mut Vec<T>, x: &[T], y: &[T], f: &F) {
    out.extend(x.iter().zip(y).map(|(&p, &q)| f(p, q)));
}

/// `dst[i] += src[i]` (equal lengths).
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn add_to<T: Copy + std::ops::Add<Output = T>>(dst: &mut [T], src: &[T]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = *d + v;
    }
}

/// Appends `f(x[i], y[i mod len y])`: `y` repeated along `x`'s rows (a bias
/// added to every row). With `swap`, `f(y[i mod len y], x[i])` instead.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub(crate) fn zip_rows_into<T: Copy, F: Fn(T, T) -> T>(
    out: &mut Vec<T>,
    x: &[T],
    y: &[T],
    swap: bool,
    f: &F,
) {
    for row in x.chunks_exact(y.len()) {
        if swap {
            out.extend(y.iter().zip(row).map(|(&p, &q)| f(p, q)));
        } else {
            out.extend(row.iter().zip(y).map(|(&p, &q)| f(p, q)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions picked at run time give the same bits as a plain loop,
    /// on lengths that leave a remainder after the widest vectors.
    #[test]
    fn dispatched_loops_match_plain_loops_exactly() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() + 1.5).collect();
        let y: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let f = |p: f32, q: f32| p.sqrt() / (q * q + 0.5) - p * q;
        let mut out = Vec::new();
        zip_into(&mut out, &x, &y, &f);
        let want: Vec<f32> = x.iter().zip(&y).map(|(&p, &q)| f(p, q)).collect();
        assert_eq!(out, want);

        out.clear();
        map_into(&mut out, &x, &|p| f(p, 0.25));
        let want: Vec<f32> = x.iter().map(|&p| f(p, 0.25)).collect();
        assert_eq!(out, want);

        // 36 entries as 4 rows of 9, against a row of 9, both ways round.
        let (big, row) = (&x[..36], &y[..9]);
        out.clear();
        zip_rows_into(&mut out, big, row, false, &f);
        let want: Vec<f32> = big
            .iter()
            .enumerate()
            .map(|(i, &p)| f(p, row[i % 9]))
            .collect();
        assert_eq!(out, want);
        out.clear();
        zip_rows_into(&mut out, big, row, true, &f);
        let want: Vec<f32> = big
            .iter()
            .enumerate()
            .map(|(i, &q)| f(row[i % 9], q))
            .collect();
        assert_eq!(out, want);

        let mut acc = x.clone();
        add_to(&mut acc, &y);
        let want: Vec<f32> = x.iter().zip(&y).map(|(&p, &q)| p + q).collect();
        assert_eq!(acc, want);
    }
}
