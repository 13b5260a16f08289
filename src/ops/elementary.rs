//! Inverse trigonometric and hyperbolic functions, `log1p`/`expm1`, SiLU,
//! ELU, `clamp` and `atan2`: each forward beside its local derivative, the derivative
//! in a form that stays finite and accurate at the extremes (noted per op).

use super::{record_binary, Binary, Op, Pointwise, Unary};
use crate::tape::Var;
use crate::tensor::Element;

/// `atan x`; d/dx = 1/(1 + x²), which goes to 0 (not NaN) as x² overflows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Atan;
impl Unary for Atan {
    const NAME: &'static str = "atan";
    const DF: &'static str = "1/(1 + {x}²)";
    fn f<T: Element>(&self, x: T) -> T {
        x.atan()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.square().affine(T::one(), T::one()).recip()
    }
}

/// `1/√((1 - x)(1 + x))`: the factored form keeps its digits near ±1,
/// where `1 - x²` would cancel.
fn inverse_sqrt_one_minus_square<T: Element, S: Pointwise<T>>(x: &S) -> S {
    x.one_minus()
        .mul(&x.affine(T::one(), T::one()))
        .powf(T::lit(-0.5))
}

/// `asin x` on [-1, 1]; d/dx = 1/√((1 - x)(1 + x)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Asin;
impl Unary for Asin {
    const NAME: &'static str = "asin";
    const DF: &'static str = "1/√(1 - {x}²)";
    fn f<T: Element>(&self, x: T) -> T {
        x.asin()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        inverse_sqrt_one_minus_square(x)
    }
}

/// `acos x` on [-1, 1]; d/dx = -1/√((1 - x)(1 + x)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Acos;
impl Unary for Acos {
    const NAME: &'static str = "acos";
    const DF: &'static str = "-1/√(1 - {x}²)";
    fn f<T: Element>(&self, x: T) -> T {
        x.acos()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        inverse_sqrt_one_minus_square(x).neg()
    }
}

/// `sinh x`; d/dx = cosh x = (eˣ + e⁻ˣ)/2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sinh;
impl Unary for Sinh {
    const NAME: &'static str = "sinh";
    const DF: &'static str = "cosh {x}";
    fn f<T: Element>(&self, x: T) -> T {
        x.sinh()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.exp().add(&x.neg().exp()).scale(T::lit(0.5))
    }
}

/// `cosh x`; d/dx = sinh x = (eˣ - e⁻ˣ)/2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cosh;
impl Unary for Cosh {
    const NAME: &'static str = "cosh";
    const DF: &'static str = "sinh {x}";
    fn f<T: Element>(&self, x: T) -> T {
        x.cosh()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.exp().sub(&x.neg().exp()).scale(T::lit(0.5))
    }
}

/// `asinh x`; d/dx = 1/√(1 + x²), 0 (not NaN) once x² overflows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Asinh;
impl Unary for Asinh {
    const NAME: &'static str = "asinh";
    const DF: &'static str = "1/√(1 + {x}²)";
    fn f<T: Element>(&self, x: T) -> T {
        x.asinh()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.square().affine(T::one(), T::one()).powf(T::lit(-0.5))
    }
}

/// `ln(1 + x)`, exact for tiny x (log1p(1e-300) = 1e-300); d/dx = 1/(1 + x).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Log1p;
impl Unary for Log1p {
    const NAME: &'static str = "log1p";
    const DF: &'static str = "1/(1 + {x})";
    fn f<T: Element>(&self, x: T) -> T {
        x.ln_1p()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        x.affine(T::one(), T::one()).recip()
    }
}

/// `eˣ - 1`, exact for tiny x; d/dx = eˣ = y + 1 (on the output, as the
/// chapter writes exp's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Expm1;
impl Unary for Expm1 {
    const NAME: &'static str = "expm1";
    const DF: &'static str = "{y} + 1";
    fn f<T: Element>(&self, x: T) -> T {
        x.exp_m1()
    }
    fn df<T: Element, S: Pointwise<T>>(&self, _: &S, y: &S) -> S {
        y.affine(T::one(), T::one())
    }
}

/// SiLU (swish) `x·σ(x)`; d/dx = σ(x)(1 + x(1 - σ(x))), with σ computed
/// without overflow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Silu;
impl Unary for Silu {
    const NAME: &'static str = "silu";
    const DF: &'static str = "σ({x})·(1 + {x}·(1 - σ({x})))";
    fn f<T: Element>(&self, x: T) -> T {
        x * super::unary::sigmoid(x)
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        let s = x.sigmoid();
        s.mul(&x.mul(&s.one_minus()).affine(T::one(), T::one()))
    }
}

/// `atan2(a, b)`, the angle of the point (b, a) in (-π, π];
/// ∂/∂a = b/(a² + b²), ∂/∂b = -a/(a² + b²).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Atan2;
impl Binary for Atan2 {
    const NAME: &'static str = "atan2";
    const DA: &'static str = "{b}/({a}² + {b}²)";
    const DB: &'static str = "-{a}/({a}² + {b}²)";
    fn f<T: Element>(&self, a: T, b: T) -> T {
        a.atan2(b)
    }
    fn da<T: Element, S: Pointwise<T>>(&self, a: &S, b: &S, _: &S) -> S {
        b.div(&a.square().add(&b.square()))
    }
    fn db<T: Element, S: Pointwise<T>>(&self, a: &S, b: &S, _: &S) -> S {
        a.neg().div(&a.square().add(&b.square()))
    }
}

/// `x` limited to `[lo, hi]` (NaN stays NaN, as in PyTorch); d/dx = 1 on
/// `lo ≤ x ≤ hi`, 0 outside.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Clamp {
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}
impl Unary for Clamp {
    const NAME: &'static str = "clamp";
    const DF: &'static str = "1 if {p} ≤ {x} ≤ {q} else 0";
    fn f<T: Element>(&self, x: T) -> T {
        let (lo, hi) = (T::lit(self.lo), T::lit(self.hi));
        if x < lo {
            lo
        } else if x > hi {
            hi
        } else {
            x
        }
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, _: &S) -> S {
        let (lo, hi) = (T::lit(self.lo), T::lit(self.hi));
        x.constant_map(move |v| {
            if v >= lo && v <= hi {
                T::one()
            } else {
                T::zero()
            }
        })
    }
}

/// ELU: `x` if x > 0 else `α(eˣ - 1)`; d/dx = 1 if x > 0 else `y + α`
/// (written on the output, so the second derivative follows).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Elu {
    pub(crate) alpha: f64,
}
impl Unary for Elu {
    const NAME: &'static str = "elu";
    const DF: &'static str = "1 if {x} > 0 else {y} + {p}";
    fn f<T: Element>(&self, x: T) -> T {
        if x > T::zero() {
            x
        } else {
            T::lit(self.alpha) * x.exp_m1()
        }
    }
    fn df<T: Element, S: Pointwise<T>>(&self, x: &S, y: &S) -> S {
        let positive = x.constant_map(|v| if v > T::zero() { T::one() } else { T::zero() });
        y.affine(T::one(), T::lit(self.alpha))
            .mul(&positive.one_minus())
            .add(&positive)
    }
}

impl super::TapeNumbers for Clamp {
    fn to_numbers(&self) -> [f64; 2] {
        [self.lo, self.hi]
    }
    fn from_numbers([lo, hi]: [f64; 2]) -> Self {
        Clamp { lo, hi }
    }
}

impl super::TapeNumbers for Elu {
    fn to_numbers(&self) -> [f64; 2] {
        [self.alpha, 0.0]
    }
    fn from_numbers([alpha, _]: [f64; 2]) -> Self {
        Elu { alpha }
    }
}

super::unary_rules!(Atan, Asin, Acos, Sinh, Cosh, Asinh, Log1p, Expm1, Silu, Clamp, Elu);
super::binary_rules!(Atan2);

super::var_unary! {
    /// Arctangent, elementwise, in (−π/2, π/2); d/dx = 1/(1 + x²).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(1.0);
    /// let y = x.atan();
    /// assert!((y.item() - std::f64::consts::FRAC_PI_4).abs() < 1e-15);
    /// assert_eq!(y.backward()[x].item(), 0.5);
    /// ```
    atan => Atan(Atan);
    /// Arcsine, elementwise, on [−1, 1]; d/dx = 1/√(1 − x²).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(0.6);
    /// let d = x.asin().backward()[x].item();
    /// assert!((d - 1.25).abs() < 1e-15); // 1/√(1 − 0.36) = 1/0.8
    /// ```
    asin => Asin(Asin);
    /// Arccosine, elementwise, on [−1, 1]; d/dx = −1/√(1 − x²).
    acos => Acos(Acos);
    /// Hyperbolic sine, elementwise; d/dx = cosh x.
    sinh => Sinh(Sinh);
    /// Hyperbolic cosine, elementwise; d/dx = sinh x.
    cosh => Cosh(Cosh);
    /// Inverse hyperbolic sine, elementwise; d/dx = 1/√(1 + x²).
    asinh => Asinh(Asinh);
    /// `ln(1 + x)`, elementwise, accurate for tiny x; d/dx = 1/(1 + x).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(1e-300);
    /// assert_eq!(x.log1p().item(), 1e-300); // ln(1 + 1e-300) would be 0
    /// ```
    log1p => Log1p(Log1p);
    /// `eˣ − 1`, elementwise, accurate for tiny x; d/dx = eˣ.
    expm1 => Expm1(Expm1);
    /// SiLU (swish), `x·σ(x)`, elementwise; d/dx = σ(x)(1 + x(1 − σ(x))).
    silu => Silu(Silu);
}

impl<'t, T: Element> Var<'t, T> {
    /// `atan2(self, x)`: the angle of the point `(x, self)`, in (−π, π],
    /// elementwise with broadcasting (as `f64::atan2`, `torch.atan2`).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let (y, x) = (tape.var(1.0), tape.var(-1.0));
    /// let a = y.atan2(x);
    /// assert!((a.item() - 0.75 * std::f64::consts::PI).abs() < 1e-15);
    /// let g = a.backward();
    /// assert_eq!((g[y].item(), g[x].item()), (-0.5, -0.5)); // (x, -y)/(x² + y²)
    /// ```
    #[track_caller]
    pub fn atan2(self, x: Var<'t, T>) -> Var<'t, T> {
        record_binary(Op::Atan2(Atan2), &Atan2, self, x)
    }

    /// `self` limited to `[lo, hi]`, elementwise, as `torch.clamp`: the
    /// gradient passes where `lo ≤ x ≤ hi` and is 0 outside.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![-2.0, 0.5, 3.0], [3]));
    /// let y = x.clamp(-1.0, 1.0);
    /// assert_eq!(y.value().data(), &[-1.0, 0.5, 1.0]);
    /// assert_eq!(y.sum().backward()[x].data(), &[0.0, 1.0, 0.0]);
    /// ```
    ///
    /// # Panics
    /// If `lo > hi` or either is NaN.
    #[track_caller]
    pub fn clamp(self, lo: T, hi: T) -> Var<'t, T> {
        let (lo, hi) = (lo.to_f64().unwrap(), hi.to_f64().unwrap());
        assert!(
            lo <= hi,
            "clamp: needs lo <= hi, got lo = {lo}, hi = {hi} (input of shape {:?})",
            self.shape()
        );
        super::record_numbered(Op::Clamp, Clamp { lo, hi }, self)
    }

    /// ELU with α = 1 (PyTorch's default): `x` if x > 0 else `eˣ − 1`.
    #[track_caller]
    pub fn elu(self) -> Var<'t, T> {
        self.elu_with(T::one())
    }

    /// ELU with a chosen α: `x` if x > 0 else `α(eˣ − 1)`; d/dx = 1 or
    /// `y + α`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(-1.0);
    /// let y = x.elu_with(2.0);
    /// assert!((y.item() - 2.0 * (-1f64).exp_m1()).abs() < 1e-15);
    /// assert!((y.backward()[x].item() - 2.0 * (-1f64).exp()).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn elu_with(self, alpha: T) -> Var<'t, T> {
        let alpha = alpha.to_f64().unwrap();
        super::record_numbered(Op::Elu, Elu { alpha }, self)
    }
}
