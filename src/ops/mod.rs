//! Every primitive op: its forward and its local derivative rule, side by
//! side, one file per family.
//!
//! - `arith`: `+ - * /`, pow, maximum, minimum, negation, affine maps
//! - `unary`: exp, ln, sqrt, square, abs, sin, cos, tanh, sigmoid, relu,
//!   leaky_relu, softplus, erf
//! - `reduce`: sum, mean, max, logsumexp (all elements or along an axis)
//! - `shape`: reshape, permute/transpose, broadcast_to, sum_to, narrow, pad,
//!   concat, stack
//! - `index`: index_select, gather and their adjoints
//! - `linalg`: matmul
//! - `conv`: conv2d, conv_transpose2d and conv2d's weight adjoint
//! - `pool`: max/avg/adaptive pooling and flatten, composed of the above
//! - `softmax`: softmax and log_softmax along an axis
//! - `select`: where(mask, a, b) and comparisons
//!
//! A rule is a vector-Jacobian product: given the global derivative `g` of
//! the output (`y`), it returns the contribution to input `k`. Rules are
//! generic over [`Algebra`], so the same code runs eagerly on tensors and
//! recorded on the tape (grad of grad). Elementwise ops only state their
//! local derivative (`tanh' = 1 - y²`); `unary_vjp` and `binary_vjp`
//! multiply it by `g` and sum broadcast dimensions away.

mod algebra;
pub(crate) mod arith;
pub(crate) mod batched;
pub(crate) mod conv;
mod custom;
mod elementary;
mod index;
mod linalg;
mod pool;
mod reduce;
mod select;
mod shape;
mod softmax;
mod unary;

pub use algebra::{Algebra, Pointwise};
pub use custom::{CustomOp, ErasedCustomOp};
pub use pool::Pool2d;
pub use unary::DEFAULT_LEAKY_SLOPE;

use crate::tape::Arena;
use crate::tape::Var;
use crate::tensor::{AxisIndex, Element, Shape, Tensor};

/// A vector-Jacobian product rule.
pub(crate) trait Rule {
    /// The op's name, as shown in errors and traces.
    fn name(&self) -> &'static str;
    /// The contribution to input `k` of the global derivative `g` of the
    /// output `y`, given the inputs `xs`.
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], y: &X, g: &X, k: usize) -> X;

    /// For an elementwise op of one or two inputs on plain numbers: the
    /// local derivatives `∂y/∂x_k` (a unary op reads only `xs[0]` and
    /// leaves the second entry 0). Lets the eager walk handle scalar nodes
    /// without building tensors; `None` (the default) means "use `vjp`".
    fn scalar_locals<T: Element>(&self, _xs: [T; 2], _y: T) -> Option<[T; 2]> {
        None
    }

    /// For the same ops: the forward on plain numbers, so that a recorded
    /// scalar program can be re-run with new leaf values
    /// ([`crate::Tape::replay`]); `None` (the default) means "not
    /// replayable".
    fn scalar_forward<T: Element>(&self, _xs: [T; 2]) -> Option<T> {
        None
    }

    /// For the same ops: `∂y/∂x_k` as the chapter writes it, a template
    /// over `{x}` (a unary op's input), `{a}`, `{b}` (a binary op's),
    /// `{y}` (the output) and `{p}`, `{q}` (the op's own numbers), which
    /// traces fill with labels or values; `None` for other ops.
    fn formula(&self, _k: usize) -> Option<&'static str> {
        None
    }
}

/// An elementwise op of one input, stated as forward and local derivative.
pub(crate) trait Unary: Sync {
    const NAME: &'static str;
    /// `df` as the chapter writes it (see [`Rule::formula`]).
    const DF: &'static str;
    fn f<T: Element>(&self, x: T) -> T;
    /// dy/dx, from the input `x` or the output `y` (whichever is simpler).
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, y: &S) -> S;
}

/// An elementwise op of two broadcasting inputs.
pub(crate) trait Binary: Sync {
    const NAME: &'static str;
    /// `da` and `db` as the chapter writes them (see [`Rule::formula`]).
    const DA: &'static str;
    const DB: &'static str;
    fn f<T: Element>(&self, a: T, b: T) -> T;
    /// ∂y/∂a
    fn da<T: Element, S: Pointwise<T>>(&self, a: &S, b: &S, y: &S) -> S;
    /// ∂y/∂b
    fn db<T: Element, S: Pointwise<T>>(&self, a: &S, b: &S, y: &S) -> S;
}

/// `g · f'(x)`: the chain rule for an elementwise op of one input. Eager
/// values take it element by element in one loop (plain numbers, or
/// tensors through [`Algebra::chain_elementwise`]); recorded ones build it
/// from ops, so that it can be differentiated again.
pub(crate) fn unary_vjp<T: Element, U: Unary, X: Algebra<T>>(u: &U, x: &X, y: &X, g: &X) -> X {
    if let (Some(xs), Some(ys), Some(gs)) = (x.eager_scalar(), y.eager_scalar(), g.eager_scalar()) {
        return g.scalar_like(gs * u.df(&xs, &ys));
    }
    if let Some(c) = X::chain_elementwise(g, [x, y], |[x, y]| u.df(&x, &y)) {
        return c;
    }
    g.mul(&u.df(x, y))
}

/// `g · ∂y/∂(a or b)`, summed back to that input's shape (eager values of
/// one shape in one loop, as in [`unary_vjp`]).
pub(crate) fn binary_vjp<T: Element, B: Binary, X: Algebra<T>>(
    b: &B,
    xs: &[&X],
    y: &X,
    g: &X,
    k: usize,
) -> X {
    let (x0, x1) = (xs[0], xs[1]);
    let local = |[p, q, v]: [T; 3]| partial(b, k, &p, &q, &v);
    if let (Some(p), Some(q), Some(v), Some(gs)) = (
        x0.eager_scalar(),
        x1.eager_scalar(),
        y.eager_scalar(),
        g.eager_scalar(),
    ) {
        return g.scalar_like(gs * local([p, q, v]));
    }
    if let Some(c) = X::chain_elementwise(g, [x0, x1, y], local) {
        return c;
    }
    g.mul(&partial(b, k, x0, x1, y)).sum_to(&xs[k].shape())
}

/// ∂y/∂(input `k`) of a binary op, on whichever kind of value.
fn partial<T: Element, B: Binary, S: Pointwise<T>>(b: &B, k: usize, p: &S, q: &S, y: &S) -> S {
    if k == 0 {
        b.da(p, q, y)
    } else {
        b.db(p, q, y)
    }
}

/// A binary op's [`Rule::formula`].
pub(crate) fn binary_formula<B: Binary>(k: usize) -> Option<&'static str> {
    Some(if k == 0 { B::DA } else { B::DB })
}

/// Implements [`Rule`] for elementwise ops through their local derivative.
macro_rules! unary_rules {
    ($($t:ty),* $(,)?) => {$(
        impl crate::ops::Rule for $t {
            fn name(&self) -> &'static str {
                <$t as crate::ops::Unary>::NAME
            }
            fn vjp<T: Element, X: crate::ops::Algebra<T>>(&self, xs: &[&X], y: &X, g: &X, _k: usize) -> X {
                crate::ops::unary_vjp(self, xs[0], y, g)
            }
            fn scalar_locals<T: Element>(&self, xs: [T; 2], y: T) -> Option<[T; 2]> {
                Some([<$t as crate::ops::Unary>::df(self, &xs[0], &y), T::zero()])
            }
            fn scalar_forward<T: Element>(&self, xs: [T; 2]) -> Option<T> {
                Some(<$t as crate::ops::Unary>::f(self, xs[0]))
            }
            fn formula(&self, _k: usize) -> Option<&'static str> {
                Some(<$t as crate::ops::Unary>::DF)
            }
        }
    )*};
}
macro_rules! binary_rules {
    ($($t:ty),* $(,)?) => {$(
        impl crate::ops::Rule for $t {
            fn name(&self) -> &'static str {
                <$t as crate::ops::Binary>::NAME
            }
            fn vjp<T: Element, X: crate::ops::Algebra<T>>(&self, xs: &[&X], y: &X, g: &X, k: usize) -> X {
                crate::ops::binary_vjp(self, xs, y, g, k)
            }
            fn scalar_locals<T: Element>(&self, xs: [T; 2], y: T) -> Option<[T; 2]> {
                let b = self;
                Some([
                    crate::ops::Binary::da(b, &xs[0], &xs[1], &y),
                    crate::ops::Binary::db(b, &xs[0], &xs[1], &y),
                ])
            }
            fn scalar_forward<T: Element>(&self, xs: [T; 2]) -> Option<T> {
                Some(<$t as crate::ops::Binary>::f(self, xs[0], xs[1]))
            }
            fn formula(&self, k: usize) -> Option<&'static str> {
                crate::ops::binary_formula::<$t>(k)
            }
        }
    )*};
}
/// `Var` methods for elementwise ops of one input, each recording its op:
/// `method => Variant(op value);`, with the method's doc comments.
macro_rules! var_unary {
    ($($(#[$doc:meta])* $method:ident => $variant:ident($op:expr);)*) => {
        impl<'t, T: Element> Var<'t, T> {$(
            $(#[$doc])*
            #[track_caller]
            pub fn $method(self) -> Var<'t, T> {
                let op = $op;
                crate::ops::record_unary(crate::ops::Op::$variant(op), &op, self)
            }
        )*}
    };
}
pub(crate) use {binary_rules, unary_rules, var_unary};

/// Where the numbers of an op that carries some (an affine map's scale and
/// shift, `powf`'s exponent, a leaky ReLU's slope) sit on the tape: kept
/// out of `Op` so that it, and so every node, stays small.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct NumSlot(pub(crate) u32);

/// An op whose parameters are up to two numbers, stored on the tape.
pub(crate) trait TapeNumbers: Unary + Rule + Sized {
    fn to_numbers(&self) -> [f64; 2];
    fn from_numbers(n: [f64; 2]) -> Self;
}

/// Records an elementwise op of one input whose numbers go on the tape.
#[track_caller]
pub(crate) fn record_numbered<'t, T: Element, U: TapeNumbers>(
    variant: fn(NumSlot) -> Op,
    u: U,
    x: Var<'t, T>,
) -> Var<'t, T> {
    let slot = x.tape().push_numbers(u.to_numbers());
    record_unary(variant(slot), &u, x)
}

/// The table of ops a node can hold: one line per op, naming the struct
/// that carries its rule; then the ops whose numbers live on the tape.
/// Dispatch is generated from it.
macro_rules! op_table {
    ($($variant:ident($ty:ty)),* $(,)?; numbered: $($nvariant:ident($nty:ty)),* $(,)?;
     packed: $($pvariant:ident($pty:ident)),* $(,)?) => {
        /// What produced a node, with the op's parameters.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub(crate) enum Op {
            /// A value that requires a gradient (made by `Tape::var`).
            Leaf,
            /// A value that never gets a gradient.
            Constant,
            /// A user-defined op (its rule lives on the tape).
            Custom(custom::Custom),
            $($variant($ty),)*
            $($nvariant(NumSlot),)*
            $($pvariant(NumSlot),)*
        }

        impl Op {
            pub(crate) fn name(&self) -> &'static str {
                match self {
                    Op::Leaf => "leaf",
                    Op::Constant => "constant",
                    Op::Custom(r) => r.name(),
                    $(Op::$variant(r) => r.name(),)*
                    $(Op::$nvariant(_) => <$nty as Unary>::NAME,)*
                    $(Op::$pvariant(_) => conv::$pty(conv::Packed::from_numbers([0.0; 2])).name(),)*
                }
            }

            /// The local derivatives on plain numbers, for elementwise ops
            /// (some find their numbers on the tape). Inlined into the
            /// walk's scalar loop, so the locals stay in registers.
            #[inline(always)]
            pub(crate) fn scalar_locals<T: Element>(&self, tape: &crate::Tape<T>, xs: [T; 2], y: T) -> Option<[T; 2]> {
                match self {
                    Op::Leaf | Op::Constant | Op::Custom(_) => None,
                    $(Op::$variant(r) => r.scalar_locals(xs, y),)*
                    $(Op::$nvariant(s) => <$nty>::from_numbers(tape.numbers(*s)).scalar_locals(xs, y),)*
                    $(Op::$pvariant(_) => None,)*
                }
            }

            /// The forward and the local derivatives on plain numbers at
            /// once, for a replay that keeps the partials for the backward
            /// walk.
            #[inline(always)]
            pub(crate) fn scalar_forward_locals<T: Element>(&self, tape: &crate::Tape<T>, xs: [T; 2]) -> Option<(T, [T; 2])> {
                match self {
                    Op::Leaf | Op::Constant | Op::Custom(_) => None,
                    $(Op::$variant(r) => {
                        let y = r.scalar_forward(xs)?;
                        Some((y, r.scalar_locals(xs, y)?))
                    })*
                    $(Op::$nvariant(s) => {
                        let r = <$nty>::from_numbers(tape.numbers(*s));
                        let y = r.scalar_forward(xs)?;
                        Some((y, r.scalar_locals(xs, y)?))
                    })*
                    $(Op::$pvariant(_) => None,)*
                }
            }

            /// Whether `∂y/∂x_k` is exactly one whatever the values (as
            /// the chapter's formula says: `a + b`, `a - b`'s first input),
            /// so a walk can pass the global derivative on unmultiplied.
            pub(crate) fn unit_partial(&self, k: usize) -> bool {
                match self {
                    $(Op::$variant(r) => r.formula(k) == Some("1"),)*
                    _ => false,
                }
            }

            /// `∂y/∂x_k` as the chapter writes it ([`Rule::formula`]), with
            /// the op's own numbers (`{p}`, `{q}`) filled in.
            pub(crate) fn formula<T: Element>(&self, tape: &crate::Tape<T>, k: usize) -> Option<String> {
                match self {
                    Op::Leaf | Op::Constant | Op::Custom(_) => None,
                    $(Op::$variant(r) => r.formula(k).map(str::to_string),)*
                    $(Op::$nvariant(s) => {
                        let [p, q] = tape.numbers(*s);
                        Some(<$nty as Unary>::DF
                            .replace("{p}", &crate::trace::number(p))
                            .replace("{q}", &crate::trace::number(q)))
                    })*
                    $(Op::$pvariant(_) => None,)*
                }
            }

            /// The contribution to input `k`; custom ops find their rule on
            /// the tape, numbered ops their numbers.
            pub(crate) fn vjp<T: Element, X: Algebra<T>>(&self, tape: &crate::Tape<T>, xs: &[&X], y: &X, g: &X, k: usize) -> X {
                match self {
                    Op::Leaf | Op::Constant => unreachable!("leaves have no inputs"),
                    Op::Custom(c) => c.vjp(tape, xs, y, g, k),
                    $(Op::$variant(r) => r.vjp(xs, y, g, k),)*
                    $(Op::$nvariant(s) => <$nty>::from_numbers(tape.numbers(*s)).vjp(xs, y, g, k),)*
                    $(Op::$pvariant(s) => conv::$pty(conv::Packed::from_numbers(tape.numbers(*s))).vjp(xs, y, g, k),)*
                }
            }
        }
    };
}

op_table! {
    Add(arith::Add),
    Sub(arith::Sub),
    Mul(arith::Mul),
    Div(arith::Div),
    Pow(arith::Pow),
    Maximum(arith::Maximum),
    Minimum(arith::Minimum),
    Neg(arith::Neg),
    Exp(unary::Exp),
    Ln(unary::Ln),
    Sqrt(unary::Sqrt),
    Square(unary::Square),
    Abs(unary::Abs),
    Sin(unary::Sin),
    Cos(unary::Cos),
    Atan(elementary::Atan),
    Asin(elementary::Asin),
    Acos(elementary::Acos),
    Sinh(elementary::Sinh),
    Cosh(elementary::Cosh),
    Asinh(elementary::Asinh),
    Log1p(elementary::Log1p),
    Expm1(elementary::Expm1),
    Silu(elementary::Silu),
    Atan2(elementary::Atan2),
    Tanh(unary::Tanh),
    Sigmoid(unary::Sigmoid),
    Relu(unary::Relu),
    Softplus(unary::Softplus),
    Erf(unary::Erf),
    Sum(reduce::Sum),
    Mean(reduce::Mean),
    Max(reduce::Max),
    LogSumExp(reduce::LogSumExp),
    Reshape(shape::Reshape),
    Permute(shape::Permute),
    BroadcastTo(shape::BroadcastTo),
    SumTo(shape::SumTo),
    Narrow(shape::Narrow),
    Pad(shape::Pad),
    Concat(shape::Concat),
    Stack(shape::Stack),
    IndexSelect(index::IndexSelect),
    IndexAdd(index::IndexAdd),
    Gather(index::Gather),
    ScatterAdd(index::ScatterAdd),
    Matmul(linalg::Matmul),
    Softmax(softmax::Softmax),
    LogSoftmax(softmax::LogSoftmax),
    Where(select::Where);
    numbered:
    Affine(arith::Affine),
    PowConst(arith::PowConst),
    LeakyRelu(unary::LeakyRelu),
    Clamp(elementary::Clamp),
    Elu(elementary::Elu);
    packed:
    Conv2d(Conv2d),
    Conv2dInputGrad(Conv2dInputGrad),
    Conv2dWeightGrad(Conv2dWeightGrad),
}

// ---- op parameters, packed so that `Op` stays 8 bytes ------------------------

/// A dimension index stored in one byte: op parameters are kept small
/// because every node holds its `Op` (see `tape/arena.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Axis(u8);

impl Axis {
    /// # Panics
    /// If `axis` is 256 or more (no tensor has that many dimensions in
    /// practice; `check_axis` has already compared it with the rank).
    #[track_caller]
    pub(crate) fn new(axis: usize) -> Self {
        Axis(u8::try_from(axis).expect("axis index must be below 256"))
    }

    pub(crate) fn get(self) -> usize {
        self.0 as usize
    }
}

/// A 32-bit number stored as bytes (alignment 1), so that a parameter like
/// narrow's start packs beside an [`Axis`] in 5 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct U32Bytes([u8; 4]);

impl U32Bytes {
    #[track_caller]
    pub(crate) fn new(v: usize, what: &str) -> Self {
        match u32::try_from(v) {
            Ok(v) => U32Bytes(v.to_le_bytes()),
            Err(_) => panic!("{what}: {v} does not fit in 32 bits"),
        }
    }

    pub(crate) fn get(self) -> usize {
        u32::from_le_bytes(self.0) as usize
    }
}

// ---- recording helpers shared by the op files -------------------------------

/// Records an elementwise op of one input.
#[track_caller]
#[inline(always)]
pub(crate) fn record_unary<'t, T: Element, U: Unary>(op: Op, u: &U, x: Var<'t, T>) -> Var<'t, T> {
    let i = x.index();
    if let Some(v) = x.tape().record_scalar(op, [i], |[s]| u.f(s)) {
        return v;
    }
    // A tensor input (scalars took the path above).
    let forward = |arena: &Arena<T>| Some(arena.value(i).map(|e| u.f(e)).into());
    x.tape().record_with(op, &[x], forward).unwrap()
}

/// Records an elementwise op of two broadcasting inputs.
#[track_caller]
#[inline(always)]
pub(crate) fn record_binary<'t, T: Element, B: Binary>(
    op: Op,
    bin: &B,
    a: Var<'t, T>,
    b: Var<'t, T>,
) -> Var<'t, T> {
    a.same_tape(&b, B::NAME);
    let (i, j) = (a.index(), b.index());
    if let Some(v) = a.tape().record_scalar(op, [i, j], |[p, q]| bin.f(p, q)) {
        return v;
    }
    // At least one tensor input (two scalars took the path above).
    let forward = |arena: &Arena<T>| {
        let v = arena
            .value(i)
            .zip_map(&arena.value(j), |p, q| bin.f(p, q))?;
        Some(v.into())
    };
    match a.tape().record_with(op, &[a, b], forward) {
        Some(v) => v,
        None => shape_error(B::NAME, &[a, b], "shapes do not broadcast"),
    }
}

/// Panics with a message naming the op, each input and its shape.
#[track_caller]
pub(crate) fn shape_error<T: Element>(op: &str, inputs: &[Var<'_, T>], why: &str) -> ! {
    let described: Vec<String> = inputs
        .iter()
        .map(|v| format!("{} with shape {:?}", v.label(), v.shape().as_slice()))
        .collect();
    panic!("{op}: {why}: {}", described.join(" and "))
}

/// The axis `axis` names among `x`'s dimensions (`-1` is the last);
/// panics naming the op, the node and its shape if there is none.
#[track_caller]
pub(crate) fn check_axis<T: Element>(op: &str, x: Var<'_, T>, axis: impl AxisIndex) -> usize {
    let shape = x.shape();
    // A `match`, not `unwrap_or_else`: a closure would lose the caller's line.
    match axis.resolve(shape.len()) {
        Some(a) => a,
        None => panic!(
            "{op}: axis {axis} is out of range for {} with shape {:?} ({} dimensions; \
             axes run from 0 to {}, or from -{} to -1 counted from the end)",
            x.label(),
            shape.as_slice(),
            shape.len(),
            shape.len().saturating_sub(1),
            shape.len()
        ),
    }
}

/// The keepdim form of a reduced shape: `shape` with `axis` set to 1.
pub(crate) fn keepdim_shape(shape: &[usize], axis: usize) -> Shape {
    let mut s = Shape::from_slice(shape);
    s[axis] = 1;
    s
}

/// Index lists as float tensors, checked against the dimension they index.
#[track_caller]
pub(crate) fn index_tensor<T: Element>(
    op: &str,
    x: Var<'_, T>,
    axis: usize,
    idx: &[usize],
    shape: &[usize],
) -> Tensor<T> {
    let n = x.shape()[axis];
    if let Some(bad) = idx.iter().find(|&&i| i >= n) {
        panic!(
            "{op}: index {bad} is out of range for axis {axis} of {} with shape {:?} (length {n})",
            x.label(),
            x.shape().as_slice()
        );
    }
    // Indices ride on the tape as floats; they must be exact integers.
    let exact = T::lit(2.0) / T::epsilon();
    assert!(
        T::from_usize(n).is_some_and(|v| v <= exact),
        "{op}: axis length {n} is too large to hold indices exactly in this float type"
    );
    let data =
        crate::tensor::Buffer::collect_n(idx.len(), idx.iter().map(|&i| T::from_usize(i).unwrap()));
    Tensor::from_parts(Shape::from_slice(shape), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-loop chain rule on eager tensors gives the same bits as the
    /// product built op by op (as recorded values build it).
    #[test]
    fn fused_elementwise_chain_matches_the_op_by_op_product() {
        let t = |s: f64| {
            Tensor::from_vec(
                (0..12).map(|i| (i as f64 * s).sin() + 1.2).collect(),
                [3, 4],
            )
        };
        let (x, z, g) = (t(0.7), t(1.3), t(0.4));
        let y = x.map(|v| v.tanh());
        let fused = unary_vjp(&unary::Tanh, &x, &y, &g);
        assert_eq!(fused, g.mul(&unary::Tanh.df(&x, &y)));

        let y = x.zip_map(&z, |a, b| a / b).unwrap();
        for k in 0..2 {
            let fused = binary_vjp(&arith::Div, &[&x, &z], &y, &g, k);
            let local = if k == 0 {
                arith::Div.da(&x, &z, &y)
            } else {
                arith::Div.db(&x, &z, &y)
            };
            assert_eq!(fused, g.mul(&local), "input {k}");
        }
        // Broadcast shapes take the op-by-op path and sum back.
        let row = Tensor::from_vec(vec![0.5, 1.5, 2.5, 3.5], [4]);
        let y = x.zip_map(&row, |a, b| a * b).unwrap();
        let db = binary_vjp(&arith::Mul, &[&x, &row], &y, &g, 1);
        assert_eq!(db, g.mul(&x).sum_to(&[4]));
    }
}
