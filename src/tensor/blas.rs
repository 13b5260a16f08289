//! Matrix products through the system's OpenBLAS (cargo feature `blas`).
//!
//! OpenBLAS was the faster GEMM on large f32 products when the default
//! was `matrixmultiply` (W2 large 30.3 against 45.5 ms). Against the
//! `gemm` crate, the default since, it no longer is on the development
//! machine (alternating runs, ms per step: W2 large 33.1–34.0 with
//! OpenBLAS against 31.0–33.7, W2 medium 1.49–1.70 against 1.36–1.47).
//! The feature stays for machines where a tuned BLAS is the better GEMM.
//! Only the two CBLAS entry points are declared here; OpenBLAS does the
//! work (and its own threading, sized by `OPENBLAS_NUM_THREADS`).
//!
//! OpenBLAS picks its kernels from the CPU model. On a virtual machine that
//! reports a generic model it may fall back to old SSE3 kernels ("Prescott",
//! shown by `OPENBLAS_VERBOSE=2`) and run slower than the default; name
//! the CPU with `OPENBLAS_CORETYPE` (for instance `SkylakeX` or `Haswell`).

use std::os::raw::c_int;

/// Smaller products stay with the `gemm` crate: OpenBLAS's thread start-up
/// made W2 small slower (0.20 against 0.18 ms per step, measured against
/// `matrixmultiply`), W2 medium and large faster (1.66 against 2.07 ms,
/// 30.3 against 45.5 ms).
pub(crate) const MIN_MACS: usize = 1 << 22;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

#[link(name = "openblas")]
extern "C" {
    fn cblas_sgemm(
        layout: c_int,
        ta: c_int,
        tb: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
    fn cblas_dgemm(
        layout: c_int,
        ta: c_int,
        tb: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f64,
        a: *const f64,
        lda: c_int,
        b: *const f64,
        ldb: c_int,
        beta: f64,
        c: *mut f64,
        ldc: c_int,
    );
}

/// The CBLAS description (transpose flag, leading dimension) of a
/// `rows × cols` operand read with strides `(rs, cs)`, if it is row-major
/// or transposed row-major (every operand `matmul` passes is one or the
/// other; a single row or column fits either).
fn operand(rows: usize, cols: usize, (rs, cs): (isize, isize)) -> Option<(c_int, c_int)> {
    let fits = |v: usize| c_int::try_from(v).ok();
    if cs == 1 && (rows == 1 || rs as usize >= cols) {
        Some((NO_TRANS, fits((rs as usize).max(cols).max(1))?))
    } else if rs == 1 && (cols == 1 || cs as usize >= rows) {
        Some((TRANS, fits((cs as usize).max(rows).max(1))?))
    } else {
        None
    }
}

macro_rules! blas_gemm {
    ($name:ident, $t:ty, $cblas:ident) => {
        /// `c = a · b` (contiguous `m × n` destination) through CBLAS;
        /// false, doing nothing, if an operand's layout does not fit.
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name(
            m: usize,
            k: usize,
            n: usize,
            a: &[$t],
            a_strides: (isize, isize),
            b: &[$t],
            b_strides: (isize, isize),
            c: &mut [std::mem::MaybeUninit<$t>],
        ) -> bool {
            let dims = (c_int::try_from(m), c_int::try_from(k), c_int::try_from(n));
            let (Ok(mi), Ok(ki), Ok(ni)) = dims else {
                return false;
            };
            let (Some((ta, lda)), Some((tb, ldb))) =
                (operand(m, k, a_strides), operand(k, n, b_strides))
            else {
                return false;
            };
            assert!(c.len() >= m * n);
            // SAFETY: the slices cover every element the strides reach
            // (the caller's contract, as for the `gemm` crate), the leading
            // dimensions are valid for the transpose flags, and `c` holds
            // m·n elements with row stride n (β = 0: written, never read).
            unsafe {
                $cblas(
                    ROW_MAJOR,
                    ta,
                    tb,
                    mi,
                    ni,
                    ki,
                    1.0,
                    a.as_ptr(),
                    lda,
                    b.as_ptr(),
                    ldb,
                    0.0,
                    c.as_mut_ptr().cast::<$t>(),
                    ni.max(1),
                )
            };
            true
        }
    };
}

blas_gemm!(sgemm, f32, cblas_sgemm);
blas_gemm!(dgemm, f64, cblas_dgemm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_map_to_cblas_flags() {
        assert_eq!(operand(3, 4, (4, 1)), Some((NO_TRANS, 4)));
        assert_eq!(operand(3, 4, (1, 3)), Some((TRANS, 3)));
        assert_eq!(operand(1, 4, (1, 1)), Some((NO_TRANS, 4)));
        assert_eq!(operand(4, 1, (1, 1)), Some((NO_TRANS, 1)));
        assert_eq!(operand(3, 4, (8, 2)), None);
    }

    #[test]
    fn products_match_the_definition_in_every_layout() {
        let (m, k, n) = (3, 5, 4);
        let a: Vec<f64> = (0..m * k).map(|i| i as f64 * 0.5 - 2.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64).sin()).collect();
        let want: Vec<f64> = (0..m * n)
            .map(|ij| (0..k).map(|p| a[ij / n * k + p] * b[p * n + ij % n]).sum())
            .collect();
        // a row-major, b transposed (stored n × k)
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c = vec![std::mem::MaybeUninit::new(0.0); m * n];
        assert!(dgemm(
            m,
            k,
            n,
            &a,
            (k as isize, 1),
            &bt,
            (1, k as isize),
            &mut c
        ));
        // SAFETY: initialised above, then overwritten by the product.
        let c: Vec<f64> = c.iter().map(|x| unsafe { x.assume_init() }).collect();
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn large_products_go_through_openblas_and_agree() {
        use crate::Element;
        // 256·128·160 multiply-adds: above MIN_MACS, so Element::gemm
        // takes the OpenBLAS path; compare with a plain triple loop.
        let (m, k, n) = (256, 128, 160);
        assert!(m * k * n >= MIN_MACS);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let mut c = Vec::with_capacity(m * n);
        f32::gemm(
            m,
            k,
            n,
            &a,
            (k as isize, 1),
            &b,
            (n as isize, 1),
            c.spare_capacity_mut(),
        );
        // SAFETY: the product wrote all m·n elements.
        unsafe { c.set_len(m * n) };
        for (ij, &got) in c.iter().enumerate() {
            let (i, j) = (ij / n, ij % n);
            let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            assert_eq!(got, want, "element ({i}, {j})");
        }
    }
}
