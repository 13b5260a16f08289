//! Elementwise functions of one input. Each op states its forward and its
//! local derivative, written on the output where that is simplest (as the
//! chapter does: tanh' = 1 - y², sigmoid' = y(1 - y)).

use super::{Op, Pointwise, Unary};
use crate::tape::Var;
use crate::tensor::Element;

/// The logistic sigmoid without overflow: `exp` only ever sees `-|x|`.
pub(crate) fn sigmoid<T: Element>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// `e^x`; d/dx = y.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Exp;
impl Unary for Exp {
    const NAME: &'static str = "exp";
    const DF: &'static str = "{y}";
    fn f<T: Element>(&self, x: T) -> T {
        x.exp()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, _: &S, y: &S) -> S {
        y.clone()
    }
}

/// Natural logarithm; d/dx = 1/x.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Ln;
impl Unary for Ln {
    const NAME: &'static str = "ln";
    const DF: &'static str = "1/{x}";
    fn f<T: Element>(&self, x: T) -> T {
        x.ln()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.recip()
    }
}

/// `√x`; d/dx = 1/(2y).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sqrt;
impl Unary for Sqrt {
    const NAME: &'static str = "sqrt";
    const DF: &'static str = "1/(2·{y})";
    fn f<T: Element>(&self, x: T) -> T {
        x.sqrt()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, _: &S, y: &S) -> S {
        y.recip().scale(T::lit(0.5))
    }
}

/// `x²`; d/dx = 2x.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Square;
impl Unary for Square {
    const NAME: &'static str = "square";
    const DF: &'static str = "2·{x}";
    fn f<T: Element>(&self, x: T) -> T {
        x * x
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.scale(T::lit(2.0))
    }
}

/// `|x|`; d/dx = sign(x), with sign(0) = 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Abs;
impl Unary for Abs {
    const NAME: &'static str = "abs";
    const DF: &'static str = "sign({x})";
    fn f<T: Element>(&self, x: T) -> T {
        x.abs()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.constant_map(|v| if v == T::zero() { v } else { v.signum() })
    }
}

/// `sin x`; d/dx = cos x.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sin;
impl Unary for Sin {
    const NAME: &'static str = "sin";
    const DF: &'static str = "cos {x}";
    fn f<T: Element>(&self, x: T) -> T {
        x.sin()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.cos()
    }
}

/// `cos x`; d/dx = -sin x.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cos;
impl Unary for Cos {
    const NAME: &'static str = "cos";
    const DF: &'static str = "-sin {x}";
    fn f<T: Element>(&self, x: T) -> T {
        x.cos()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.sin().neg()
    }
}

/// `tanh x`; d/dx = 1 - y², computed as (1 - y)(1 + y): where y is close
/// to ±1 the factored form keeps the digits that `1 - y²` would cancel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Tanh;
impl Unary for Tanh {
    const NAME: &'static str = "tanh";
    const DF: &'static str = "1 - {y}²";
    fn f<T: Element>(&self, x: T) -> T {
        x.tanh()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, _: &S, y: &S) -> S {
        y.one_minus().mul(&y.affine(T::one(), T::one()))
    }
}

/// `1 / (1 + e^-x)`, computed without overflow; d/dx = y(1 - y).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sigmoid;
impl Unary for Sigmoid {
    const NAME: &'static str = "sigmoid";
    const DF: &'static str = "{y}·(1 - {y})";
    fn f<T: Element>(&self, x: T) -> T {
        sigmoid(x)
    }
    fn df<T: Element, S: Pointwise<T>>(&self, _: &S, y: &S) -> S {
        y.mul(&y.one_minus())
    }
}

/// `max(x, 0)`; d/dx = 1 if x > 0 else 0 (so ReLU'(0) = 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Relu;
impl Unary for Relu {
    const NAME: &'static str = "relu";
    const DF: &'static str = "1 if {x} > 0 else 0";
    fn f<T: Element>(&self, x: T) -> T {
        // NaN stays NaN (it fails `x <= 0`), as in PyTorch.
        if x <= T::zero() {
            T::zero()
        } else {
            x
        }
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.constant_map(|v| if v > T::zero() { T::one() } else { T::zero() })
    }
}

/// `x` if x > 0 else `slope · x`; d/dx = 1 if x > 0 else `slope`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LeakyRelu {
    pub(crate) slope: f64,
}
impl Unary for LeakyRelu {
    const NAME: &'static str = "leaky_relu";
    const DF: &'static str = "1 if {x} > 0 else {p}";
    fn f<T: Element>(&self, x: T) -> T {
        if x > T::zero() {
            x
        } else {
            T::lit(self.slope) * x
        }
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.constant_map(|v| {
            if v > T::zero() {
                T::one()
            } else {
                T::lit(self.slope)
            }
        })
    }
}

/// `ln(1 + e^x)`, computed as `max(x, 0) + ln(1 + e^-|x|)` so it never
/// overflows; d/dx = sigmoid(x).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Softplus;
impl Unary for Softplus {
    const NAME: &'static str = "softplus";
    const DF: &'static str = "sigmoid({x})";
    fn f<T: Element>(&self, x: T) -> T {
        x.max(T::zero()) + (-x.abs()).exp().ln_1p()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.sigmoid()
    }
}

/// The error function; d/dx = 2/√π · e^(-x²).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Erf;
impl Unary for Erf {
    const NAME: &'static str = "erf";
    const DF: &'static str = "2/√π · e^(-{x}²)";
    fn f<T: Element>(&self, x: T) -> T {
        x.erf()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.square()
            .neg()
            .exp()
            .scale(T::lit(std::f64::consts::FRAC_2_SQRT_PI))
    }
}

super::unary_rules!(
    Erf, Exp, Ln, Sqrt, Square, Abs, Sin, Cos, Tanh, Sigmoid, Relu, LeakyRelu, Softplus
);

impl super::TapeNumbers for LeakyRelu {
    fn to_numbers(&self) -> [f64; 2] {
        [self.slope, 0.0]
    }
    fn from_numbers([slope, _]: [f64; 2]) -> Self {
        LeakyRelu { slope }
    }
}

/// The slope `leaky_relu` uses unless told otherwise.
pub const DEFAULT_LEAKY_SLOPE: f64 = 0.01;

super::var_unary! {
    /// `e^x`, elementwise.
    exp => Exp(Exp);
    /// Natural logarithm, elementwise.
    ln => Ln(Ln);
    /// Square root, elementwise.
    sqrt => Sqrt(Sqrt);
    /// `x²`, elementwise.
    square => Square(Square);
    /// `|x|`, elementwise (derivative 0 at 0).
    abs => Abs(Abs);
    /// Sine, elementwise.
    sin => Sin(Sin);
    /// Cosine, elementwise.
    cos => Cos(Cos);
    /// Hyperbolic tangent, elementwise.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(0.5);
    /// let y = x.tanh();
    /// let d = y.backward()[x].item();
    /// assert!((d - (1.0 - y.item().powi(2))).abs() < 1e-15);
    /// ```
    tanh => Tanh(Tanh);
    /// Logistic sigmoid `1/(1 + e^-x)`, elementwise, finite for any input.
    sigmoid => Sigmoid(Sigmoid);
    /// `max(x, 0)`, elementwise (derivative 0 at 0).
    relu => Relu(Relu);
    /// `ln(1 + e^x)`, elementwise, finite for any input.
    softplus => Softplus(Softplus);
    /// The error function, elementwise (used by the exact GELU).
    erf => Erf(Erf);
}

impl<'t, T: Element> Var<'t, T> {
    /// Natural logarithm (same as [`Var::ln`]).
    #[track_caller]
    pub fn log(self) -> Var<'t, T> {
        self.ln()
    }

    /// Leaky ReLU with slope 0.01 ([`DEFAULT_LEAKY_SLOPE`]) for `x <= 0`.
    #[track_caller]
    pub fn leaky_relu(self) -> Var<'t, T> {
        self.leaky_relu_with(T::lit(DEFAULT_LEAKY_SLOPE))
    }

    /// Leaky ReLU with a chosen slope for `x <= 0`.
    #[track_caller]
    pub fn leaky_relu_with(self, slope: T) -> Var<'t, T> {
        let op = LeakyRelu {
            slope: slope.to_f64().unwrap(),
        };
        super::record_numbered(Op::LeakyRelu, op, self)
    }
}
