//! The element types a tensor can hold.

use super::parallel;
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
    /// A `u32` kept in the bits of an element, exactly (the tape stores a
    /// tensor node's slot where a scalar node keeps its value).
    #[doc(hidden)]
    fn from_slot_bits(slot: u32) -> Self;

    /// The `u32` [`Element::from_slot_bits`] stored.
    #[doc(hidden)]
    fn to_slot_bits(self) -> u32;

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

/// Products of at least this many multiply-adds are split into two row
/// halves, one on the helper thread (`parallel::join`). The split beats
/// the `gemm` crate's own rayon threading, whose hand-over costs more than
/// W2 medium's products take (128×784×256: 373 µs on one thread, 190
/// split, 422 with rayon; 512×784×1024: 6.8 ms, 3.5, 4.0). W2 small's
/// 32×784×64 product gains alone (22.4 → 17.7 µs) but its training step
/// lost (0.15–0.18 → 0.20 ms, alternating runs): the helper's half reads
/// operands that sit in the other core's cache. Hence 2²¹, above it.
const SPLIT_MACS: usize = 1 << 21;

/// Runs `kernel(rows, a, c)` on the whole product, or on two row halves
/// in parallel when it is large enough.
fn split_rows<T: Send + Sync, C: Send>(
    (m, k, n): (usize, usize, usize),
    a: &[T],
    a_row_stride: isize,
    c: &mut [C],
    kernel: impl Fn(usize, &[T], &mut [C]) + Sync,
) {
    if m < 2 || m.saturating_mul(k).saturating_mul(n) < SPLIT_MACS || !parallel::two_threads() {
        return kernel(m, a, c);
    }
    let top = m / 2;
    let (c_top, c_bottom) = c[..m * n].split_at_mut(top * n);
    let a_bottom = &a[top * a_row_stride as usize..];
    let kernel = &kernel;
    parallel::join(
        || kernel(top, a, c_top),
        || kernel(m - top, a_bottom, c_bottom),
    );
}

/// `c += a·b` for an initialised, contiguous `m × n` block `c`, through the
/// gemm crate on this thread: the sums over images of a convolution's
/// weight gradient (the `blas` feature does not route these).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_add<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    (ars, acs): (isize, isize),
    b: &[T],
    (brs, bcs): (isize, isize),
    c: &mut [T],
) {
    assert!(c.len() >= m * n);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let _inside = InsideGemm::enter();
    // SAFETY: as in `Element::gemm`; with `read_dst` the product is added
    // to `c`, which is initialised.
    unsafe {
        raw_gemm(
            (m, k, n),
            a,
            (ars, acs),
            b,
            (brs, bcs),
            c.as_mut_ptr(),
            true,
        )
    }
}

/// `c = a·b`, or `c += a·b` with `read_dst`, for a contiguous `m × n` `c`
/// through the gemm crate on this thread.
///
/// # Safety
/// `a`, `b` cover every strided index, `c` points at `m·n` writable
/// elements (initialised if `read_dst`).
unsafe fn raw_gemm<T: 'static + num_traits::One + num_traits::Zero>(
    (m, k, n): (usize, usize, usize),
    a: &[T],
    (ars, acs): (isize, isize),
    b: &[T],
    (brs, bcs): (isize, isize),
    c: *mut T,
    read_dst: bool,
) {
    // The gemm crate computes dst = alpha·dst + beta·lhs·rhs.
    let alpha = if read_dst { T::one() } else { T::zero() };
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            n as isize,
            read_dst,
            a.as_ptr(),
            acs,
            ars,
            b.as_ptr(),
            bcs,
            brs,
            alpha,
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

macro_rules! element {
    ($t:ty, $blas:ident, $erf:path) => {
        impl Element for $t {
            #[inline(always)]
            fn from_slot_bits(slot: u32) -> Self {
                // The bits are only copied, never computed with, so any
                // pattern comes back as it went in (slots below 2^23 are
                // subnormals even for f32; the tape allows up to 2^31).
                <$t>::from_bits(slot.into())
            }

            #[inline(always)]
            fn to_slot_bits(self) -> u32 {
                self.to_bits() as u32
            }

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
                split_rows((m, k, n), a, ars, c, |m, a, c| {
                    // SAFETY: the callers pass slices covering every
                    // strided index (checked by the shape rules of
                    // `matmul`), `split_rows` keeps each half's rows inside
                    // its slices, and `c` is a contiguous m×n destination.
                    // With `read_dst` false, `c` is written, never read.
                    unsafe {
                        raw_gemm(
                            (m, k, n),
                            a,
                            (ars, acs),
                            b,
                            (brs, bcs),
                            c.as_mut_ptr().cast::<Self>(),
                            false,
                        )
                    }
                });
            }
        }
    };
}
element!(f32, sgemm, libm::erff);
element!(f64, dgemm, libm::erf);
