//! Core engine benches: a scalar chain (record + backward per op node),
//! one tensor training step of a small MLP, and the same step through `nn`
//! (ParamStore bindings, Adam's checks); each with anomaly mode off and on
//! (off must cost nothing). Run: `cargo bench --bench core`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use tapegrad::nn::{cross_entropy, Activation, Adam, Mlp, Module, Optimizer, ParamStore};
use tapegrad::{Tape, Tensor, Var};

/// The W1 chain of the performance issue: y ← tanh(y·w_i + b_i).
fn scalar_chain(tape: &Tape<f64>, n: usize) -> f64 {
    tape.reset();
    let x = tape.var(0.5);
    let mut y = x;
    for i in 0..n {
        let w = tape.var(0.5 + 0.001 * (i % 100) as f64);
        let b = tape.var(0.01 * (i % 7) as f64);
        y = (y * w + b).tanh();
    }
    let g = y.backward();
    g[x].item()
}

fn mlp_step(
    tape: &Tape<f32>,
    params: &mut [Tensor<f32>],
    x: &Tensor<f32>,
    labels: &[usize],
) -> f32 {
    tape.reset();
    let p: Vec<Var<f32>> = params.iter().map(|t| tape.var(t.clone())).collect();
    let h = (tape.constant(x.clone()).matmul(p[0]) + p[1]).relu();
    let logits = h.matmul(p[2]) + p[3];
    let loss = -logits.log_softmax(1).gather(1, labels).mean();
    let grads = loss.backward();
    for (param, var) in params.iter_mut().zip(&p) {
        for (w, g) in param.data_mut().iter_mut().zip(grads[*var].data()) {
            *w -= 1e-3 * g;
        }
    }
    loss.item()
}

/// One `nn` training step: forward through the store, backward, Adam.
fn nn_step(
    tape: &Tape<f32>,
    params: &mut ParamStore<f32>,
    model: &Mlp<f32>,
    opt: &mut Adam<f32>,
    x: &Tensor<f32>,
    labels: &[usize],
) -> f32 {
    tape.reset();
    let loss = cross_entropy(model.forward(params, tape.constant(x.clone())), labels);
    opt.step(params, &loss.backward());
    loss.item()
}

fn bench(c: &mut Criterion) {
    let n = 10_000;
    for anomaly in [false, true] {
        let tape = Tape::<f64>::new();
        tape.set_detect_anomaly(anomaly);
        let name = if anomaly {
            "scalar_chain_3n_op_nodes_anomaly_on"
        } else {
            "scalar_chain_3n_op_nodes"
        };
        c.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
            b.iter(|| black_box(scalar_chain(&tape, n)))
        });
    }

    let tape = Tape::<f32>::new();
    let (batch, hidden) = (32, 64);
    let mut params = vec![
        Tensor::rand_uniform([784, hidden], -0.05, 0.05, 1),
        Tensor::zeros([hidden]),
        Tensor::rand_uniform([hidden, 10], -0.1, 0.1, 2),
        Tensor::zeros([10]),
    ];
    let x = Tensor::rand_uniform([batch, 784], 0.0, 1.0, 3);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    c.bench_function("mlp_784_64_10_batch32_sgd_step", |b| {
        b.iter(|| black_box(mlp_step(&tape, &mut params, &x, &labels)))
    });

    for anomaly in [false, true] {
        let mut store = ParamStore::<f32>::new();
        let model = Mlp::new(&mut store, "mlp", &[784, hidden, 10], Activation::Relu, 1);
        let mut opt = Adam::new(1e-3);
        tape.set_detect_anomaly(anomaly);
        let name = if anomaly {
            "nn_mlp_784_64_10_batch32_adam_step_anomaly_on"
        } else {
            "nn_mlp_784_64_10_batch32_adam_step"
        };
        c.bench_function(name, |b| {
            b.iter(|| black_box(nn_step(&tape, &mut store, &model, &mut opt, &x, &labels)))
        });
    }
    tape.set_detect_anomaly(false);
}

criterion_group!(benches, bench);
criterion_main!(benches);
