//! Finite-difference checks shared by the integration tests (f64).
#![allow(dead_code)]

pub mod shapes;

use tapegrad::{Tape, Tensor, Var};

pub const EPS: f64 = 1e-6;

/// The message of the panic `f` must raise (a `String` or `&str` payload).
pub fn panic_message(f: impl FnOnce()) -> String {
    let err =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A function of some tensors built on a tape.
pub trait Build: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64> {}
impl<F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>> Build for F {}

/// `Σ out ⊙ w`: turns any output into a scalar in which every element counts.
fn weighted<'t>(out: Var<'t, f64>, seed: u64) -> Var<'t, f64> {
    let w = Tensor::rand_uniform(out.shape(), -1.0, 1.0, seed ^ 0x5eed);
    (out * out.tape().constant(w)).sum()
}

/// The scalar loss at the given inputs.
pub fn loss_value(f: &impl Build, inputs: &[Tensor<f64>], seed: u64) -> f64 {
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    weighted(f(&vars), seed).item()
}

/// Eager gradients of the loss with respect to every input.
pub fn grads(f: &impl Build, inputs: &[Tensor<f64>], seed: u64) -> Vec<Tensor<f64>> {
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let g = weighted(f(&vars), seed).backward();
    vars.iter().map(|v| g[*v].clone()).collect()
}

/// Central differences of `h` with respect to every element of every input.
pub fn numeric(h: impl Fn(&[Tensor<f64>]) -> f64, inputs: &[Tensor<f64>]) -> Vec<Tensor<f64>> {
    let mut out = vec![];
    for i in 0..inputs.len() {
        let mut g = Tensor::zeros(inputs[i].shape());
        for j in 0..inputs[i].numel() {
            let mut p = inputs.to_vec();
            p[i].data_mut()[j] += EPS;
            let up = h(&p);
            p[i].data_mut()[j] -= 2.0 * EPS;
            let down = h(&p);
            g.data_mut()[j] = (up - down) / (2.0 * EPS);
        }
        out.push(g);
    }
    out
}

#[track_caller]
pub fn assert_close(
    what: &str,
    analytic: &Tensor<f64>,
    numeric: &Tensor<f64>,
    atol: f64,
    rtol: f64,
) {
    assert_eq!(analytic.shape(), numeric.shape(), "{what}: shapes differ");
    for (j, (a, n)) in analytic.data().iter().zip(numeric.data()).enumerate() {
        assert!(
            (a - n).abs() <= atol + rtol * n.abs(),
            "{what}: element {j}: analytic {a} vs numeric {n} (abs err {:e})",
            (a - n).abs()
        );
    }
}

/// Checks first derivatives (eager and recorded) against central
/// differences, and second derivatives (grad of grad, through the recorded
/// backward) against central differences of the eager gradient.
pub fn check(name: &str, f: &impl Build, inputs: &[Tensor<f64>], seed: u64) {
    let analytic = grads(f, inputs, seed);
    let num = numeric(|x| loss_value(f, x, seed), inputs);
    for (i, (a, n)) in analytic.iter().zip(&num).enumerate() {
        assert_close(&format!("{name}: d/dx{i}"), a, n, 1e-6, 1e-5);
    }

    // Recorded backward gives the same first derivatives, and its result
    // can be differentiated again: h = Σ_i Σ grad_i ⊙ v_i.
    let vs: Vec<Tensor<f64>> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| Tensor::rand_uniform(t.shape(), -1.0, 1.0, seed + 17 * i as u64 + 1))
        .collect();
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let loss = weighted(f(&vars), seed);
    let gv = loss.backward_recorded();
    let mut h = tape.constant(0.0);
    for (i, v) in vars.iter().enumerate() {
        let gi = gv[*v];
        assert_close(
            &format!("{name}: recorded d/dx{i}"),
            &gi.value(),
            &analytic[i],
            1e-12,
            1e-12,
        );
        h = h + (gi * tape.constant(vs[i].clone())).sum();
    }
    // If h does not depend on the inputs, its derivative is zero and the
    // numeric one must agree.
    let hg = h.requires_grad().then(|| h.backward());
    let num2 = numeric(
        |x| {
            grads(f, x, seed)
                .iter()
                .zip(&vs)
                .map(|(g, v)| {
                    g.data()
                        .iter()
                        .zip(v.data())
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
                })
                .sum()
        },
        inputs,
    );
    for (i, v) in vars.iter().enumerate() {
        let got = hg
            .as_ref()
            .and_then(|g| g.get(*v).cloned())
            .unwrap_or_else(|| Tensor::zeros(inputs[i].shape()));
        assert_close(
            &format!("{name}: second derivative wrt x{i}"),
            &got,
            &num2[i],
            1e-5,
            1e-4,
        );
    }
}
