//! The element types a tensor can hold.

use super::pool::Pooled;
use num_traits::{Float, FromPrimitive};
use std::cell::Cell;
use std::fmt::{Debug, Display};

thread_local! {
    static GEMM_CALLS: Cell<u64> = const { Cell::new(0) };
}

/// How many times this thread has called the GEMM kernel. Each call packs
/// its operands into one scratch buffer that `matrixmultiply` allocates
/// itself: the only heap allocation left in a steady-state training step,
/// and this count lets a test tell them apart from tapegrad's own.
///
/// ```
/// use tapegrad::{Tape, Tensor};
/// let before = tapegrad::tensor::gemm_calls();
/// let tape = Tape::<f32>::new();
/// let a = tape.var(Tensor::ones([2, 2]));
/// let _ = a.matmul(a);
/// assert_eq!(tapegrad::tensor::gemm_calls() - before, 1);
/// ```
pub fn gemm_calls() -> u64 {
    GEMM_CALLS.with(|c| c.get())
}

/// A floating-point element type: `f32` or `f64`.
///
/// Besides the arithmetic of [`num_traits::Float`], an element knows how to
/// multiply matrices (through a real GEMM kernel) and has a buffer pool.
pub trait Element:
    Float + FromPrimitive + Debug + Display + Default + Send + Sync + Pooled + 'static
{
    /// `c = a · b` for an (m×k) `a` and a (k×n) `b`, each read with its own
    /// row and column strides; `c` is contiguous row-major (m×n) and is
    /// overwritten.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        a_strides: (isize, isize),
        b: &[Self],
        b_strides: (isize, isize),
        c: &mut [Self],
    );

    /// The error function, erf(x) = 2/√π ∫₀ˣ e^(-t²) dt (from `libm`).
    fn erf(self) -> Self;

    /// Converts an `f64` literal to this type (exact for `f64`, rounded for `f32`).
    fn lit(v: f64) -> Self {
        Self::from_f64(v).expect("every f64 converts to a float type")
    }
}

/// Products of at least this many multiply-adds are split across two
/// threads. Below it, waking a second thread costs more than it saves
/// (W2 small ran 0.17 ms per step on one thread, 0.30 ms with the GEMM
/// crate's own threading).
const SPLIT_MACS: usize = 1 << 26;

/// Runs `kernel(rows, a, c)` on the whole product, or on two halves of
/// its rows in parallel when it is large and the machine has two cores.
fn gemm_split<T: Send + Sync>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    (ars, _): (isize, isize),
    c: &mut [T],
    kernel: &(impl Fn(usize, &[T], &mut [T]) + Sync),
) {
    if m < 16 || m * k * n < SPLIT_MACS || rayon::current_num_threads() < 2 {
        return kernel(m, a, c);
    }
    let top = m / 2;
    let (c_top, c_bottom) = c[..m * n].split_at_mut(top * n);
    let a_bottom = &a[top * ars as usize..];
    rayon::join(
        || kernel(top, a, c_top),
        || kernel(m - top, a_bottom, c_bottom),
    );
}

macro_rules! element {
    ($t:ty, $mm:path, $blas:ident, $erf:path) => {
        impl Element for $t {
            fn erf(self) -> Self {
                $erf(self)
            }

            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                (ars, acs): (isize, isize),
                b: &[Self],
                (brs, bcs): (isize, isize),
                c: &mut [Self],
            ) {
                assert!(c.len() >= m * n);
                if m == 0 || n == 0 {
                    return;
                }
                GEMM_CALLS.with(|c| c.set(c.get() + 1));
                if k == 0 {
                    c[..m * n].fill(0.0);
                    return;
                }
                #[cfg(feature = "blas")]
                if m * k * n >= super::blas::MIN_MACS
                    && super::blas::$blas(m, k, n, a, (ars, acs), b, (brs, bcs), c)
                {
                    return;
                }
                gemm_split(m, k, n, a, (ars, acs), c, &|m, a, c| {
                    // SAFETY: the callers pass slices covering every
                    // strided index (checked by the shape rules of
                    // `matmul`), `gemm_split` keeps each part's rows inside
                    // its slices, and `c` is a contiguous m×n destination.
                    unsafe {
                        $mm(
                            m,
                            k,
                            n,
                            1.0,
                            a.as_ptr(),
                            ars,
                            acs,
                            b.as_ptr(),
                            brs,
                            bcs,
                            0.0,
                            c.as_mut_ptr(),
                            n as isize,
                            1,
                        )
                    }
                });
            }
        }
    };
}
element!(f32, matrixmultiply::sgemm, sgemm, libm::erff);
element!(f64, matrixmultiply::dgemm, dgemm, libm::erf);
