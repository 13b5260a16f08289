//! Owned n-dimensional arrays: [`Tensor`], its shapes and its kernels.
//!
//! A tensor is contiguous and row-major; its shape lives in a [`Shape`]
//! (a `SmallVec`, inline up to four dimensions). Scalars are 0-d tensors and
//! their single element is stored inline, so they never allocate.

#[cfg(feature = "blas")]
mod blas;
pub(crate) mod conv;
mod conv_direct;
mod display;
mod element;
pub(crate) mod kernels;
mod matmul;
pub(crate) mod parallel;
mod pool;
mod random;
mod shape;
pub(crate) mod simd;
mod subnormals;

pub use conv::Conv2dGeom;
pub use element::{gemm_calls, inside_gemm, Element};
pub use pool::{trim_pool, Pool, Pooled};
pub use shape::{broadcast_shapes, broadcasts_to, numel, strides, AxisIndex, Shape};
pub use subnormals::flush_subnormals;

pub(crate) use pool::Buffer;
pub(crate) use shape::{broadcast_strides, for_each_offset2, split_at_axis};

/// An owned, contiguous, row-major n-d array of `f32` or `f64`.
///
/// ```
/// use tapegrad::Tensor;
/// let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!(t.get(&[1, 2]), 6.0);
/// assert_eq!(Tensor::scalar(2.5f64).item(), 2.5);
/// ```
pub struct Tensor<T: Element> {
    shape: Shape,
    data: Buffer<T>,
}

impl<T: Element> Clone for Tensor<T> {
    /// Copies the shape with one `memcpy` (SmallVec's own `clone` pushes
    /// element by element, which showed in small-tensor profiles).
    fn clone(&self) -> Self {
        Tensor {
            shape: Shape::from_slice(&self.shape),
            data: self.data.clone(),
        }
    }
}

impl<T: Element> Tensor<T> {
    /// A tensor holding `data` in row-major order with the given shape.
    ///
    /// # Panics
    /// If `data.len()` is not the product of the shape.
    #[track_caller]
    pub fn from_vec(data: Vec<T>, shape: impl AsRef<[usize]>) -> Self {
        let shape = shape.as_ref();
        assert_eq!(
            data.len(),
            numel(shape),
            "Tensor::from_vec: {} elements do not fill shape {:?}",
            data.len(),
            shape
        );
        Tensor {
            shape: Shape::from_slice(shape),
            data: Buffer::from_vec(data),
        }
    }

    /// Like [`Tensor::from_vec`] but copying from a slice.
    #[track_caller]
    pub fn from_slice(data: &[T], shape: impl AsRef<[usize]>) -> Self {
        let shape = shape.as_ref();
        assert_eq!(
            data.len(),
            numel(shape),
            "Tensor::from_slice: {} elements do not fill shape {:?}",
            data.len(),
            shape
        );
        Tensor {
            shape: Shape::from_slice(shape),
            data: Buffer::from_slice(data),
        }
    }

    /// A 0-d tensor holding one value (no heap allocation).
    pub fn scalar(v: T) -> Self {
        let mut data = Buffer::with_capacity(1);
        data.push(v);
        Tensor {
            shape: Shape::new(),
            data,
        }
    }

    /// A tensor of the given shape with every element equal to `v`.
    pub fn full(shape: impl AsRef<[usize]>, v: T) -> Self {
        let shape = Shape::from_slice(shape.as_ref());
        Tensor {
            data: Buffer::filled(numel(&shape), v),
            shape,
        }
    }

    /// All zeros.
    pub fn zeros(shape: impl AsRef<[usize]>) -> Self {
        Self::full(shape, T::zero())
    }

    /// All ones.
    pub fn ones(shape: impl AsRef<[usize]>) -> Self {
        Self::full(shape, T::one())
    }

    /// Zeros with a single 1 at flat (row-major) position `i`: the seed
    /// that picks one row of a Jacobian.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f64>::one_hot([2, 2], 2).data(), &[0.0, 0.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn one_hot(shape: impl AsRef<[usize]>, i: usize) -> Self {
        let mut t = Self::zeros(shape);
        t.data_mut()[i] = T::one();
        t
    }

    /// `0, 1, …, n-1` as a 1-d tensor.
    pub fn arange(n: usize) -> Self {
        Self::from_fn([n], |i| T::from_usize(i[0]).unwrap())
    }

    /// A tensor whose element at each multi-index is `f(index)`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let eye = Tensor::<f64>::from_fn([2, 2], |i| if i[0] == i[1] { 1.0 } else { 0.0 });
    /// assert_eq!(eye.data(), &[1.0, 0.0, 0.0, 1.0]);
    /// ```
    pub fn from_fn(shape: impl AsRef<[usize]>, mut f: impl FnMut(&[usize]) -> T) -> Self {
        let shape = Shape::from_slice(shape.as_ref());
        let n = numel(&shape);
        let mut idx: Shape = smallvec::smallvec![0; shape.len()];
        let mut data = Buffer::with_capacity(n);
        for _ in 0..n {
            data.push(f(&idx));
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Tensor { shape, data }
    }

    pub(crate) fn from_parts(shape: Shape, data: Buffer<T>) -> Self {
        debug_assert_eq!(numel(&shape), data.as_slice().len());
        Tensor { shape, data }
    }

    /// The dimensions, outermost first (empty for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.as_slice().len()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        self.data.as_slice()
    }

    /// The elements in row-major order, mutable (for in-place updates).
    pub fn data_mut(&mut self) -> &mut [T] {
        self.data.as_mut_slice()
    }

    /// The elements as a `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.data().to_vec()
    }

    /// The element of a one-element tensor (any shape with one element).
    ///
    /// # Panics
    /// If the tensor has more or fewer than one element.
    #[track_caller]
    pub fn item(&self) -> T {
        assert_eq!(
            self.numel(),
            1,
            "Tensor::item: tensor of shape {:?} has {} elements, not 1",
            self.shape(),
            self.numel()
        );
        self.data()[0]
    }

    /// The element at a multi-index.
    ///
    /// # Panics
    /// If the index has the wrong length or is out of bounds.
    #[track_caller]
    pub fn get(&self, index: &[usize]) -> T {
        self.data()[self.offset(index)]
    }

    /// Sets the element at a multi-index.
    #[track_caller]
    pub fn set(&mut self, index: &[usize], v: T) {
        let o = self.offset(index);
        self.data_mut()[o] = v;
    }

    #[track_caller]
    fn offset(&self, index: &[usize]) -> usize {
        assert!(
            index.len() == self.ndim() && index.iter().zip(self.shape()).all(|(i, d)| i < d),
            "Tensor index {:?} is out of bounds for shape {:?}",
            index,
            self.shape()
        );
        index
            .iter()
            .zip(strides(self.shape()))
            .map(|(i, s)| i * s)
            .sum()
    }

    /// The same elements viewed with another shape of equal size.
    ///
    /// # Panics
    /// If the element counts differ.
    #[track_caller]
    pub fn reshape(&self, shape: impl AsRef<[usize]>) -> Self {
        let shape = shape.as_ref();
        assert_eq!(
            numel(shape),
            self.numel(),
            "reshape: cannot view shape {:?} ({} elements) as {:?}",
            self.shape(),
            self.numel(),
            shape
        );
        Tensor {
            shape: Shape::from_slice(shape),
            data: self.data.clone(),
        }
    }

    /// Applies `f` to every element. Large tensors are mapped in two
    /// halves on two threads, so `f` must be `Sync` (closures over plain
    /// numbers are).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, -2.0], [2]);
    /// assert_eq!(t.map(|v| v.abs()).data(), &[1.0, 2.0]);
    /// ```
    pub fn map(&self, f: impl Fn(T) -> T + Sync) -> Self {
        if self.ndim() == 0 {
            return Tensor::scalar(f(self.data()[0]));
        }
        Tensor {
            shape: Shape::from_slice(&self.shape),
            data: kernels::map_buffer(self.data(), f),
        }
    }

    /// The entries at `idx` along the first axis (rows of a matrix), in
    /// that order.
    ///
    /// # Panics
    /// If an index is out of range.
    #[track_caller]
    pub fn rows(&self, idx: &[usize]) -> Self {
        let n = self.shape().first().copied().unwrap_or(0);
        if let Some(bad) = idx.iter().find(|&&i| i >= n) {
            panic!("Tensor::rows: index {bad} is out of range for {n} rows");
        }
        let inner = self.numel().checked_div(n).unwrap_or(0);
        let mut shape = Shape::from_slice(self.shape());
        shape[0] = idx.len();
        let data = Buffer::collect_n(
            idx.len() * inner,
            idx.iter()
                .flat_map(|&i| self.data()[i * inner..(i + 1) * inner].iter().copied()),
        );
        Tensor::from_parts(shape, data)
    }

    /// Converts every element to another float type.
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        Tensor {
            shape: Shape::from_slice(&self.shape),
            data: Buffer::collect_n(
                self.numel(),
                self.data().iter().map(|v| U::from(*v).unwrap()),
            ),
        }
    }

    /// The index of the largest element along `axis` for every position of
    /// the other axes, in row-major order of those (the first of tied
    /// maxima; NaN counts as largest, as in NumPy).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::from_vec(vec![1.0f32, 5.0, 2.0, 7.0, 0.0, 7.0], [2, 3]);
    /// assert_eq!(t.argmax(1), vec![1, 0]);
    /// assert_eq!(t.argmax(0), vec![1, 0, 1]);
    /// ```
    ///
    /// # Panics
    /// If `axis` is not an axis of the tensor or has length 0.
    #[track_caller]
    pub fn argmax(&self, axis: impl AxisIndex) -> Vec<usize> {
        let shape = self.shape();
        let resolved = axis.resolve(shape.len()).filter(|&a| shape[a] > 0);
        let Some(axis) = resolved else {
            panic!("argmax: axis {axis} of a tensor of shape {shape:?} (it needs a non-empty axis)")
        };
        let n = shape[axis];
        let inner: usize = shape[axis + 1..].iter().product();
        let outer: usize = shape[..axis].iter().product();
        let data = self.data();
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| data[(o * n + k) * inner + i];
                let best = (1..n).fold(0, |best, k| {
                    let (v, b) = (at(k), at(best));
                    if !b.is_nan() && (v > b || v.is_nan()) {
                        k
                    } else {
                        best
                    }
                });
                out.push(best);
            }
        }
        out
    }

    /// Largest absolute difference to another tensor of the same shape.
    #[track_caller]
    pub fn max_abs_diff(&self, other: &Tensor<T>) -> T {
        assert_eq!(self.shape(), other.shape(), "max_abs_diff: shapes differ");
        self.data()
            .iter()
            .zip(other.data())
            .fold(T::zero(), |m, (a, b)| m.max((*a - *b).abs()))
    }

    /// Adds `other` (of the same shape) into `self` in place.
    #[track_caller]
    pub fn add_assign(&mut self, other: &Tensor<T>) {
        if self.ndim() == 0 && other.ndim() == 0 {
            self.data_mut()[0] = self.data()[0] + other.data()[0];
            return;
        }
        assert_eq!(self.shape(), other.shape(), "add_assign: shapes differ");
        simd::add_to(self.data_mut(), other.data());
    }

    /// The elements as a `Vec`, without copying when they are on the heap.
    pub fn into_vec(self) -> Vec<T> {
        self.data.into_vec()
    }
}

impl<T: Element> From<T> for Tensor<T> {
    fn from(v: T) -> Self {
        Tensor::scalar(v)
    }
}

impl<T: Element> PartialEq for Tensor<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data() == other.data()
    }
}
