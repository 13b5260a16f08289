//! Line searches: choosing how far to go along a descent direction `d`.
//! `φ(α) = f(x + αd)`, with `φ'(0) = ∇f·d < 0`.

use super::problem::{dot, Evaluator};

/// Which line search a solver uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LineSearch {
    /// Armijo backtracking: shrink α until `φ(α) <= φ(0) + c1·α·φ'(0)`.
    /// Where `φ(α)` and `φ(0)` agree to rounding, the value cannot tell a
    /// decrease, and the same test on the slope decides
    /// (`∇f(x + αd)ᵀd <= (1 - 2c1)·|φ'(0)|`, Hager and Zhang's approximate
    /// Armijo condition), so the search does not wander once `f` is flat
    /// to machine precision.
    Backtracking {
        /// Sufficient-decrease constant (1e-4).
        c1: f64,
        /// Factor α is multiplied by after a rejected trial (0.5).
        shrink: f64,
    },
    /// Strong Wolfe conditions, by bracketing and zooming with cubic
    /// interpolation (Nocedal & Wright, algorithms 3.5 and 3.6): sufficient
    /// decrease and `|φ'(α)| <= c2·|φ'(0)|`. A trial that fails on its
    /// value alone costs no gradient; the zoom then interpolates with a
    /// quadratic through that end's value.
    StrongWolfe {
        /// Sufficient-decrease constant (1e-4).
        c1: f64,
        /// Curvature constant: 0.9 for quasi-Newton, 0.1 for conjugate gradients.
        c2: f64,
    },
}

impl LineSearch {
    /// Armijo backtracking with c1 = 1e-4, halving.
    pub const BACKTRACKING: LineSearch = LineSearch::Backtracking {
        c1: 1e-4,
        shrink: 0.5,
    };
    /// Strong Wolfe with c1 = 1e-4, c2 = 0.9.
    pub const WOLFE: LineSearch = LineSearch::StrongWolfe { c1: 1e-4, c2: 0.9 };
    /// Strong Wolfe with c1 = 1e-4, c2 = 0.1 (for conjugate gradients).
    pub const WOLFE_CG: LineSearch = LineSearch::StrongWolfe { c1: 1e-4, c2: 0.1 };
}

/// Armijo's sufficient-decrease test for a trial displacement `s` from a
/// point where `f = f0` and `∇f = g0`: `f(x + s) <= f0 + c1·∇f0ᵀs`.
///
/// When `f(x + s)` is within rounding of `f0` the value cannot tell a
/// decrease (accepting it lets a search stall or wander at a large
/// gradient), so the test is made on the slope instead:
/// `∇f(x + s)ᵀs <= (1 - 2c1)·(-∇f0ᵀs)`, which is the same condition for a
/// quadratic (Hager and Zhang's approximate Armijo condition).
pub(crate) struct Armijo {
    pub(crate) f0: f64,
    pub(crate) c1: f64,
}

impl Armijo {
    /// Whether `fa` and `f0` agree to a few units in the last place.
    fn blind(&self, fa: f64) -> bool {
        (fa - self.f0).abs() <= 16.0 * f64::EPSILON * self.f0.abs()
    }

    /// Whether `fa` is below `than`, or too close to `f0` for the
    /// comparison to mean anything (then the slopes decide).
    pub(crate) fn lower(&self, fa: f64, than: f64) -> bool {
        fa < than || self.blind(fa)
    }

    /// Whether the trial may pass on its value `fa` (`predicted = ∇f0ᵀs`):
    /// if so its gradient is wanted, for the step or for [`Armijo::accepts`].
    pub(crate) fn may_pass(&self, fa: f64, predicted: f64) -> bool {
        fa.is_finite() && (fa <= self.f0 + self.c1 * predicted || self.blind(fa))
    }

    /// The verdict, given also the trial's slope along the step
    /// (`slope = ∇f(x + s)ᵀs`).
    pub(crate) fn accepts(&self, fa: f64, predicted: f64, slope: f64) -> bool {
        if self.blind(fa) {
            slope <= (1.0 - 2.0 * self.c1) * -predicted
        } else {
            fa <= self.f0 + self.c1 * predicted
        }
    }
}

/// An accepted step.
pub(crate) struct Step {
    pub(crate) alpha: f64,
    pub(crate) f: f64,
    pub(crate) g: Vec<f64>,
}

/// One point on the line.
#[derive(Clone, Copy)]
struct Point {
    a: f64,
    f: f64,
    df: f64,
}

const MAX_TRIALS: usize = 50;

struct Line<'e, 'p, 'a> {
    ev: &'e mut Evaluator<'p, 'a>,
    x: &'e [f64],
    d: &'e [f64],
    g_last: Vec<f64>,
}

impl Line<'_, '_, '_> {
    /// `φ(a)`, and `φ'(a)` only if `wanted(φ(a))`: a trial that is rejected
    /// on its value alone costs no gradient (its slope is NaN, unknown).
    fn at(&mut self, a: f64, wanted: impl FnOnce(f64) -> bool) -> Point {
        let xa: Vec<f64> = self.x.iter().zip(self.d).map(|(x, d)| x + a * d).collect();
        let (f, g) = self.ev.value_then_grad(&xa, |f| f.is_finite() && wanted(f));
        let Some(g) = g else {
            let f = if f.is_finite() { f } else { f64::INFINITY };
            return Point { a, f, df: f64::NAN };
        };
        let df = dot(&g, self.d);
        self.g_last = g;
        let finite = df.is_finite();
        Point {
            a,
            f: if finite { f } else { f64::INFINITY },
            df: if finite { df } else { f64::NAN },
        }
    }
}

/// Searches along `d` from `x` (where `f(x) = f0`, `∇f(x) = g0`), trying
/// `alpha0` first. `None` if no acceptable step was found.
pub(crate) fn search(
    ls: LineSearch,
    ev: &mut Evaluator<'_, '_>,
    x: &[f64],
    f0: f64,
    g0: &[f64],
    d: &[f64],
    alpha0: f64,
) -> Option<Step> {
    let start = Point {
        a: 0.0,
        f: f0,
        df: dot(g0, d),
    };
    let mut line = Line {
        ev,
        x,
        d,
        g_last: Vec::new(),
    };
    match ls {
        LineSearch::Backtracking { c1, shrink } => {
            backtracking(&mut line, start, alpha0, c1, shrink)
        }
        LineSearch::StrongWolfe { c1, c2 } => wolfe(&mut line, start, alpha0, c1, c2),
    }
}

fn backtracking(
    line: &mut Line<'_, '_, '_>,
    p0: Point,
    alpha0: f64,
    c1: f64,
    shrink: f64,
) -> Option<Step> {
    // Only a trial that may pass has its gradient computed (from its
    // recording).
    let test = Armijo { f0: p0.f, c1 };
    let mut a = alpha0;
    for _ in 0..MAX_TRIALS {
        let xa: Vec<f64> = line.x.iter().zip(line.d).map(|(x, d)| x + a * d).collect();
        let predicted = a * p0.df;
        if let (f, Some(g)) = line
            .ev
            .value_then_grad(&xa, |f| test.may_pass(f, predicted))
        {
            let slope = a * dot(&g, line.d);
            if g.iter().all(|v| v.is_finite()) && test.accepts(f, predicted, slope) {
                return Some(Step { alpha: a, f, g });
            }
        }
        a *= shrink;
    }
    None
}

fn wolfe(line: &mut Line<'_, '_, '_>, p0: Point, alpha0: f64, c1: f64, c2: f64) -> Option<Step> {
    // Where f is flat to rounding, comparisons of values are noise: the
    // sufficient-decrease test falls back to the slope (see `Armijo`) and
    // bracketing goes by the sign of the slope alone.
    let test = Armijo { f0: p0.f, c1 };
    let sufficient = |p: &Point| !p.df.is_nan() && test.accepts(p.f, p.a * p0.df, p.a * p.df);
    let curvature = |p: &Point| p.df.abs() <= -c2 * p0.df;
    let mut prev = p0;
    let mut a = alpha0;
    for i in 0..MAX_TRIALS {
        // A trial that fails sufficient decrease (or does not improve on
        // the last one) ends the bracket on its value alone.
        let prev_f = prev.f;
        let p = line.at(a, |f| {
            test.may_pass(f, a * p0.df) && (i == 0 || test.lower(f, prev_f))
        });
        if !sufficient(&p) || (i > 0 && !test.lower(p.f, prev.f)) {
            return zoom(line, p0, prev, p, &test, c2);
        }
        if curvature(&p) {
            return Some(Step {
                alpha: p.a,
                f: p.f,
                g: std::mem::take(&mut line.g_last),
            });
        }
        if p.df >= 0.0 {
            return zoom(line, p0, p, prev, &test, c2);
        }
        prev = p;
        a *= 2.0;
    }
    None
}

/// The minimiser of the cubic through two points with their slopes, or
/// `None` where it does not exist.
fn cubic_min(p: Point, q: Point) -> Option<f64> {
    let d1 = p.df + q.df - 3.0 * (p.f - q.f) / (p.a - q.a);
    let disc = d1 * d1 - p.df * q.df;
    if disc < 0.0 || !disc.is_finite() {
        return None;
    }
    let d2 = (q.a - p.a).signum() * disc.sqrt();
    let a = q.a - (q.a - p.a) * (q.df + d2 - d1) / (q.df - p.df + 2.0 * d2);
    a.is_finite().then_some(a)
}

/// The minimiser of the quadratic through `p` with its slope and through
/// `q`'s value (for a bracket end whose slope was never computed).
fn quadratic_min(p: Point, q: Point) -> Option<f64> {
    let h = q.a - p.a;
    let curv = q.f - p.f - p.df * h;
    let a = p.a - p.df * h * h / (2.0 * curv);
    (curv > 0.0 && a.is_finite()).then_some(a)
}

/// Narrows `[lo, hi]` (lo satisfies sufficient decrease and has the lower
/// f) until a point satisfies the strong Wolfe conditions.
fn zoom(
    line: &mut Line<'_, '_, '_>,
    p0: Point,
    mut lo: Point,
    mut hi: Point,
    test: &Armijo,
    c2: f64,
) -> Option<Step> {
    for _ in 0..MAX_TRIALS {
        let (left, right) = if lo.a < hi.a {
            (lo.a, hi.a)
        } else {
            (hi.a, lo.a)
        };
        let width = right - left;
        if width <= f64::EPSILON * right.abs().max(1e-300) {
            break;
        }
        // Cubic interpolation where it is usable (finite end values),
        // kept away from the ends; bisection otherwise.
        let guess = if !hi.f.is_finite() {
            None
        } else if hi.df.is_nan() {
            quadratic_min(lo, hi)
        } else {
            cubic_min(lo, hi)
        };
        let a = match guess {
            Some(a) if a > left + 0.1 * width && a < right - 0.1 * width => a,
            _ => 0.5 * (lo.a + hi.a),
        };
        let lo_f = lo.f;
        let p = line.at(a, |f| test.may_pass(f, a * p0.df) && test.lower(f, lo_f));
        let sufficient = !p.df.is_nan() && test.accepts(p.f, a * p0.df, a * p.df);
        if !sufficient || !test.lower(p.f, lo.f) {
            hi = p;
        } else {
            if p.df.abs() <= -c2 * p0.df {
                return Some(Step {
                    alpha: a,
                    f: p.f,
                    g: std::mem::take(&mut line.g_last),
                });
            }
            if p.df * (hi.a - lo.a) >= 0.0 {
                hi = lo;
            }
            lo = p;
        }
    }
    // Out of trials: take the best sufficient-decrease point, if it moves.
    if lo.a > 0.0 {
        let p = line.at(lo.a, |_| true);
        if p.df.is_nan() {
            return None;
        }
        return Some(Step {
            alpha: p.a,
            f: p.f,
            g: std::mem::take(&mut line.g_last),
        });
    }
    None
}
