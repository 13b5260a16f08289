//! What a derivative rule computes with. Every rule is written once,
//! generically, and runs on three kinds of value:
//!
//! - plain numbers `T` (the scalar fast path of the eager backward walk),
//! - [`Tensor`]s (the eager backward walk),
//! - [`Var`]s (the recorded backward walk, whose result can be
//!   differentiated again).
//!
//! [`Pointwise`] is the elementwise part (all three); [`Algebra`] adds shape
//! and reduction ops (tensors and vars).

use crate::tape::Var;
use crate::tensor::{Conv2dGeom, Element, Shape, Tensor};

/// Elementwise arithmetic that local derivative rules are written in.
/// Binary methods broadcast like NumPy.
pub trait Pointwise<T: Element>: Sized + Clone {
    /// `self + o`
    fn add(&self, o: &Self) -> Self;
    /// `self - o`
    fn sub(&self, o: &Self) -> Self;
    /// `self * o`
    fn mul(&self, o: &Self) -> Self;
    /// `self / o`
    fn div(&self, o: &Self) -> Self;
    /// `self ^ o`
    fn pow(&self, o: &Self) -> Self;
    /// `-self`
    fn neg(&self) -> Self;
    /// `scale * self + shift`
    fn affine(&self, scale: T, shift: T) -> Self;
    /// `self ^ p` for a constant `p`
    fn powf(&self, p: T) -> Self;
    /// `e^self`
    fn exp(&self) -> Self;
    /// natural logarithm
    fn ln(&self) -> Self;
    /// square root
    fn sqrt(&self) -> Self;
    /// `self²`
    fn square(&self) -> Self;
    /// sine
    fn sin(&self) -> Self;
    /// cosine
    fn cos(&self) -> Self;
    /// hyperbolic tangent
    fn tanh(&self) -> Self;
    /// logistic sigmoid
    fn sigmoid(&self) -> Self;
    /// `f` applied to every element, as a constant: no derivative flows
    /// through it (masks such as ReLU's step or the sign of `abs`).
    fn constant_map(&self, f: impl Fn(T) -> T + Sync) -> Self;

    /// `1 - self`
    fn one_minus(&self) -> Self {
        self.affine(-T::one(), T::one())
    }

    /// `c * self`
    fn scale(&self, c: T) -> Self {
        self.affine(c, T::zero())
    }

    /// `1 / self`
    fn recip(&self) -> Self {
        self.powf(-T::one())
    }
}

/// The whole-tensor operations that non-elementwise rules need, on
/// [`Tensor`]s (eager) and [`Var`]s (recorded).
pub trait Algebra<T: Element>: Pointwise<T> {
    /// The shape of the value.
    fn shape(&self) -> Shape;
    /// Sums down to `shape` (undoes broadcasting).
    fn sum_to(self, shape: &[usize]) -> Self;
    /// Repeats along broadcast dimensions up to `shape`.
    fn broadcast_to(&self, shape: &[usize]) -> Self;
    /// Same elements, another shape.
    fn reshape(&self, shape: &[usize]) -> Self;
    /// Reorders dimensions.
    fn permute(&self, perm: &[usize]) -> Self;
    /// Sum along an axis.
    fn sum_axis(&self, axis: usize, keepdim: bool) -> Self;
    /// Softmax along an axis.
    fn softmax(&self, axis: usize) -> Self;
    /// Matrix product (2-d or batched 3-d), each operand optionally
    /// transposed in its last two dimensions.
    fn matmul_t(&self, o: &Self, ta: bool, tb: bool) -> Self;
    /// 2-d convolution with weight `w` (see [`Var::conv2d`]).
    fn conv2d(&self, w: &Self, geom: Conv2dGeom) -> Self;
    /// The adjoint of `conv2d` in its input, onto an input of size `hw`:
    /// `self` is the output-shaped gradient.
    fn conv2d_input_grad(&self, w: &Self, geom: Conv2dGeom, hw: [usize; 2]) -> Self;
    /// The adjoint of `conv2d` in its weight (of kernel size `k`): `self`
    /// is the input, `gy` the output-shaped gradient.
    fn conv2d_weight_grad(&self, gy: &Self, geom: Conv2dGeom, k: [usize; 2]) -> Self;
    /// `len` entries along `axis` from `start`.
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self;
    /// Zero-pads to length `total` along `axis`, placing `self` at `start`.
    fn pad(&self, axis: usize, start: usize, total: usize) -> Self;
    /// Entries `idx` along `axis`.
    fn index_select(&self, axis: usize, idx: &Self) -> Self;
    /// Adds entries into zeros of length `n` at positions `idx` along `axis`.
    fn index_add(&self, axis: usize, idx: &Self, n: usize) -> Self;
    /// `out[.., p, ..] = self[.., idx[.., p, ..], ..]` along `axis`.
    fn gather(&self, axis: usize, idx: &Self) -> Self;
    /// Adds entries into zeros of length `n` at `idx` along `axis`.
    fn scatter_add(&self, axis: usize, idx: &Self, n: usize) -> Self;
    /// `on_true` where `self` (a 0/1 mask) is 1, else `on_false`.
    fn select(&self, on_true: &Self, on_false: &Self) -> Self;
    /// Constant 0/1 mask marking the first maximum of each lane along `axis`.
    fn first_max_mask(&self, axis: usize) -> Self;
    /// A constant scalar on the same tape (or a plain 0-d tensor).
    fn scalar_like(&self, v: T) -> Self;
    /// The value if this is an eager 0-d tensor: lets elementwise rules
    /// take the fast path on plain numbers. Always `None` for [`Var`].
    fn eager_scalar(&self) -> Option<T>;
    /// `g · local(xs)` element by element in one loop, when `g` and every
    /// one of `xs` are eager tensors of one shape: an elementwise op's
    /// chain rule with no tensor built for its local derivative. `None`
    /// (the default: recorded values, broadcast shapes) leaves the rule to
    /// build the product op by op.
    fn chain_elementwise<const N: usize>(
        g: &Self,
        xs: [&Self; N],
        local: impl Fn([T; N]) -> T + Sync,
    ) -> Option<Self> {
        let _ = (g, xs, local);
        None
    }
    /// Runs a custom op's rule on this kind of value.
    #[doc(hidden)]
    fn custom_vjp(
        op: &dyn super::ErasedCustomOp<T>,
        xs: &[&Self],
        y: &Self,
        g: &Self,
        k: usize,
    ) -> Self;
}

// ---- plain numbers ---------------------------------------------------------

impl<T: Element> Pointwise<T> for T {
    fn add(&self, o: &Self) -> Self {
        *self + *o
    }
    fn sub(&self, o: &Self) -> Self {
        *self - *o
    }
    fn mul(&self, o: &Self) -> Self {
        *self * *o
    }
    fn div(&self, o: &Self) -> Self {
        *self / *o
    }
    fn pow(&self, o: &Self) -> Self {
        super::arith::pow_forward(*self, *o)
    }
    fn neg(&self) -> Self {
        -*self
    }
    fn affine(&self, scale: T, shift: T) -> Self {
        scale * *self + shift
    }
    fn powf(&self, p: T) -> Self {
        super::arith::pow_forward(*self, p)
    }
    fn exp(&self) -> Self {
        T::exp(*self)
    }
    fn ln(&self) -> Self {
        T::ln(*self)
    }
    fn sqrt(&self) -> Self {
        T::sqrt(*self)
    }
    fn square(&self) -> Self {
        *self * *self
    }
    fn sin(&self) -> Self {
        T::sin(*self)
    }
    fn cos(&self) -> Self {
        T::cos(*self)
    }
    fn tanh(&self) -> Self {
        T::tanh(*self)
    }
    fn sigmoid(&self) -> Self {
        super::unary::sigmoid(*self)
    }
    fn constant_map(&self, f: impl Fn(T) -> T + Sync) -> Self {
        f(*self)
    }
}

// ---- eager tensors ---------------------------------------------------------

fn zip<T: Element>(a: &Tensor<T>, b: &Tensor<T>, f: impl Fn(T, T) -> T + Sync) -> Tensor<T> {
    a.zip_map(b, f)
        .expect("shapes inside a derivative rule always broadcast")
}

impl<T: Element> Pointwise<T> for Tensor<T> {
    fn add(&self, o: &Self) -> Self {
        zip(self, o, |a, b| a + b)
    }
    fn sub(&self, o: &Self) -> Self {
        zip(self, o, |a, b| a - b)
    }
    fn mul(&self, o: &Self) -> Self {
        zip(self, o, |a, b| a * b)
    }
    fn div(&self, o: &Self) -> Self {
        zip(self, o, |a, b| a / b)
    }
    fn pow(&self, o: &Self) -> Self {
        zip(self, o, super::arith::pow_forward)
    }
    fn neg(&self) -> Self {
        self.map(|v| -v)
    }
    fn affine(&self, scale: T, shift: T) -> Self {
        self.map(|v| scale * v + shift)
    }
    fn powf(&self, p: T) -> Self {
        self.map(|v| super::arith::pow_forward(v, p))
    }
    fn exp(&self) -> Self {
        self.map(T::exp)
    }
    fn ln(&self) -> Self {
        self.map(T::ln)
    }
    fn sqrt(&self) -> Self {
        self.map(T::sqrt)
    }
    fn square(&self) -> Self {
        self.map(|v| v * v)
    }
    fn sin(&self) -> Self {
        self.map(T::sin)
    }
    fn cos(&self) -> Self {
        self.map(T::cos)
    }
    fn tanh(&self) -> Self {
        self.map(T::tanh)
    }
    fn sigmoid(&self) -> Self {
        self.map(super::unary::sigmoid)
    }
    fn constant_map(&self, f: impl Fn(T) -> T + Sync) -> Self {
        self.map(f)
    }
}

impl<T: Element> Algebra<T> for Tensor<T> {
    fn shape(&self) -> Shape {
        Shape::from_slice(Tensor::shape(self))
    }
    fn sum_to(self, shape: &[usize]) -> Self {
        if Tensor::shape(&self) == shape {
            self
        } else {
            Tensor::sum_to(&self, shape)
        }
    }
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        Tensor::broadcast_to(self, shape)
    }
    fn reshape(&self, shape: &[usize]) -> Self {
        Tensor::reshape(self, shape)
    }
    fn permute(&self, perm: &[usize]) -> Self {
        Tensor::permute(self, perm)
    }
    fn sum_axis(&self, axis: usize, keepdim: bool) -> Self {
        Tensor::sum_axis(self, axis, keepdim)
    }
    fn softmax(&self, axis: usize) -> Self {
        self.map_lanes(axis, crate::tensor::kernels::softmax_lane)
    }
    fn matmul_t(&self, o: &Self, ta: bool, tb: bool) -> Self {
        Tensor::matmul_t(self, o, ta, tb)
    }
    fn conv2d(&self, w: &Self, geom: Conv2dGeom) -> Self {
        super::conv::eager_conv2d(self, w, geom)
    }
    fn conv2d_input_grad(&self, w: &Self, geom: Conv2dGeom, hw: [usize; 2]) -> Self {
        super::conv::eager_input_grad(self, w, geom, hw)
    }
    fn conv2d_weight_grad(&self, gy: &Self, geom: Conv2dGeom, k: [usize; 2]) -> Self {
        super::conv::eager_weight_grad(self, gy, geom, k)
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        Tensor::narrow(self, axis, start, len)
    }
    fn pad(&self, axis: usize, start: usize, total: usize) -> Self {
        Tensor::pad(self, axis, start, total)
    }
    fn index_select(&self, axis: usize, idx: &Self) -> Self {
        Tensor::index_select(self, axis, idx)
    }
    fn index_add(&self, axis: usize, idx: &Self, n: usize) -> Self {
        Tensor::index_add(self, axis, idx, n)
    }
    fn gather(&self, axis: usize, idx: &Self) -> Self {
        Tensor::gather(self, axis, idx)
    }
    fn scatter_add(&self, axis: usize, idx: &Self, n: usize) -> Self {
        Tensor::scatter_add(self, axis, idx, n)
    }
    fn select(&self, on_true: &Self, on_false: &Self) -> Self {
        super::select::select_forward(self, on_true, on_false)
            .expect("shapes inside a derivative rule always broadcast")
    }
    fn first_max_mask(&self, axis: usize) -> Self {
        Tensor::first_max_mask(self, axis)
    }
    fn scalar_like(&self, v: T) -> Self {
        Tensor::scalar(v)
    }
    fn eager_scalar(&self) -> Option<T> {
        (self.ndim() == 0).then(|| self.data()[0])
    }
    fn chain_elementwise<const N: usize>(
        g: &Self,
        xs: [&Self; N],
        local: impl Fn([T; N]) -> T + Sync,
    ) -> Option<Self> {
        let same = xs.iter().all(|x| x.shape() == g.shape());
        same.then(|| g.chain(xs, local))
    }
    fn custom_vjp(
        op: &dyn super::ErasedCustomOp<T>,
        xs: &[&Self],
        y: &Self,
        g: &Self,
        k: usize,
    ) -> Self {
        op.vjp_eager(xs, y, g, k)
    }
}

// ---- recorded vars ---------------------------------------------------------

impl<'t, T: Element> Pointwise<T> for Var<'t, T> {
    fn add(&self, o: &Self) -> Self {
        *self + *o
    }
    fn sub(&self, o: &Self) -> Self {
        *self - *o
    }
    fn mul(&self, o: &Self) -> Self {
        *self * *o
    }
    fn div(&self, o: &Self) -> Self {
        *self / *o
    }
    fn pow(&self, o: &Self) -> Self {
        Var::pow(*self, *o)
    }
    fn neg(&self) -> Self {
        -*self
    }
    fn affine(&self, scale: T, shift: T) -> Self {
        Var::affine(*self, scale, shift)
    }
    fn powf(&self, p: T) -> Self {
        Var::powf(*self, p)
    }
    fn exp(&self) -> Self {
        Var::exp(*self)
    }
    fn ln(&self) -> Self {
        Var::ln(*self)
    }
    fn sqrt(&self) -> Self {
        Var::sqrt(*self)
    }
    fn square(&self) -> Self {
        Var::square(*self)
    }
    fn sin(&self) -> Self {
        Var::sin(*self)
    }
    fn cos(&self) -> Self {
        Var::cos(*self)
    }
    fn tanh(&self) -> Self {
        Var::tanh(*self)
    }
    fn sigmoid(&self) -> Self {
        Var::sigmoid(*self)
    }
    fn constant_map(&self, f: impl Fn(T) -> T + Sync) -> Self {
        let v = self.peek(|v| v.map(f));
        self.constant_like(v)
    }
}

impl<'t, T: Element> Algebra<T> for Var<'t, T> {
    fn shape(&self) -> Shape {
        Var::shape(self)
    }
    fn sum_to(self, shape: &[usize]) -> Self {
        Var::sum_to(self, shape)
    }
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        Var::broadcast_to(*self, shape)
    }
    fn reshape(&self, shape: &[usize]) -> Self {
        Var::reshape(*self, shape)
    }
    fn permute(&self, perm: &[usize]) -> Self {
        Var::permute(*self, perm)
    }
    fn sum_axis(&self, axis: usize, keepdim: bool) -> Self {
        Var::sum_axis(*self, axis, keepdim)
    }
    fn softmax(&self, axis: usize) -> Self {
        Var::softmax(*self, axis)
    }
    fn matmul_t(&self, o: &Self, ta: bool, tb: bool) -> Self {
        Var::matmul_t(*self, *o, ta, tb)
    }
    fn conv2d(&self, w: &Self, geom: Conv2dGeom) -> Self {
        Var::conv2d(*self, *w, geom)
    }
    fn conv2d_input_grad(&self, w: &Self, geom: Conv2dGeom, hw: [usize; 2]) -> Self {
        super::conv::record_input_grad(*self, *w, geom, hw)
    }
    fn conv2d_weight_grad(&self, gy: &Self, geom: Conv2dGeom, k: [usize; 2]) -> Self {
        super::conv::record_weight_grad(*self, *gy, geom, k)
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        Var::narrow(*self, axis, start, len)
    }
    fn pad(&self, axis: usize, start: usize, total: usize) -> Self {
        Var::pad(*self, axis, start, total)
    }
    fn index_select(&self, axis: usize, idx: &Self) -> Self {
        super::index::record_index_select(*self, axis, *idx)
    }
    fn index_add(&self, axis: usize, idx: &Self, n: usize) -> Self {
        super::index::record_index_add(*self, axis, *idx, n)
    }
    fn gather(&self, axis: usize, idx: &Self) -> Self {
        super::index::record_gather(*self, axis, *idx)
    }
    fn scatter_add(&self, axis: usize, idx: &Self, n: usize) -> Self {
        super::index::record_scatter_add(*self, axis, *idx, n)
    }
    fn select(&self, on_true: &Self, on_false: &Self) -> Self {
        Var::where_(*self, *on_true, *on_false)
    }
    fn first_max_mask(&self, axis: usize) -> Self {
        let m = self.peek(|v| v.first_max_mask(axis));
        self.constant_like(m)
    }
    fn scalar_like(&self, v: T) -> Self {
        self.constant_like(Tensor::scalar(v))
    }
    fn eager_scalar(&self) -> Option<T> {
        None
    }
    fn custom_vjp(
        op: &dyn super::ErasedCustomOp<T>,
        xs: &[&Self],
        y: &Self,
        g: &Self,
        k: usize,
    ) -> Self {
        op.vjp_recorded(xs, y, g, k)
    }
}
