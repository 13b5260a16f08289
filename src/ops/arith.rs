//! Arithmetic: `+ - * /`, pow, maximum, minimum (broadcasting), negation,
//! affine maps with plain numbers (`2.0 * x + 1.0`) and constant powers.

use super::{record_binary, record_unary, Algebra, Binary, Op, Pointwise, Rule, Unary};
use crate::tape::Var;
use crate::tensor::{Element, Tensor};
use std::ops;

/// `a^b`, with integer exponents through repeated multiplication (exact for
/// `x²`, `1/x`, …) and the rest through `powf`.
pub(crate) fn pow_forward<T: Element>(a: T, b: T) -> T {
    match b.to_i32() {
        Some(n) if T::from_i32(n) == Some(b) => a.powi(n),
        _ => a.powf(b),
    }
}

/// `a + b`
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Add;
impl Binary for Add {
    const NAME: &'static str = "add";
    const DA: &'static str = "1";
    const DB: &'static str = "1";
    fn f<T: Element>(&self, a: T, b: T) -> T {
        a + b
    }
    fn da<T: Element, S: Pointwise<T>>(&self, a: &S, _: &S, _: &S) -> S {
        a.constant_map(|_| T::one())
    }
    fn db<T: Element, S: Pointwise<T>>(&self, _: &S, b: &S, _: &S) -> S {
        b.constant_map(|_| T::one())
    }
}
// The local derivatives are 1: pass `g` straight back, without multiplying.
impl Rule for Add {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        g.clone().sum_to(&xs[k].shape())
    }
    fn scalar_locals<T: Element>(&self, _: [T; 2], _: T) -> Option<[T; 2]> {
        Some([T::one(), T::one()])
    }
    fn scalar_forward<T: Element>(&self, [a, b]: [T; 2]) -> Option<T> {
        Some(Binary::f(self, a, b))
    }
    fn formula(&self, k: usize) -> Option<&'static str> {
        super::binary_formula::<Self>(k)
    }
}

/// `a - b`
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sub;
impl Binary for Sub {
    const NAME: &'static str = "sub";
    const DA: &'static str = "1";
    const DB: &'static str = "-1";
    fn f<T: Element>(&self, a: T, b: T) -> T {
        a - b
    }
    fn da<T: Element, S: Pointwise<T>>(&self, a: &S, _: &S, _: &S) -> S {
        a.constant_map(|_| T::one())
    }
    fn db<T: Element, S: Pointwise<T>>(&self, _: &S, b: &S, _: &S) -> S {
        b.constant_map(|_| -T::one())
    }
}
impl Rule for Sub {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        let c = g.clone().sum_to(&xs[k].shape());
        if k == 0 {
            c
        } else {
            c.neg()
        }
    }
    fn scalar_locals<T: Element>(&self, _: [T; 2], _: T) -> Option<[T; 2]> {
        Some([T::one(), -T::one()])
    }
    fn scalar_forward<T: Element>(&self, [a, b]: [T; 2]) -> Option<T> {
        Some(Binary::f(self, a, b))
    }
    fn formula(&self, k: usize) -> Option<&'static str> {
        super::binary_formula::<Self>(k)
    }
}

/// `a · b`: ∂/∂a = b, ∂/∂b = a.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Mul;
impl Binary for Mul {
    const NAME: &'static str = "mul";
    const DA: &'static str = "{b}";
    const DB: &'static str = "{a}";
    fn f<T: Element>(&self, a: T, b: T) -> T {
        a * b
    }
    fn da<T: Element, S: Pointwise<T>>(&self, _: &S, b: &S, _: &S) -> S {
        b.clone()
    }
    fn db<T: Element, S: Pointwise<T>>(&self, a: &S, _: &S, _: &S) -> S {
        a.clone()
    }
}

/// `a / b`: ∂/∂a = 1/b, ∂/∂b = -y/b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Div;
impl Binary for Div {
    const NAME: &'static str = "div";
    const DA: &'static str = "1/{b}";
    const DB: &'static str = "-{y}/{b}";
    fn f<T: Element>(&self, a: T, b: T) -> T {
        a / b
    }
    fn da<T: Element, S: Pointwise<T>>(&self, _: &S, b: &S, _: &S) -> S {
        b.recip()
    }
    fn db<T: Element, S: Pointwise<T>>(&self, _: &S, b: &S, y: &S) -> S {
        y.div(b).neg()
    }
}

/// 1 where `v` is 0, else 0: a constant that patches exponents and logs
/// at the points where the textbook formula would give `0 · ∞`.
fn is_zero<T: Element>(v: T) -> T {
    if v == T::zero() {
        T::one()
    } else {
        T::zero()
    }
}

/// `a ^ b`: ∂/∂a = b·a^(b-1) (0 where b = 0, even at a = 0), ∂/∂b = y·ln a
/// (0 where a = 0), as PyTorch defines them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pow;
impl Binary for Pow {
    const NAME: &'static str = "pow";
    const DA: &'static str = "{b}·{a}^({b} - 1)";
    const DB: &'static str = "{y}·ln {a}";
    fn f<T: Element>(&self, a: T, b: T) -> T {
        pow_forward(a, b)
    }
    fn da<T: Element, S: Pointwise<T>>(&self, a: &S, b: &S, _: &S) -> S {
        // Where b = 0 the exponent becomes 0, so the product is 0 · 1.
        let exponent = b.affine(T::one(), -T::one()).add(&b.constant_map(is_zero));
        b.mul(&a.pow(&exponent))
    }
    fn db<T: Element, S: Pointwise<T>>(&self, a: &S, _: &S, y: &S) -> S {
        // Where a = 0 the log sees 1, so the product is y · 0.
        y.mul(&a.add(&a.constant_map(is_zero)).ln())
    }
}

/// How a tie splits the gradient of maximum/minimum: evenly, as in PyTorch
/// and JAX.
fn winner<T: Element>(d: T) -> T {
    if d > T::zero() {
        T::one()
    } else if d == T::zero() {
        T::lit(0.5)
    } else {
        T::zero()
    }
}

/// Elementwise `max(a, b)`: the gradient goes to the larger input (half
/// each on a tie).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Maximum;
impl Binary for Maximum {
    const NAME: &'static str = "maximum";
    const DA: &'static str = "1 if {a} > {b} else (½ if {a} = {b} else 0)";
    const DB: &'static str = "1 if {b} > {a} else (½ if {a} = {b} else 0)";
    fn f<T: Element>(&self, a: T, b: T) -> T {
        if a.is_nan() || b.is_nan() {
            T::nan()
        } else {
            a.max(b)
        }
    }
    fn da<T: Element, S: Pointwise<T>>(&self, a: &S, b: &S, _: &S) -> S {
        a.sub(b).constant_map(winner)
    }
    fn db<T: Element, S: Pointwise<T>>(&self, a: &S, b: &S, _: &S) -> S {
        b.sub(a).constant_map(winner)
    }
}

/// Elementwise `min(a, b)`: the gradient goes to the smaller input (half
/// each on a tie).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Minimum;
impl Binary for Minimum {
    const NAME: &'static str = "minimum";
    const DA: &'static str = "1 if {a} < {b} else (½ if {a} = {b} else 0)";
    const DB: &'static str = "1 if {b} < {a} else (½ if {a} = {b} else 0)";
    fn f<T: Element>(&self, a: T, b: T) -> T {
        if a.is_nan() || b.is_nan() {
            T::nan()
        } else {
            a.min(b)
        }
    }
    fn da<T: Element, S: Pointwise<T>>(&self, a: &S, b: &S, _: &S) -> S {
        b.sub(a).constant_map(winner)
    }
    fn db<T: Element, S: Pointwise<T>>(&self, a: &S, b: &S, _: &S) -> S {
        a.sub(b).constant_map(winner)
    }
}

super::binary_rules!(Mul, Div, Pow, Maximum, Minimum);

/// `-x`: local derivative -1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Neg;
impl Unary for Neg {
    const NAME: &'static str = "neg";
    const DF: &'static str = "-1";
    fn f<T: Element>(&self, x: T) -> T {
        -x
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.constant_map(|_| -T::one())
    }
}

/// `scale · x + shift` with plain numbers (what `2.0 * x + 1.0` records):
/// local derivative `scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Affine {
    pub(crate) scale: f64,
    pub(crate) shift: f64,
}
impl Unary for Affine {
    const NAME: &'static str = "affine";
    const DF: &'static str = "{p}";
    fn f<T: Element>(&self, x: T) -> T {
        T::lit(self.scale) * x + T::lit(self.shift)
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.constant_map(|_| T::lit(self.scale))
    }
}

/// `x ^ p` for a constant `p`: local derivative `p · x^(p-1)` (0 for p = 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PowConst {
    pub(crate) p: f64,
}
impl Unary for PowConst {
    const NAME: &'static str = "powf";
    const DF: &'static str = "{p}·{x}^({p} - 1)";
    fn f<T: Element>(&self, x: T) -> T {
        pow_forward(x, T::lit(self.p))
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        if self.p == 0.0 {
            return x.constant_map(|_| T::zero());
        }
        x.powf(T::lit(self.p - 1.0)).scale(T::lit(self.p))
    }
}

super::unary_rules!(Neg, Affine, PowConst);

impl super::TapeNumbers for Affine {
    fn to_numbers(&self) -> [f64; 2] {
        [self.scale, self.shift]
    }
    fn from_numbers([scale, shift]: [f64; 2]) -> Self {
        Affine { scale, shift }
    }
}

impl super::TapeNumbers for PowConst {
    fn to_numbers(&self) -> [f64; 2] {
        [self.p, 0.0]
    }
    fn from_numbers([p, _]: [f64; 2]) -> Self {
        PowConst { p }
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// `self ^ exponent`, elementwise with broadcasting.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let (a, b) = (tape.var(2.0), tape.var(3.0));
    /// let g = a.pow(b).backward();
    /// assert_eq!(g[a].item(), 12.0);                       // b·a^(b-1)
    /// assert!((g[b].item() - 8.0 * 2f64.ln()).abs() < 1e-12); // a^b·ln a
    /// ```
    #[track_caller]
    pub fn pow(self, exponent: Var<'t, T>) -> Var<'t, T> {
        record_binary(Op::Pow(Pow), &Pow, self, exponent)
    }

    /// `self ^ p` for a plain number `p`.
    #[track_caller]
    pub fn powf(self, p: T) -> Var<'t, T> {
        let op = PowConst {
            p: p.to_f64().unwrap(),
        };
        super::record_numbered(Op::PowConst, op, self)
    }

    /// Elementwise maximum with broadcasting; on a tie each input gets half
    /// the gradient.
    #[track_caller]
    pub fn maximum(self, other: Var<'t, T>) -> Var<'t, T> {
        record_binary(Op::Maximum(Maximum), &Maximum, self, other)
    }

    /// Elementwise minimum with broadcasting; on a tie each input gets half
    /// the gradient.
    #[track_caller]
    pub fn minimum(self, other: Var<'t, T>) -> Var<'t, T> {
        record_binary(Op::Minimum(Minimum), &Minimum, self, other)
    }

    /// `scale · self + shift` in one node.
    #[track_caller]
    pub fn affine(self, scale: T, shift: T) -> Var<'t, T> {
        let op = Affine {
            scale: scale.to_f64().unwrap(),
            shift: shift.to_f64().unwrap(),
        };
        super::record_numbered(Op::Affine, op, self)
    }
}

macro_rules! var_binop {
    ($tr:ident, $method:ident, $variant:ident, $op:ident) => {
        impl<'t, T: Element> ops::$tr<Var<'t, T>> for Var<'t, T> {
            type Output = Var<'t, T>;
            #[track_caller]
            fn $method(self, rhs: Var<'t, T>) -> Var<'t, T> {
                record_binary(Op::$variant($op), &$op, self, rhs)
            }
        }
    };
}
var_binop!(Add, add, Add, Add);
var_binop!(Sub, sub, Sub, Sub);
var_binop!(Mul, mul, Mul, Mul);
var_binop!(Div, div, Div, Div);

impl<'t, T: Element> ops::Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn neg(self) -> Var<'t, T> {
        record_unary(Op::Neg(Neg), &Neg, self)
    }
}

// Mixing with plain numbers: one affine node, except division, which goes
// through a constant so that `x / 3.0` rounds exactly like the division.
impl<'t, T: Element> ops::Add<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn add(self, c: T) -> Var<'t, T> {
        self.affine(T::one(), c)
    }
}
impl<'t, T: Element> ops::Sub<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn sub(self, c: T) -> Var<'t, T> {
        self.affine(T::one(), -c)
    }
}
impl<'t, T: Element> ops::Mul<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn mul(self, c: T) -> Var<'t, T> {
        self.affine(c, T::zero())
    }
}
impl<'t, T: Element> ops::Div<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn div(self, c: T) -> Var<'t, T> {
        self / self.constant_like(Tensor::scalar(c))
    }
}

macro_rules! number_lhs {
    ($($t:ty),*) => {$(
        impl<'t> ops::Add<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn add(self, x: Var<'t, $t>) -> Var<'t, $t> {
                x.affine(1.0, self)
            }
        }
        impl<'t> ops::Sub<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn sub(self, x: Var<'t, $t>) -> Var<'t, $t> {
                x.affine(-1.0, self)
            }
        }
        impl<'t> ops::Mul<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn mul(self, x: Var<'t, $t>) -> Var<'t, $t> {
                x.affine(self, 0.0)
            }
        }
        impl<'t> ops::Div<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn div(self, x: Var<'t, $t>) -> Var<'t, $t> {
                x.constant_like(Tensor::scalar(self)) / x
            }
        }
    )*};
}
number_lhs!(f32, f64);
