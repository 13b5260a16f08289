//! The element types a tensor can hold.

use super::pool::Pooled;
use num_traits::{Float, FromPrimitive};
use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::mem::MaybeUninit;

thread_local! {
    static GEMM_CALLS: Cell<u64> = const { Cell::new(0) };
    static INSIDE_GEMM: Cell<bool> = const { Cell::new(false) };
}

/// How many times this thread has called the GEMM kernel.
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

/// Whether this thread is inside the GEMM library right now. The `gemm`
/// crate allocates its packing scratch itself on each call (it takes no
/// buffer from outside): the only heap allocations left in a steady-state
/// training step. A counting allocator reads this flag to tell them apart
/// from tapegrad's own (`tests/alloc_steady_state.rs`).
///
/// ```
/// assert!(!tapegrad::tensor::inside_gemm());
/// ```
pub fn inside_gemm() -> bool {
    INSIDE_GEMM.get()
}

/// Marks this thread as inside the GEMM library until dropped.
struct InsideGemm;

impl InsideGemm {
    fn enter() -> Self {
        GEMM_CALLS.set(GEMM_CALLS.get() + 1);
        INSIDE_GEMM.set(true);
        InsideGemm
    }
}

impl Drop for InsideGemm {
    fn drop(&mut self) {
        INSIDE_GEMM.set(false);
    }
}

/// A floating-point element type: `f32` or `f64`.
///
/// Besides the arithmetic of [`num_traits::Float`], an element knows how to
/// multiply matrices (through a real GEMM kernel) and has a buffer pool.
pub trait Element:
    Float + FromPrimitive + Debug + Display + Default + Send + Sync + Pooled + 'static
{
    /// `c = a · b` for an (m×k) `a` and a (k×n) `b`, each read with its own
    /// row and column strides; `c` is contiguous row-major (m×n). Every
    /// element of `c` is written and none is read, so `c` may be
    /// uninitialised memory.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        a_strides: (isize, isize),
        b: &[Self],
        b_strides: (isize, isize),
        c: &mut [MaybeUninit<Self>],
    );

    /// The error function, erf(x) = 2/√π ∫₀ˣ e^(-t²) dt (from `libm`).
    fn erf(self) -> Self;

    /// Converts an `f64` literal to this type (exact for `f64`, rounded for `f32`).
    fn lit(v: f64) -> Self {
        Self::from_f64(v).expect("every f64 converts to a float type")
    }
}

/// Products of at least this many multiply-adds use two threads (the
/// `gemm` crate's, which share packed panels between them). Below it,
/// waking a second thread costs more than it saves (W2 medium's
/// 128×784×256 product: 0.41 ms on one thread, 0.66 ms on two).
const THREADED_MACS: usize = 1 << 26;

/// How the `gemm` crate should run an m×k×n product.
fn parallelism(m: usize, k: usize, n: usize) -> gemm::Parallelism {
    if m.saturating_mul(k).saturating_mul(n) >= THREADED_MACS && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

macro_rules! element {
    ($t:ty, $blas:ident, $erf:path) => {
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
                c: &mut [MaybeUninit<Self>],
            ) {
                assert!(c.len() >= m * n);
                if m == 0 || n == 0 {
                    return;
                }
                let _inside = InsideGemm::enter();
                if k == 0 {
                    c[..m * n].fill(MaybeUninit::new(0.0));
                    return;
                }
                #[cfg(feature = "blas")]
                if m * k * n >= super::blas::MIN_MACS
                    && super::blas::$blas(m, k, n, a, (ars, acs), b, (brs, bcs), c)
                {
                    return;
                }
                // SAFETY: the callers pass slices covering every strided
                // index (checked by the shape rules of `matmul`) and `c` is
                // a contiguous m×n destination (asserted above). With
                // `read_dst` false, `c` is written, never read: c = 1·(a·b).
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr().cast::<Self>(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        acs,
                        ars,
                        b.as_ptr(),
                        bcs,
                        brs,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        parallelism(m, k, n),
                    )
                }
            }
        }
    };
}
element!(f32, sgemm, libm::erff);
element!(f64, dgemm, libm::erf);
