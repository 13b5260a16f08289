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
use std::sync::Arc;

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

/// A heap buffer: shared by clones, written only when unshared.
type Shared<T> = Arc<Vec<T>>;

/// Free buffers of one element type, grouped by exact capacity. Each is
/// kept with its `Arc` (unshared), so reusing one allocates nothing.
#[derive(Default)]
pub struct Pool<T> {
    buckets: Vec<(usize, Vec<Shared<T>>)>,
    bytes: usize,
}

impl<T> Pool<T> {
    fn take(&mut self, cap: usize) -> Option<Shared<T>> {
        let i = self.buckets.iter().position(|(c, _)| *c == cap)?;
        let v = self.buckets[i].1.pop()?;
        self.bytes -= cap * std::mem::size_of::<T>();
        Some(v)
    }

    /// Keeps `v` if it is unshared and the pool has room.
    fn give(&mut self, mut v: Shared<T>) {
        let Some(vec) = Arc::get_mut(&mut v) else {
            return;
        };
        let cap = vec.capacity();
        let size = cap * std::mem::size_of::<T>();
        if self.bytes + size > POOL_LIMIT_BYTES {
            return;
        }
        vec.clear();
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

/// Contiguous element storage: inline for at most one element, otherwise
/// a pooled heap buffer shared by clones and copied on the first write to
/// a shared one (so a gradient passed back unchanged, as `+` and
/// reshapes do, or a parameter recorded on the tape, costs no copy).
pub(crate) struct Buffer<T: Pooled + Copy>(Repr<T>);

enum Repr<T> {
    /// Never more than one element (pushing a second moves to the heap).
    Inline(SmallVec<[T; 1]>),
    Heap(Shared<T>),
}

impl<T: Pooled + Copy + Default> Buffer<T> {
    /// An empty buffer able to hold `n` elements without reallocating.
    pub(crate) fn with_capacity(n: usize) -> Self {
        if n <= 1 {
            return Buffer(Repr::Inline(SmallVec::new()));
        }
        Buffer(Repr::Heap(Self::pooled_vec(n)))
    }

    /// An empty, unshared `Vec` with room for `n`, from the pool if it has one.
    fn pooled_vec(n: usize) -> Shared<T> {
        T::with_pool(|p| p.take(n))
            .flatten()
            .unwrap_or_else(|| Arc::new(Vec::with_capacity(n)))
    }

    /// `n` elements pushed by `fill` onto a `Vec` (whose `extend` and
    /// `extend_from_slice` vectorise; SmallVec's push element by element).
    pub(crate) fn build(n: usize, fill: impl FnOnce(&mut Vec<T>)) -> Self {
        let mut v = Self::pooled_vec(n);
        let vec = unique(&mut v);
        fill(vec);
        debug_assert_eq!(vec.len(), n);
        if vec.len() <= 1 {
            let b = Buffer(Repr::Inline(vec.iter().copied().collect()));
            T::with_pool(|p| p.give(v));
            return b;
        }
        Buffer(Repr::Heap(v))
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
        let r = f(&mut unique(&mut v).spare_capacity_mut()[..n]);
        T::with_pool(|p| p.give(v));
        r
    }

    pub(crate) fn filled(n: usize, value: T) -> Self {
        Self::build(n, |v| v.resize(n, value))
    }

    /// A copy of `s` (in halves on two threads when it is large).
    pub(crate) fn from_slice(s: &[T]) -> Self
    where
        T: Send + Sync,
    {
        if s.len() <= 1 {
            return Buffer(Repr::Inline(SmallVec::from_slice(s)));
        }
        let write = |start: usize, dst: &mut [MaybeUninit<T>]| {
            copy_into(dst, &s[start..start + dst.len()]);
        };
        // SAFETY: `copy_into` writes the whole of `dst`.
        unsafe { Self::written_in_halves(s.len(), 1, write) }
    }

    /// Takes `v` over (its `Arc` is the one allocation).
    pub(crate) fn from_vec(v: Vec<T>) -> Self {
        if v.len() <= 1 {
            Buffer(Repr::Inline(v.iter().copied().collect()))
        } else {
            Buffer(Repr::Heap(Arc::new(v)))
        }
    }

    /// Collects exactly `n` elements.
    pub(crate) fn collect_n(n: usize, it: impl Iterator<Item = T>) -> Self {
        if n <= 1 {
            return Buffer(Repr::Inline(it.collect()));
        }
        Self::build(n, |v| v.extend(it))
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        match &self.0 {
            Repr::Inline(v) => v,
            Repr::Heap(v) => v,
        }
    }

    /// The elements to write; a shared buffer is copied first (into one
    /// from the pool), so the other holders keep their values.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T]
    where
        T: Send + Sync,
    {
        if matches!(self.0, Repr::Inline(_)) {
            let Repr::Inline(v) = &mut self.0 else {
                unreachable!()
            };
            return v;
        }
        self.heap_mut(0)
    }

    /// The unshared heap `Vec` (after a copy, if shared; moving an inline
    /// element to the heap when `grow` would pass one element).
    fn heap_mut(&mut self, grow: usize) -> &mut Vec<T>
    where
        T: Send + Sync,
    {
        let fresh = match &self.0 {
            Repr::Heap(h) if Arc::strong_count(h) > 1 && h.len() > 1 => Some(Self::from_slice(h)),
            Repr::Heap(h) if Arc::strong_count(h) == 1 => None,
            // Inline, or a shared heap buffer of at most one element.
            _ => {
                let v = self.as_slice();
                let mut h = Self::pooled_vec((v.len() + grow).max(2));
                unique(&mut h).extend_from_slice(v);
                Some(Buffer(Repr::Heap(h)))
            }
        };
        if let Some(b) = fresh {
            *self = b;
        }
        match &mut self.0 {
            Repr::Heap(h) => unique(h),
            Repr::Inline(_) => unreachable!("a copy of more than one element is on the heap"),
        }
    }

    pub(crate) fn push(&mut self, x: T)
    where
        T: Send + Sync,
    {
        match &mut self.0 {
            Repr::Inline(v) if v.is_empty() => v.push(x),
            _ => self.heap_mut(1).push(x),
        }
    }

    /// Appends every item (a block of an elementwise op).
    pub(crate) fn extend(&mut self, items: impl IntoIterator<Item = T>)
    where
        T: Send + Sync,
    {
        let items = items.into_iter();
        if let Repr::Inline(v) = &mut self.0 {
            if v.len() + items.size_hint().1.unwrap_or(usize::MAX) <= 1 {
                return v.extend(items);
            }
        }
        self.heap_mut(items.size_hint().0).extend(items)
    }

    pub(crate) fn into_vec(mut self) -> Vec<T> {
        match std::mem::replace(&mut self.0, Repr::Inline(SmallVec::new())) {
            Repr::Inline(v) => v.into_vec(),
            Repr::Heap(v) => Arc::try_unwrap(v).unwrap_or_else(|v| v.to_vec()),
        }
    }
}

/// The `Vec` of a buffer known to be unshared (fresh from the pool or
/// checked).
fn unique<T>(v: &mut Shared<T>) -> &mut Vec<T> {
    Arc::get_mut(v).expect("an unshared buffer")
}

/// `dst = src` (equal lengths) with one `memcpy`.
fn copy_into<T: Copy>(dst: &mut [MaybeUninit<T>], src: &[T]) {
    assert_eq!(dst.len(), src.len());
    // SAFETY: both slices hold src.len() elements and cannot overlap (one
    // is borrowed mutably); `MaybeUninit<T>` has `T`'s layout.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<T>(), src.len()) }
}

/// Clones share the heap buffer (copied on the first write, see
/// [`Buffer::as_mut_slice`]).
impl<T: Pooled + Copy> Clone for Buffer<T> {
    fn clone(&self) -> Self {
        Buffer(match &self.0 {
            Repr::Inline(v) => Repr::Inline(v.clone()),
            Repr::Heap(v) => Repr::Heap(Arc::clone(v)),
        })
    }
}

/// The last holder of a heap buffer returns it to this thread's pool.
impl<T: Pooled + Copy> Drop for Buffer<T> {
    fn drop(&mut self) {
        if let Repr::Heap(v) = std::mem::replace(&mut self.0, Repr::Inline(SmallVec::new())) {
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

    /// A clone shares the elements until one side writes: the writer gets
    /// its own copy and the other keeps its values; the last holder's
    /// buffer goes back to the pool (and comes out again, unshared).
    #[test]
    fn clones_share_until_written() {
        let a = Buffer::from_slice(&[1.0f64, 2.0, 3.0]);
        let mut b = a.clone();
        assert_eq!(a.as_slice().as_ptr(), b.as_slice().as_ptr());
        b.as_mut_slice()[0] = 9.0;
        assert_eq!(a.as_slice(), [1.0, 2.0, 3.0]);
        assert_eq!(b.as_slice(), [9.0, 2.0, 3.0]);
        assert_ne!(a.as_slice().as_ptr(), b.as_slice().as_ptr());
        let mut c = b.clone();
        drop(b);
        // `c` is now the only holder: written in place.
        let at = c.as_slice().as_ptr();
        c.as_mut_slice()[1] = 7.0;
        assert_eq!(
            (c.as_slice(), c.as_slice().as_ptr()),
            (&[9.0, 7.0, 3.0][..], at)
        );
        c.push(4.0);
        assert_eq!(c.as_slice(), [9.0, 7.0, 3.0, 4.0]);
        // A shared one-element heap buffer and an inline one grow too.
        let mut d = Buffer::<f64>::with_capacity(4);
        d.push(5.0);
        let e = d.clone();
        d.push(6.0);
        assert_eq!((d.as_slice(), e.as_slice()), (&[5.0, 6.0][..], &[5.0][..]));
        let mut s = Buffer::from_slice(&[8.0f64]);
        s.extend([1.0, 2.0]);
        assert_eq!(s.as_slice(), [8.0, 1.0, 2.0]);
        assert_eq!(s.into_vec(), vec![8.0, 1.0, 2.0]);
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
