//! Element storage and the per-thread buffer pool behind it.
//!
//! Why a pool: a training loop records the same shapes every step. Returning
//! each dropped buffer to a per-thread free list (keyed by capacity) and
//! handing it out again lets the loop reach a steady state in which the
//! system allocator is never called. Scalars (one element) are stored inline
//! and never touch the heap at all.

use super::parallel;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// At most this many bytes of idle buffers are kept per thread and element
/// type; beyond it, dropped buffers go back to the system allocator.
const POOL_LIMIT_BYTES: usize = 512 << 20;

/// Buffers of at least this many elements are written in two halves, one
/// on the helper thread (copies, elementwise maps): W2 large copies its
/// 7.4 MB of parameters into the tape, clones 2 MB gradients and runs its
/// bias, ReLU and ReLU-backward loops over 2 MB every step, and one core's
/// memory bandwidth is the limit there. W2 medium's 128 KB stay on one
/// thread (a handover costs more than it saves).
const SPLIT_ELEMENTS: usize = 1 << 18;

/// Free buffers of one element type, grouped by exact capacity.
#[derive(Default)]
pub struct Pool<T> {
    buckets: Vec<(usize, Vec<Vec<T>>)>,
    bytes: usize,
}

impl<T> Pool<T> {
    fn take(&mut self, cap: usize) -> Option<Vec<T>> {
        let i = self.buckets.iter().position(|(c, _)| *c == cap)?;
        let v = self.buckets[i].1.pop()?;
        self.bytes -= cap * std::mem::size_of::<T>();
        Some(v)
    }

    fn give(&mut self, mut v: Vec<T>) {
        let cap = v.capacity();
        let size = cap * std::mem::size_of::<T>();
        if self.bytes + size > POOL_LIMIT_BYTES {
            return;
        }
        v.clear();
        self.bytes += size;
        match self.buckets.iter_mut().find(|(c, _)| *c == cap) {
            Some((_, list)) => list.push(v),
            None => self.buckets.push((cap, vec![v])),
        }
    }

    /// Drops every idle buffer.
    pub fn clear(&mut self) {
        self.buckets.clear();
        self.bytes = 0;
    }
}

/// Gives element types a per-thread pool. Implemented for `f32` and `f64`;
/// other types may return `None` and simply allocate.
pub trait Pooled: Sized + 'static {
    /// Runs `f` on this thread's pool for `Self`, if there is one.
    fn with_pool<R>(f: impl FnOnce(&mut Pool<Self>) -> R) -> Option<R>;
}

macro_rules! pooled {
    ($t:ty, $key:ident) => {
        thread_local! {
            static $key: RefCell<Pool<$t>> = RefCell::new(Pool { buckets: Vec::new(), bytes: 0 });
        }
        impl Pooled for $t {
            fn with_pool<R>(f: impl FnOnce(&mut Pool<Self>) -> R) -> Option<R> {
                $key.try_with(|p| p.try_borrow_mut().ok().map(|mut p| f(&mut p)))
                    .ok()
                    .flatten()
            }
        }
    };
}
pooled!(f32, POOL_F32);
pooled!(f64, POOL_F64);

/// Frees the buffers this thread keeps for reuse (for `f32` and `f64`).
/// Useful after a large computation when memory should go back to the system.
///
/// ```
/// tapegrad::tensor::trim_pool();
/// ```
pub fn trim_pool() {
    f32::with_pool(|p| p.clear());
    f64::with_pool(|p| p.clear());
}

/// Contiguous element storage: inline for one element, pooled heap otherwise.
pub(crate) struct Buffer<T: Pooled + Copy>(SmallVec<[T; 1]>);

impl<T: Pooled + Copy + Default> Buffer<T> {
    /// An empty buffer able to hold `n` elements without reallocating.
    pub(crate) fn with_capacity(n: usize) -> Self {
        if n <= 1 {
            return Buffer(SmallVec::new());
        }
        Buffer(SmallVec::from_vec(Self::pooled_vec(n)))
    }

    /// An empty `Vec` with room for `n`, from the pool if it has one.
    fn pooled_vec(n: usize) -> Vec<T> {
        T::with_pool(|p| p.take(n))
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(n))
    }

    /// `n` elements pushed by `fill` onto a `Vec` (whose `extend` and
    /// `extend_from_slice` vectorise; SmallVec's push element by element).
    pub(crate) fn build(n: usize, fill: impl FnOnce(&mut Vec<T>)) -> Self {
        let mut v = Self::pooled_vec(n);
        fill(&mut v);
        debug_assert_eq!(v.len(), n);
        Self::from_vec(v)
    }

    /// `n` elements written by `write`, with no fill beforehand (a matrix
    /// product's output is written whole; zeroing it first cost W2 large
    /// as much as Adam's update).
    ///
    /// # Safety
    /// `write` must write every one of the `n` elements.
    pub(crate) unsafe fn written(n: usize, write: impl FnOnce(&mut [MaybeUninit<T>])) -> Self {
        Self::build(n, |v| {
            write(&mut v.spare_capacity_mut()[..n]);
            // SAFETY: the caller's contract: all n elements are written.
            unsafe { v.set_len(n) }
        })
    }

    /// `n` elements written by `write(start, dst)`, which fills `dst` with
    /// elements `start..start + dst.len()`: one call for the whole buffer,
    /// or, from [`SPLIT_ELEMENTS`] on with two threads, one call per half
    /// (split at a multiple of `unit`, e.g. a row), run in parallel.
    ///
    /// # Safety
    /// `write` must write every element of the `dst` it is given.
    pub(crate) unsafe fn written_in_halves(
        n: usize,
        unit: usize,
        write: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
    ) -> Self
    where
        T: Send,
    {
        let mid = (n / 2).next_multiple_of(unit.max(1));
        let whole = |dst: &mut [MaybeUninit<T>]| {
            if n >= SPLIT_ELEMENTS && mid < n && parallel::two_threads() {
                let (d0, d1) = dst.split_at_mut(mid);
                parallel::join(|| write(0, d0), || write(mid, d1));
            } else {
                write(0, dst);
            }
        };
        // SAFETY: the caller's contract: both halves (or the whole) are
        // written, and together they cover all n elements.
        unsafe { Self::written(n, whole) }
    }

    /// Runs `f` on `n` elements of pooled scratch memory, handed over
    /// uninitialised (the caller writes before it reads), and returns the
    /// memory to the pool: the column buffers of a convolution, reused
    /// from one step to the next.
    pub(crate) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [MaybeUninit<T>]) -> R) -> R {
        let mut v = Self::pooled_vec(n);
        let r = f(&mut v.spare_capacity_mut()[..n]);
        T::with_pool(|p| p.give(v));
        r
    }

    pub(crate) fn filled(n: usize, value: T) -> Self {
        Self::build(n, |v| v.resize(n, value))
    }

    pub(crate) fn from_slice(s: &[T]) -> Self
    where
        T: Send + Sync,
    {
        if s.len() <= 1 {
            return Buffer(SmallVec::from_slice(s));
        }
        let write = |start: usize, dst: &mut [MaybeUninit<T>]| {
            copy_into(dst, &s[start..start + dst.len()]);
        };
        // SAFETY: `copy_into` writes the whole of `dst`.
        unsafe { Self::written_in_halves(s.len(), 1, write) }
    }

    pub(crate) fn from_vec(v: Vec<T>) -> Self {
        if v.len() <= 1 {
            let b = Buffer(v.iter().copied().collect());
            T::with_pool(|p| p.give(v));
            b
        } else {
            Buffer(SmallVec::from_vec(v))
        }
    }

    /// Collects exactly `n` elements.
    pub(crate) fn collect_n(n: usize, it: impl Iterator<Item = T>) -> Self {
        if n <= 1 {
            return Buffer(it.collect());
        }
        Self::build(n, |v| v.extend(it))
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        &self.0
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.0
    }

    pub(crate) fn push(&mut self, v: T) {
        self.0.push(v)
    }

    /// Appends every item (a block of an elementwise op).
    pub(crate) fn extend(&mut self, items: impl IntoIterator<Item = T>) {
        self.0.extend(items)
    }

    pub(crate) fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.0).into_vec()
    }
}

/// `dst = src` (equal lengths) with one `memcpy`.
fn copy_into<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: both slices hold src.len() elements and cannot overlap (one
    // is borrowed mutably); `MaybeUninit<T>` has `T`'s layout.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<T>(), src.len()) }
}

impl<T: Pooled + Copy + Default + Send + Sync> Clone for Buffer<T> {
    fn clone(&self) -> Self {
        Self::from_slice(&self.0)
    }
}

impl<T: Pooled + Copy> Drop for Buffer<T> {
    fn drop(&mut self) {
        if self.0.spilled() {
            let v = std::mem::take(&mut self.0).into_vec();
            T::with_pool(|p| p.give(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Copies below and above the two-thread size, and odd lengths (the
    /// halves differ by one), reproduce their source exactly.
    #[test]
    fn copies_are_exact_on_one_thread_and_in_halves() {
        for n in [
            2,
            37,
            SPLIT_ELEMENTS - 1,
            SPLIT_ELEMENTS,
            SPLIT_ELEMENTS + 1,
            3 * SPLIT_ELEMENTS + 7,
        ] {
            let src: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let copy = Buffer::from_slice(&src);
            assert!(copy.as_slice() == src.as_slice(), "length {n}");
            let again = copy.clone();
            assert!(again.as_slice() == src.as_slice(), "clone of length {n}");
        }
    }

    /// Halves split at a multiple of `unit` and cover every element once.
    #[test]
    fn halves_split_between_units_and_cover_everything() {
        let (rows, width) = (263, 1000); // 263,000 elements: two halves
        assert!(rows * width >= SPLIT_ELEMENTS);
        let starts = std::sync::Mutex::new(Vec::new());
        let write = |at: usize, dst: &mut [MaybeUninit<f64>]| {
            starts.lock().unwrap().push((at, dst.len()));
            for (k, d) in dst.iter_mut().enumerate() {
                d.write((at + k) as f64);
            }
        };
        // SAFETY: `write` writes all of `dst`.
        let b = unsafe { Buffer::written_in_halves(rows * width, width, write) };
        assert!(b.as_slice().iter().enumerate().all(|(i, &v)| v == i as f64));
        let mut starts = starts.into_inner().unwrap();
        starts.sort();
        if parallel::two_threads() {
            assert_eq!(starts, [(0, 132_000), (132_000, 131_000)]);
        } else {
            assert_eq!(starts, [(0, 263_000)]);
        }
    }
}
