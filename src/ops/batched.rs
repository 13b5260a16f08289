//! Rules run on a batch of global derivatives at once.
//!
//! A Jacobian (or a Hessian, through grad of grad) needs one backward pass
//! per output element, each with a different one-hot seed. The passes share
//! everything but the seed, and every rule is linear in `g`, so they can run
//! as one pass in which `g` carries a leading batch axis. [`Batched`]
//! implements [`Algebra`] for such values: the op rules run unchanged, and
//! each shape-aware method shifts its axes past the batch axis. Values
//! without a batch axis (the forward values the rules also read) broadcast
//! against batched ones.

use super::{Algebra, ErasedCustomOp, Pointwise};
use crate::tensor::{Element, Shape, Tensor};
use std::borrow::Cow;
use std::ops::Deref;
use std::rc::Rc;

/// A tensor borrowed from the tape or shared by reference count, so that
/// rules that pass `g` through (add, a reshape to the same shape) or clone
/// it never copy a whole batch.
#[derive(Clone, Debug)]
pub(crate) enum Shared<'a, T: Element> {
    Borrowed(&'a Tensor<T>),
    Owned(Rc<Tensor<T>>),
}

impl<T: Element> Deref for Shared<'_, T> {
    type Target = Tensor<T>;
    fn deref(&self) -> &Tensor<T> {
        match self {
            Shared::Borrowed(t) => t,
            Shared::Owned(t) => t,
        }
    }
}

impl<T: Element> Shared<'_, T> {
    pub(crate) fn into_owned(self) -> Tensor<T> {
        match self {
            Shared::Borrowed(t) => t.clone(),
            Shared::Owned(t) => Rc::try_unwrap(t).unwrap_or_else(|t| (*t).clone()),
        }
    }
}

/// A tensor that may carry a leading batch axis of length `batch`. Forward
/// values are borrowed from the tape; results are owned.
#[derive(Clone, Debug)]
pub(crate) struct Batched<'a, T: Element> {
    pub(crate) t: Shared<'a, T>,
    /// Length of the leading batch axis, or `None` for a plain value.
    pub(crate) batch: Option<usize>,
}

impl<'a, T: Element> Batched<'a, T> {
    /// A value without a batch axis.
    pub(crate) fn plain(t: Cow<'a, Tensor<T>>) -> Self {
        let t = match t {
            Cow::Borrowed(t) => Shared::Borrowed(t),
            Cow::Owned(t) => Shared::Owned(Rc::new(t)),
        };
        Batched { t, batch: None }
    }

    /// `t`'s leading axis is the batch.
    pub(crate) fn batch(t: Tensor<T>) -> Self {
        let b = t.shape()[0];
        Batched {
            t: Shared::Owned(Rc::new(t)),
            batch: Some(b),
        }
    }

    fn with(&self, t: Tensor<T>) -> Self {
        Batched {
            t: Shared::Owned(Rc::new(t)),
            batch: self.batch,
        }
    }

    /// The shape of one example.
    fn item_shape(&self) -> &[usize] {
        match self.batch {
            Some(_) => &self.t.shape()[1..],
            None => self.t.shape(),
        }
    }

    /// `[batch] ++ shape` for a batched value, `shape` otherwise.
    fn full(&self, shape: &[usize]) -> Shape {
        let mut s = Shape::new();
        s.extend(self.batch);
        s.extend_from_slice(shape);
        s
    }

    /// The tensor with its example shape padded on the left with 1s to
    /// `rank` dimensions (after the batch axis), so that plain NumPy
    /// broadcasting lines up example dimensions, never the batch axis.
    fn at_rank(&self, rank: usize) -> Cow<'_, Tensor<T>> {
        let s = self.item_shape();
        match self.batch {
            Some(b) if s.len() < rank => {
                let mut shape: Shape = [b].into_iter().collect();
                shape.extend(std::iter::repeat_n(1, rank - s.len()));
                shape.extend_from_slice(s);
                Cow::Owned(self.t.reshape(shape))
            }
            _ => Cow::Borrowed(&*self.t),
        }
    }

    /// An elementwise op over several values, batch axes aligned.
    fn zip_all(parts: &[&Self], f: impl FnOnce(&[&Tensor<T>]) -> Tensor<T>) -> Self {
        let rank = parts
            .iter()
            .map(|p| p.item_shape().len())
            .max()
            .unwrap_or(0);
        let batch = parts.iter().find_map(|p| p.batch);
        let aligned: Vec<_> = parts.iter().map(|p| p.at_rank(rank)).collect();
        let refs: Vec<&Tensor<T>> = aligned.iter().map(|c| c.as_ref()).collect();
        Batched {
            t: Shared::Owned(Rc::new(f(&refs))),
            batch,
        }
    }

    fn zip(&self, o: &Self, f: impl Fn(T, T) -> T + Sync) -> Self {
        Self::zip_all(&[self, o], |ts| {
            ts[0]
                .zip_map(ts[1], f)
                .expect("shapes inside a derivative rule always broadcast")
        })
    }

    /// An axis of the example, as an axis of the stored tensor.
    fn axis(&self, axis: usize) -> usize {
        axis + usize::from(self.batch.is_some())
    }

    /// Example `b` of a batched value.
    fn example(&self, b: usize) -> Tensor<T> {
        self.t.narrow(0, b, 1).reshape(self.item_shape())
    }

    /// Example `b` of a batched value, or the value itself if it has no
    /// batch axis (it is the same for every example).
    fn example_or_all(&self, b: usize) -> Cow<'_, Tensor<T>> {
        match self.batch {
            Some(_) => Cow::Owned(self.example(b)),
            None => Cow::Borrowed(&*self.t),
        }
    }

    /// `f` of two values, example by example when either is batched.
    fn binary(&self, o: &Self, f: impl Fn(&Tensor<T>, &Tensor<T>) -> Tensor<T>) -> Self {
        match self.batch.or(o.batch) {
            None => self.with(f(&self.t, &o.t)),
            Some(b) => Self::per_example(b, |i| f(&self.example_or_all(i), &o.example_or_all(i))),
        }
    }

    /// The batch as a stack of the results of `f` on each example.
    fn per_example(batch: usize, f: impl Fn(usize) -> Tensor<T>) -> Self {
        let rows: Vec<Tensor<T>> = (0..batch).map(f).collect();
        let item = Shape::from_slice(rows[0].shape());
        let mut shape: Shape = [batch].into_iter().collect();
        shape.extend_from_slice(&item);
        let mut data = Vec::with_capacity(rows.iter().map(|r| r.numel()).sum());
        for r in &rows {
            data.extend_from_slice(r.data());
        }
        Batched::batch(Tensor::from_vec(data, shape))
    }
}

impl<T: Element> Pointwise<T> for Batched<'_, T> {
    fn add(&self, o: &Self) -> Self {
        self.zip(o, |a, b| a + b)
    }
    fn sub(&self, o: &Self) -> Self {
        self.zip(o, |a, b| a - b)
    }
    fn mul(&self, o: &Self) -> Self {
        self.zip(o, |a, b| a * b)
    }
    fn div(&self, o: &Self) -> Self {
        self.zip(o, |a, b| a / b)
    }
    fn pow(&self, o: &Self) -> Self {
        self.zip(o, super::arith::pow_forward)
    }
    fn neg(&self) -> Self {
        self.with(self.t.neg())
    }
    fn affine(&self, scale: T, shift: T) -> Self {
        self.with(self.t.affine(scale, shift))
    }
    fn powf(&self, p: T) -> Self {
        self.with(self.t.powf(p))
    }
    fn exp(&self) -> Self {
        self.with(Pointwise::exp(&self.t))
    }
    fn ln(&self) -> Self {
        self.with(Pointwise::ln(&self.t))
    }
    fn sqrt(&self) -> Self {
        self.with(Pointwise::sqrt(&self.t))
    }
    fn square(&self) -> Self {
        self.with(Pointwise::square(&self.t))
    }
    fn sin(&self) -> Self {
        self.with(Pointwise::sin(&self.t))
    }
    fn cos(&self) -> Self {
        self.with(Pointwise::cos(&self.t))
    }
    fn tanh(&self) -> Self {
        self.with(Pointwise::tanh(&self.t))
    }
    fn sigmoid(&self) -> Self {
        self.with(Pointwise::sigmoid(&self.t))
    }
    fn constant_map(&self, f: impl Fn(T) -> T + Sync) -> Self {
        self.with(self.t.map(f))
    }
}

impl<T: Element> Algebra<T> for Batched<'_, T> {
    fn shape(&self) -> Shape {
        Shape::from_slice(self.item_shape())
    }
    fn sum_to(self, shape: &[usize]) -> Self {
        if self.item_shape() == shape {
            return self;
        }
        if self.batch.is_none() {
            return self.with(Tensor::sum_to(&self.t, shape));
        }
        // Sum example dimensions only: pad the target's rank so that the
        // batch axis lines up with itself.
        let rank = self.item_shape().len();
        let mut padded: Shape = std::iter::repeat_n(1, rank - shape.len()).collect();
        padded.extend_from_slice(shape);
        let summed = Tensor::sum_to(&self.t, &self.full(&padded));
        self.with(summed.reshape(self.full(shape)))
    }
    fn broadcast_to(&self, shape: &[usize]) -> Self {
        self.with(self.at_rank(shape.len()).broadcast_to(&self.full(shape)))
    }
    fn reshape(&self, shape: &[usize]) -> Self {
        self.with(self.t.reshape(self.full(shape)))
    }
    fn permute(&self, perm: &[usize]) -> Self {
        match self.batch {
            None => self.with(self.t.permute(perm)),
            Some(_) => {
                let full: Shape = std::iter::once(0)
                    .chain(perm.iter().map(|p| p + 1))
                    .collect();
                self.with(self.t.permute(&full))
            }
        }
    }
    fn sum_axis(&self, axis: usize, keepdim: bool) -> Self {
        self.with(self.t.sum_axis(self.axis(axis), keepdim))
    }
    fn softmax(&self, axis: usize) -> Self {
        self.with(Algebra::softmax(&self.t, self.axis(axis)))
    }
    fn matmul_t(&self, o: &Self, ta: bool, tb: bool) -> Self {
        let (ra, rb) = (self.item_shape().len(), o.item_shape().len());
        let batch = self.batch.or(o.batch);
        match batch {
            None => self.with(self.t.matmul_t(&o.t, ta, tb)),
            // One matrix against a batch of column vectors: their products
            // are the rows of one product, (B_i)ᵀ·op(A)ᵀ, with no copies.
            Some(b)
                if self.batch.is_none()
                    && ra == 2
                    && rb == 2
                    && o.t.shape()[2 - tb as usize] == 1 =>
            {
                let s = self.t.shape();
                let (m, n) = if ta { (s[1], s[0]) } else { (s[0], s[1]) };
                // op(A)ᵀ read through strides: Aᵀ if op(A) = A, else A.
                let at = if ta {
                    (s[1] as isize, 1)
                } else {
                    (1, s[1] as isize)
                };
                let out = Tensor::product(
                    &[b, m, 1],
                    (b, n, m),
                    o.t.data(),
                    (n as isize, 1),
                    self.t.data(),
                    at,
                );
                o.with(out)
            }
            // The tensor product handles a 3-d operand against a 2-d one
            // (or two 3-d ones) directly: that is a batch of examples.
            Some(_) if ra == 2 && rb == 2 => Batched::batch(self.t.matmul_t(&o.t, ta, tb)),
            Some(b) => Self::per_example(b, |i| {
                let x = match self.batch {
                    Some(_) => Cow::Owned(self.example(i)),
                    None => Cow::Borrowed(&*self.t),
                };
                let y = match o.batch {
                    Some(_) => Cow::Owned(o.example(i)),
                    None => Cow::Borrowed(&*o.t),
                };
                x.matmul_t(&y, ta, tb)
            }),
        }
    }
    fn conv2d(&self, w: &Self, geom: crate::tensor::Conv2dGeom) -> Self {
        self.binary(w, |x, w| x.conv2d(w, geom))
    }
    fn conv2d_input_grad(&self, w: &Self, geom: crate::tensor::Conv2dGeom, hw: [usize; 2]) -> Self {
        self.binary(w, |u, w| u.conv2d_input_grad(w, geom, hw))
    }
    fn conv2d_weight_grad(
        &self,
        gy: &Self,
        geom: crate::tensor::Conv2dGeom,
        k: [usize; 2],
    ) -> Self {
        self.binary(gy, |x, gy| x.conv2d_weight_grad(gy, geom, k))
    }
    fn narrow(&self, axis: usize, start: usize, len: usize) -> Self {
        self.with(self.t.narrow(self.axis(axis), start, len))
    }
    fn pad(&self, axis: usize, start: usize, total: usize) -> Self {
        self.with(self.t.pad(self.axis(axis), start, total))
    }
    fn index_select(&self, axis: usize, idx: &Self) -> Self {
        assert!(idx.batch.is_none(), "indices are never batched");
        self.with(self.t.index_select(self.axis(axis), &idx.t))
    }
    fn index_add(&self, axis: usize, idx: &Self, n: usize) -> Self {
        assert!(idx.batch.is_none(), "indices are never batched");
        self.with(self.t.index_add(self.axis(axis), &idx.t, n))
    }
    fn gather(&self, axis: usize, idx: &Self) -> Self {
        match self.batch {
            None => self.with(self.t.gather(axis, &idx.t)),
            Some(b) => Self::per_example(b, |i| self.example(i).gather(axis, &idx.t)),
        }
    }
    fn scatter_add(&self, axis: usize, idx: &Self, n: usize) -> Self {
        match self.batch {
            None => self.with(self.t.scatter_add(axis, &idx.t, n)),
            Some(b) => Self::per_example(b, |i| self.example(i).scatter_add(axis, &idx.t, n)),
        }
    }
    fn select(&self, on_true: &Self, on_false: &Self) -> Self {
        Self::zip_all(&[self, on_true, on_false], |ts| {
            super::select::select_forward(ts[0], ts[1], ts[2])
                .expect("shapes inside a derivative rule always broadcast")
        })
    }
    fn first_max_mask(&self, axis: usize) -> Self {
        self.with(self.t.first_max_mask(self.axis(axis)))
    }
    fn scalar_like(&self, v: T) -> Self {
        Batched::plain(Cow::Owned(Tensor::scalar(v)))
    }
    fn eager_scalar(&self) -> Option<T> {
        match self.batch {
            None => self.t.eager_scalar(),
            Some(_) => None,
        }
    }
    fn custom_vjp(op: &dyn ErasedCustomOp<T>, xs: &[&Self], y: &Self, g: &Self, k: usize) -> Self {
        // A user's rule is written for one example: run it per example.
        assert!(
            y.batch.is_none() && xs.iter().all(|x| x.batch.is_none()),
            "forward values are never batched"
        );
        let refs: Vec<&Tensor<T>> = xs.iter().map(|x| &*x.t).collect();
        let y = &*y.t;
        match g.batch {
            None => g.with(op.vjp_eager(&refs, y, &g.t, k)),
            Some(b) => Self::per_example(b, |i| op.vjp_eager(&refs, y, &g.example(i), k)),
        }
    }
}
