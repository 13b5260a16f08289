//! `gradcheck` and `gradgradcheck`: analytic derivatives against central
//! finite differences in f64, the way `torch.autograd.gradcheck` works.

use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use std::fmt;

/// Tolerances and mode of a gradient check. An analytic value `a` passes
/// against the numeric `n` when `|a - n| <= atol + rtol·|n|`.
///
/// ```
/// use tapegrad::grad::GradcheckOptions;
/// use tapegrad::Tensor;
/// let opts = GradcheckOptions { fast: true, ..Default::default() };
/// opts.check(|x| x[0].sin().sum(), &[Tensor::randn([3, 4], 7)]).unwrap();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckOptions {
    /// Step of the central differences.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Check one random projection `vᵀJu` per function instead of every
    /// Jacobian entry (one backward and two evaluations in all). On a
    /// mismatch the full check runs to name the failing element.
    pub fast: bool,
    /// Seed of the random projections and seeds.
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            fast: false,
            seed: 0,
        }
    }
}

/// Where and by how much an analytic derivative missed its numeric value.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckError {
    /// What was checked: `"gradient"` or `"second derivative"`.
    pub order: &'static str,
    /// Which input (position in the slice passed to the check).
    pub input: usize,
    /// The element of that input, as a multi-index.
    pub input_index: Vec<usize>,
    /// The output element whose derivative missed (empty for a scalar, or
    /// for a projection that could not be pinned down).
    pub output_index: Vec<usize>,
    /// Derivative from the tape.
    pub analytic: f64,
    /// Derivative from central differences.
    pub numeric: f64,
    /// The tolerances that were applied.
    pub atol: f64,
    /// Relative tolerance applied.
    pub rtol: f64,
}

impl GradcheckError {
    /// `|analytic - numeric|`
    pub fn abs_error(&self) -> f64 {
        (self.analytic - self.numeric).abs()
    }

    /// `|analytic - numeric| / |numeric|`
    pub fn rel_error(&self) -> f64 {
        self.abs_error() / self.numeric.abs()
    }
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} check failed: d output{:?} / d input {}{:?}: analytic {:e}, numeric {:e}; \
             absolute error {:e}, relative error {:e} (allowed: atol {:e} + rtol {:e} · |numeric|)",
            self.order,
            self.output_index,
            self.input,
            self.input_index,
            self.analytic,
            self.numeric,
            self.abs_error(),
            self.rel_error(),
            self.atol,
            self.rtol
        )
    }
}

impl std::error::Error for GradcheckError {}

fn multi_index(shape: &[usize], mut flat: usize) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

/// Evaluates `f` on a fresh tape.
fn eval<F>(f: &F, inputs: &[Tensor<f64>]) -> Tensor<f64>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    f(&vars).value()
}

impl GradcheckOptions {
    fn close(&self, a: f64, n: f64) -> bool {
        (a - n).abs() <= self.atol + self.rtol * n.abs()
    }

    /// Checks the first derivatives of `f` with respect to every input.
    /// `f` may return any shape; every output element is checked.
    pub fn check<F>(&self, f: F, inputs: &[Tensor<f64>]) -> Result<(), GradcheckError>
    where
        F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
    {
        self.check_order(&f, inputs, "gradient")
    }

    fn check_order<F>(
        &self,
        f: &F,
        inputs: &[Tensor<f64>],
        order: &'static str,
    ) -> Result<(), GradcheckError>
    where
        F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
    {
        if self.fast {
            if let Some(e) = self.projection_miss(f, inputs, order) {
                // Locate the failing element with the full check.
                return self.full(f, inputs, order).and(Err(e));
            }
            return Ok(());
        }
        self.full(f, inputs, order)
    }

    /// Compares every Jacobian entry.
    fn full<F>(
        &self,
        f: &F,
        inputs: &[Tensor<f64>],
        order: &'static str,
    ) -> Result<(), GradcheckError>
    where
        F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
    {
        // Analytic Jacobian rows: one backward per output element.
        let tape = Tape::new();
        let vars: Vec<_> = inputs.iter().map(|t| tape.var(t.clone())).collect();
        let y = f(&vars);
        let out = y.shape();
        let rows = super::functional::jacobian_rows(y, &vars);
        // Numeric columns: two evaluations per input element.
        for (k, x) in inputs.iter().enumerate() {
            for j in 0..x.numel() {
                let mut p = inputs.to_vec();
                p[k].data_mut()[j] += self.eps;
                let up = eval(f, &p);
                p[k].data_mut()[j] -= 2.0 * self.eps;
                let down = eval(f, &p);
                for (i, row) in rows.iter().enumerate() {
                    let numeric = (up.data()[i] - down.data()[i]) / (2.0 * self.eps);
                    let analytic = row[k].data()[j];
                    if !self.close(analytic, numeric) {
                        return Err(GradcheckError {
                            order,
                            input: k,
                            input_index: multi_index(x.shape(), j),
                            output_index: multi_index(&out, i),
                            analytic,
                            numeric,
                            atol: self.atol,
                            rtol: self.rtol,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// One random projection `vᵀJu`: `None` if it agrees.
    fn projection_miss<F>(
        &self,
        f: &F,
        inputs: &[Tensor<f64>],
        order: &'static str,
    ) -> Option<GradcheckError>
    where
        F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
    {
        let us: Vec<Tensor<f64>> = inputs
            .iter()
            .enumerate()
            .map(|(k, x)| Tensor::rand_uniform(x.shape(), -1.0, 1.0, self.seed + 1 + k as u64))
            .collect();
        let tape = Tape::new();
        let vars: Vec<_> = inputs.iter().map(|t| tape.var(t.clone())).collect();
        let y = f(&vars);
        let v = Tensor::rand_uniform(y.shape(), -1.0, 1.0, self.seed);
        let g = y.backward_unchecked(v.clone());
        let dot = |a: &Tensor<f64>, b: &Tensor<f64>| crate::optim::dot(a.data(), b.data());
        let analytic: f64 = vars.iter().zip(&us).map(|(x, u)| dot(&g[*x], u)).sum();
        let shifted = |s: f64| -> Vec<Tensor<f64>> {
            inputs
                .iter()
                .zip(&us)
                .map(|(x, u)| {
                    let mut t = x.clone();
                    for (a, b) in t.data_mut().iter_mut().zip(u.data()) {
                        *a += s * b;
                    }
                    t
                })
                .collect()
        };
        let numeric = (dot(&eval(f, &shifted(self.eps)), &v)
            - dot(&eval(f, &shifted(-self.eps)), &v))
            / (2.0 * self.eps);
        (!self.close(analytic, numeric)).then(|| GradcheckError {
            order,
            input: 0,
            input_index: vec![],
            output_index: vec![],
            analytic,
            numeric,
            atol: self.atol,
            rtol: self.rtol,
        })
    }

    /// Checks the second derivatives of `f`: the derivatives of its
    /// vector-Jacobian product `(x, v) ↦ vᵀJ(x)` (recorded backward pass)
    /// against central differences, with respect to every input and the
    /// seed `v`, as `torch.autograd.gradgradcheck` does.
    pub fn check_second<F>(&self, f: F, inputs: &[Tensor<f64>]) -> Result<(), GradcheckError>
    where
        F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
    {
        let out_shape: Vec<usize> = eval(&f, inputs).shape().to_vec();
        let n = inputs.len();
        let vjp = super::func_multi(|vars| {
            let (xs, seed) = vars.split_at(n);
            let y = f(xs);
            let grads = y.backward_recorded_with(seed[0]);
            let flat: Vec<Var<'_, f64>> = xs
                .iter()
                .map(|x| grads[*x].reshape([x.shape().iter().product::<usize>()]))
                .collect();
            Var::concat(&flat, 0)
        });
        let mut all = inputs.to_vec();
        all.push(Tensor::rand_uniform(
            &out_shape,
            -1.0,
            1.0,
            self.seed + 1000,
        ));
        self.check_order(&vjp, &all, "second derivative")
    }
}

/// Checks the first derivatives of `f` at `inputs` with the default
/// tolerances (eps 1e-6, atol 1e-5, rtol 1e-3).
///
/// ```
/// use tapegrad::{grad::gradcheck, Tensor};
/// gradcheck(|x| (x[0] * x[0]).sin().sum(), &[Tensor::randn([3, 4], 7)]).unwrap();
/// ```
pub fn gradcheck<F>(f: F, inputs: &[Tensor<f64>]) -> Result<(), GradcheckError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    GradcheckOptions::default().check(f, inputs)
}

/// Checks the second derivatives of `f` at `inputs` with the default
/// tolerances.
///
/// ```
/// use tapegrad::{grad::gradgradcheck, Tensor};
/// gradgradcheck(|x| (x[0] * x[1]).tanh().sum(), &[Tensor::randn([3], 1), Tensor::randn([3], 2)]).unwrap();
/// ```
pub fn gradgradcheck<F>(f: F, inputs: &[Tensor<f64>]) -> Result<(), GradcheckError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    GradcheckOptions::default().check_second(f, inputs)
}

/// Runs [`gradcheck`] and [`gradgradcheck`] and panics with the report if
/// either fails: one line in a test.
///
/// ```
/// use tapegrad::{grad::assert_gradcheck, Tensor};
/// assert_gradcheck(|x| x[0].softplus().sum(), &[Tensor::randn([5], 3)]);
/// ```
#[track_caller]
pub fn assert_gradcheck<F>(f: F, inputs: &[Tensor<f64>])
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    if let Err(e) = gradcheck(&f, inputs) {
        panic!("{e}");
    }
    if let Err(e) = gradgradcheck(&f, inputs) {
        panic!("{e}");
    }
}
