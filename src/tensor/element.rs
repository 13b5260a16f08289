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

macro_rules! element {
    ($t:ty, $mm:path, $erf:path) => {
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
                // SAFETY: the callers pass slices covering every strided
                // index (checked by the shape rules of `matmul`) and a
                // contiguous m×n destination (asserted above).
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
            }
        }
    };
}
element!(f32, matrixmultiply::sgemm, libm::erff);
element!(f64, matrixmultiply::dgemm, libm::erf);
