//! User-defined ops: a forward and a derivative rule, recorded like any
//! built-in op (the way `torch.autograd.Function` and JAX's `custom_vjp`
//! work). Because the rule is generic over [`Algebra`], a custom op works
//! in the recorded backward pass too, so it can be differentiated twice.

use super::{Algebra, Op, Rule};
use crate::tape::{Tape, Var};
use crate::tensor::{Element, Tensor};
use std::rc::Rc;

/// An op defined outside the crate.
///
/// ```
/// use tapegrad::{Algebra, CustomOp, Pointwise, Tape, Tensor};
///
/// /// x³, with its derivative 3x².
/// struct Cube;
/// impl CustomOp<f64> for Cube {
///     fn name(&self) -> &'static str {
///         "cube"
///     }
///     fn forward(&self, xs: &[&Tensor<f64>]) -> Tensor<f64> {
///         xs[0].map(|v| v * v * v)
///     }
///     fn vjp<X: Algebra<f64>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
///         g.mul(&xs[0].square().scale(3.0))
///     }
/// }
///
/// let tape = Tape::<f64>::new();
/// let x = tape.var(2.0);
/// let y = tape.custom(Cube, &[x]);
/// assert_eq!(y.item(), 8.0);
/// let dy = y.backward_recorded()[x];
/// assert_eq!(dy.item(), 12.0);                 // 3x²
/// assert_eq!(dy.backward()[x].item(), 12.0);   // 6x
/// ```
pub trait CustomOp<T: Element>: 'static {
    /// The name shown in errors and traces.
    fn name(&self) -> &'static str;
    /// The output value from the input values.
    fn forward(&self, inputs: &[&Tensor<T>]) -> Tensor<T>;
    /// The contribution to input `k` of the global derivative `grad` of the
    /// output: the vector-Jacobian product. Written with the methods of
    /// [`Algebra`] and [`Pointwise`](super::Pointwise), it runs eagerly
    /// on tensors and recorded on the tape.
    fn vjp<X: Algebra<T>>(&self, inputs: &[&X], output: &X, grad: &X, k: usize) -> X;
}

/// A [`CustomOp`] behind a trait object: its rule instantiated for the
/// two kinds of value the backward walks use. Implemented for every
/// `CustomOp`; not meant to be implemented by hand.
#[doc(hidden)]
pub trait ErasedCustomOp<T: Element> {
    fn name(&self) -> &'static str;
    fn vjp_eager(&self, xs: &[&Tensor<T>], y: &Tensor<T>, g: &Tensor<T>, k: usize) -> Tensor<T>;
    fn vjp_recorded<'t>(
        &self,
        xs: &[&Var<'t, T>],
        y: &Var<'t, T>,
        g: &Var<'t, T>,
        k: usize,
    ) -> Var<'t, T>;
}

impl<T: Element, C: CustomOp<T>> ErasedCustomOp<T> for C {
    fn name(&self) -> &'static str {
        CustomOp::name(self)
    }
    fn vjp_eager(&self, xs: &[&Tensor<T>], y: &Tensor<T>, g: &Tensor<T>, k: usize) -> Tensor<T> {
        self.vjp(xs, y, g, k)
    }
    fn vjp_recorded<'t>(
        &self,
        xs: &[&Var<'t, T>],
        y: &Var<'t, T>,
        g: &Var<'t, T>,
        k: usize,
    ) -> Var<'t, T> {
        self.vjp(xs, y, g, k)
    }
}

/// A node made by a custom op: `slot` indexes the tape's table of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Custom {
    pub(crate) slot: u32,
}

impl Custom {
    pub(crate) fn vjp<T: Element, X: Algebra<T>>(
        &self,
        tape: &Tape<T>,
        xs: &[&X],
        y: &X,
        g: &X,
        k: usize,
    ) -> X {
        let op = tape.custom_op(self.slot);
        X::custom_vjp(&*op, xs, y, g, k)
    }
}

impl Rule for Custom {
    fn name(&self) -> &'static str {
        "custom"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, _: &[&X], _: &X, _: &X, _: usize) -> X {
        unreachable!("custom ops are dispatched with their tape")
    }
}

impl<T: Element> Tape<T> {
    /// Records a [`CustomOp`] applied to `inputs` (all on this tape).
    #[track_caller]
    pub fn custom<'t>(&'t self, op: impl CustomOp<T>, inputs: &[Var<'t, T>]) -> Var<'t, T> {
        for v in inputs {
            assert!(
                std::ptr::eq(v.tape(), self),
                "custom op {}: input {} belongs to another tape",
                op.name(),
                v.label()
            );
        }
        let value = {
            let arena = self.arena.borrow();
            let mut scalars = smallvec::SmallVec::new();
            let vals = arena.values_of(inputs.iter().map(|v| v.index()), &mut scalars);
            op.forward(&vals)
        };
        let slot = self.push_custom(Rc::new(op));
        self.record(Op::Custom(Custom { slot }), inputs, value)
    }
}
