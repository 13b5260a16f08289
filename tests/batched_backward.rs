//! `jacobian` and `hessian` run one batched backward pass (every op's rule
//! on gradients with a leading batch axis). Each must equal what the
//! ordinary backward gives one row at a time, for every op family.

mod common;

use common::shapes::broadcast_pair;
use proptest::prelude::*;
use tapegrad::grad::{func, hessian, jacobian};
use tapegrad::{Algebra, CustomOp, Tape, Tensor, Var};

type F = for<'t> fn(Var<'t, f64>) -> Var<'t, f64>;

/// The Jacobian row by row: one ordinary backward pass per output element.
fn jacobian_by_rows(
    f: impl for<'t> Fn(Var<'t, f64>) -> Var<'t, f64>,
    x: &Tensor<f64>,
) -> Tensor<f64> {
    let tape = Tape::<f64>::new();
    let v = tape.var(x.clone());
    let y = f(v);
    let out = y.shape();
    let m: usize = out.iter().product();
    let mut data = Vec::new();
    for i in 0..m {
        data.extend_from_slice(y.backward_with(Tensor::one_hot(&out, i))[v].data());
    }
    Tensor::from_vec(data, [out.as_slice(), x.shape()].concat())
}

/// The Hessian row by row: the Jacobian of the recorded gradient, one
/// ordinary backward pass per row.
fn hessian_by_rows(
    f: impl for<'t> Fn(Var<'t, f64>) -> Var<'t, f64>,
    x: &Tensor<f64>,
) -> Tensor<f64> {
    jacobian_by_rows(|v| f(v).backward_recorded()[v], x)
}

fn assert_close(name: &str, got: &Tensor<f64>, want: &Tensor<f64>) {
    assert_eq!(got.shape(), want.shape(), "{name}: shapes");
    for (k, (a, b)) in got.data().iter().zip(want.data()).enumerate() {
        assert!(
            (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
            "{name}: element {k}: batched {a} vs row by row {b}"
        );
    }
}

fn c<'t>(tape: &'t Tape<f64>, shape: &[usize], seed: u64) -> Var<'t, f64> {
    tape.constant(Tensor::rand_uniform(shape, -1.0, 1.0, seed))
}

/// Functions of a [3, 4] input, one or more op families each.
fn cases() -> Vec<(&'static str, F)> {
    vec![
        ("unary", |x| {
            x.exp() + x.sin() * x.cos() + x.tanh() + x.sigmoid() + x.softplus() + x.erf()
        }),
        ("unary positive", |x| {
            let p = x.square() + 1.0;
            p.ln() + p.sqrt() + p.powf(1.5) + x.abs() + x.relu() + x.leaky_relu()
        }),
        ("binary broadcasting", |x| {
            let t = x.tape();
            x * c(t, &[4], 1) + c(t, &[3, 1], 2) / (x.square() + 2.0) - x.maximum(c(t, &[4], 3))
        }),
        ("pow and minimum", |x| {
            (x.square() + 1.0).pow(x.sigmoid()) + x.minimum(x.tape().constant(0.1))
        }),
        ("reductions", |x| {
            let a = x.sum_axis(0, false).broadcast_to([3, 4]);
            let b = x.mean_axis(1, true);
            let m = x.max_axis(1, true);
            let l = x.logsumexp(0, false);
            a * b + m + l + x.sum() + x.mean()
        }),
        ("shape", |x| {
            let r = x.reshape([4, 3]).transpose();
            let p = x.narrow(1, 1, 2).pad(1, 0, 4);
            let cat = Var::concat(&[x, r], 0).narrow(0, 2, 3);
            let st = Var::stack(&[x, p], 0).sum_axis(0, false);
            r * p + cat + st.permute([0, 1])
        }),
        ("index", |x| {
            x.index_select(1, &[3, 0, 0, 2]) + x.gather(1, &[1, 2, 3, 0, 0, 0, 1, 1, 2, 3, 3, 3])
        }),
        ("select", |x| {
            let t = x.tape();
            let mask = x.gt(c(t, &[4], 4));
            Var::where_(mask, x.square(), x * 3.0)
        }),
        ("softmax", |x| x.softmax(1) * x + x.log_softmax(0)),
        ("matmul left and right", |x| {
            let t = x.tape();
            let a = c(t, &[2, 3], 5);
            let b = c(t, &[4, 5], 6);
            a.matmul(x).matmul(b).tanh()
        }),
        ("matmul transposed", |x| {
            let t = x.tape();
            let a = c(t, &[3, 6], 7);
            let b = c(t, &[2, 4], 8);
            x.matmul_t(a, true, false).sin()
                + a.matmul_t(x, true, false).transpose() * 0.5
                + b.matmul_t(x, false, true).sum()
        }),
        ("matmul of two inputs", |x| {
            x.matmul_t(x, false, true).square()
        }),
        ("batched 3-d matmul", |x| {
            let t = x.tape();
            let xs = Var::stack(&[x, x.sin()], 0);
            xs.matmul(c(t, &[2, 4, 2], 9)).exp()
        }),
        ("custom op", |x| x.tape().custom(Softsign, &[x.sin()]) * x),
    ]
}

#[test]
fn batched_jacobians_equal_row_by_row_for_every_op_family() {
    let x = Tensor::rand_uniform([3, 4], -1.5, 1.5, 42);
    for (name, f) in cases() {
        assert_close(name, &jacobian(f, &x), &jacobian_by_rows(f, &x));
    }
}

#[test]
fn batched_hessians_equal_row_by_row_for_every_op_family() {
    let x = Tensor::rand_uniform([3, 4], -1.5, 1.5, 43);
    let sums: Vec<(&str, F)> = vec![
        ("unary", |x| (x.exp() + x.sin() * x.cos() + x.tanh()).sum()),
        ("binary broadcasting", |x| {
            let t = x.tape();
            (x * c(t, &[4], 1) + c(t, &[3, 1], 2) / (x.square() + 2.0)).sum()
        }),
        ("reductions", |x| {
            (x.sum_axis(0, false).square().sum() + x.logsumexp(1, false).sum()) * x.mean()
        }),
        ("shape", |x| {
            let r = x.reshape([4, 3]).transpose();
            (r * x.narrow(1, 1, 2).pad(1, 0, 4) + Var::concat(&[x, r], 0).narrow(0, 2, 3))
                .square()
                .sum()
        }),
        ("index", |x| {
            (x.index_select(1, &[3, 0, 0, 2]).square().sum()) * x.gather(0, &[2, 1, 0, 0]).sum()
        }),
        ("softmax", |x| {
            (x.softmax(1) * x).sum() + x.log_softmax(0).square().sum()
        }),
        ("matmul", |x| {
            let t = x.tape();
            c(t, &[2, 3], 5)
                .matmul(x)
                .matmul(c(t, &[4, 5], 6))
                .tanh()
                .sum()
                + x.matmul_t(x, false, true).square().sum()
        }),
        ("custom op", |x| {
            (x.tape().custom(Softsign, &[x.sin()]) * x).sum()
        }),
    ];
    for (name, f) in sums {
        assert_close(name, &hessian(f, &x), &hessian_by_rows(f, &x));
    }
}

#[test]
fn scalar_graphs_and_unused_inputs() {
    // A scalar input, and a function that ignores part of its input.
    let x = Tensor::scalar(0.7);
    let f = func(|x: Var<'_, f64>| (x * x).sin() * x);
    assert_close("scalar", &jacobian(f, &x), &jacobian_by_rows(f, &x));
    let v = Tensor::from_vec(vec![0.3, -0.2, 0.9], [3]);
    let g = func(|x: Var<'_, f64>| x.narrow(0, 0, 2).square());
    let j = jacobian(g, &v);
    assert_eq!(j.data(), &[0.6, 0.0, 0.0, 0.0, -0.4, 0.0]);
    let h = hessian(|x| x.narrow(0, 1, 1).sum() * 2.0, &v);
    assert_eq!(h.data(), &[0.0; 9]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Broadcasting in both directions (the input against a constant of a
    /// larger or smaller shape), through elementwise ops and reductions:
    /// the batched pass must line up example axes, never the batch axis.
    #[test]
    fn batched_passes_broadcast_like_row_by_row((sx, sc) in broadcast_pair(), seed in any::<u64>()) {
        let x = Tensor::rand_uniform(&sx, -1.0, 1.0, seed);
        let c = Tensor::rand_uniform(&sc, -1.0, 1.0, seed ^ 1);
        let f = func(|x: Var<'_, f64>| {
            let k = x.tape().constant(c.clone());
            ((x * k + k) / (k.square() + 1.0) - x.sin() * k).tanh()
        });
        assert_close("broadcast jacobian", &jacobian(f, &x), &jacobian_by_rows(f, &x));
        let s = func(|x: Var<'_, f64>| {
            let k = x.tape().constant(c.clone());
            (x * k).square().sum() + (x.exp() - k).sum() * x.mean()
        });
        assert_close("broadcast hessian", &hessian(s, &x), &hessian_by_rows(s, &x));
    }
}

/// softsign(x) = x / (1 + |x|), with its rule written by hand.
struct Softsign;
impl CustomOp<f64> for Softsign {
    fn name(&self) -> &'static str {
        "softsign"
    }
    fn forward(&self, xs: &[&Tensor<f64>]) -> Tensor<f64> {
        xs[0].map(|v| v / (1.0 + v.abs()))
    }
    fn vjp<X: Algebra<f64>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        let d = xs[0].square().sqrt().affine(1.0, 1.0).square().recip();
        g.mul(&d)
    }
}
