//! `where(mask, a, b)`: elementwise choice with broadcasting, and the
//! comparisons that make masks. Masks are constants holding 0 and 1.

use super::{shape_error, Algebra, Op, Rule};
use crate::tape::Var;
use crate::tensor::{broadcast_shapes, Element, Tensor};

/// `a` where the mask is non-zero, else `b`; each input gets the gradient
/// where it was chosen (and exactly zero elsewhere, even if `g` is not
/// finite there).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Where;
impl Rule for Where {
    fn name(&self) -> &'static str {
        "where"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        let zero = g.scalar_like(T::zero());
        let mask = xs[0];
        let routed = if k == 1 {
            mask.select(g, &zero)
        } else {
            mask.select(&zero, g)
        };
        routed.sum_to(&xs[k].shape())
    }
}

/// The forward of `where`, or `None` if the three shapes do not broadcast.
pub(crate) fn select_forward<T: Element>(
    mask: &Tensor<T>,
    a: &Tensor<T>,
    b: &Tensor<T>,
) -> Option<Tensor<T>> {
    let out = broadcast_shapes(mask.shape(), &broadcast_shapes(a.shape(), b.shape())?)?;
    let (m, a, b) = (
        mask.broadcast_to(&out),
        a.broadcast_to(&out),
        b.broadcast_to(&out),
    );
    let mut r = a;
    for ((r, &m), &b) in r.data_mut().iter_mut().zip(m.data()).zip(b.data()) {
        if m == T::zero() {
            *r = b;
        }
    }
    Some(r)
}

/// A comparison, recorded as a constant 0/1 mask.
#[derive(Clone, Copy)]
struct Compare(fn(f64, f64) -> bool, &'static str);

fn compare<'t, T: Element>(a: Var<'t, T>, b: Var<'t, T>, c: Compare) -> Var<'t, T> {
    a.same_tape(&b, c.1);
    let v = a.peek(|av| {
        b.peek(|bv| {
            av.zip_map(bv, |p, q| {
                let hit = (c.0)(p.to_f64().unwrap(), q.to_f64().unwrap());
                if hit {
                    T::one()
                } else {
                    T::zero()
                }
            })
        })
    });
    match v {
        Some(v) => a.constant_like(v),
        None => shape_error(c.1, &[a, b], "shapes do not broadcast"),
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// `on_true` where `mask` is non-zero, else `on_false`; all three
    /// broadcast together. The mask is typically made by a comparison.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor, Var};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![-2.0, 3.0], [2]));
    /// let zero = tape.constant(0.0);
    /// let y = Var::where_(x.gt(zero), x, x * 0.1);
    /// assert_eq!(y.value().data(), &[-0.2, 3.0]);
    /// assert_eq!(y.sum().backward()[x].data(), &[0.1, 1.0]);
    /// ```
    #[doc(alias = "where")]
    #[track_caller]
    pub fn where_(mask: Var<'t, T>, on_true: Var<'t, T>, on_false: Var<'t, T>) -> Var<'t, T> {
        mask.same_tape(&on_true, "where");
        mask.same_tape(&on_false, "where");
        let v = {
            let arena = mask.tape().arena.borrow();
            let val = |v: &Var<'t, T>| arena.value(v.index());
            select_forward(&val(&mask), &val(&on_true), &val(&on_false))
        };
        match v {
            Some(v) => mask
                .tape()
                .record(Op::Where(Where), &[mask, on_true, on_false], v),
            None => shape_error(
                "where",
                &[mask, on_true, on_false],
                "shapes do not broadcast",
            ),
        }
    }

    /// Constant mask: 1 where `self > other`.
    #[track_caller]
    pub fn gt(self, other: Var<'t, T>) -> Var<'t, T> {
        compare(self, other, Compare(|a, b| a > b, "gt"))
    }

    /// Constant mask: 1 where `self < other`.
    #[track_caller]
    pub fn lt(self, other: Var<'t, T>) -> Var<'t, T> {
        compare(self, other, Compare(|a, b| a < b, "lt"))
    }

    /// Constant mask: 1 where `self >= other`.
    #[track_caller]
    pub fn ge(self, other: Var<'t, T>) -> Var<'t, T> {
        compare(self, other, Compare(|a, b| a >= b, "ge"))
    }

    /// Constant mask: 1 where `self <= other`.
    #[track_caller]
    pub fn le(self, other: Var<'t, T>) -> Var<'t, T> {
        compare(self, other, Compare(|a, b| a <= b, "le"))
    }
}
