//! Fits y = sin(x) on [-π, π] with a 1 → 32 → 32 → 1 tanh network, trained
//! by full-batch gradient descent with momentum. Prints the loss as it
//! goes and, at the end, the worst error on a fresh grid of points.
//!
//! Run: `cargo run --release --example fit_sine` (add `--quick` for a short run).

mod common;

use common::Args;
use std::f32::consts::PI;
use std::time::Instant;
use tapegrad::prelude::*;

const USAGE: &str = "\
Fit sin(x) with a small tanh network, written with the tape alone.

usage: cargo run --release --example fit_sine -- [--quick]";

/// The network: two tanh hidden layers and a linear output.
fn forward<'t>(p: &[Var<'t, f32>], x: Var<'t, f32>) -> Var<'t, f32> {
    let h1 = (x.matmul(p[0]) + p[1]).tanh();
    let h2 = (h1.matmul(p[2]) + p[3]).tanh();
    h2.matmul(p[4]) + p[5]
}

fn main() {
    let quick = Args::parse(USAGE).flag("quick");
    let steps = if quick { 300 } else { 4000 };
    let (lr, momentum) = (0.01, 0.9);

    let n = 256;
    let xs = Tensor::from_fn([n, 1], |i| -PI + 2.0 * PI * i[0] as f32 / (n - 1) as f32);
    let ys = xs.map(f32::sin);

    // Weights scaled by 1/√fan_in, biases zero.
    let layer = |fan_in: usize, fan_out: usize, seed: u64| {
        let w = Tensor::randn([fan_in, fan_out], seed).map(|v| v / (fan_in as f32).sqrt());
        [w, Tensor::zeros([fan_out])]
    };
    let mut params: Vec<Tensor<f32>> = [layer(1, 32, 1), layer(32, 32, 2), layer(32, 1, 3)]
        .into_iter()
        .flatten()
        .collect();
    let mut velocity: Vec<Tensor<f32>> = params.iter().map(|p| Tensor::zeros(p.shape())).collect();

    let tape = Tape::<f32>::new();
    let start = Instant::now();
    println!("fitting sin(x) with a 1-32-32-1 tanh network, {steps} steps");
    for step in 0..=steps {
        tape.reset();
        let p: Vec<Var<f32>> = params.iter().map(|t| tape.var(t.clone())).collect();
        let y = forward(&p, tape.constant(xs.clone()));
        let loss = (y - tape.constant(ys.clone())).square().mean();
        let grads = loss.backward();
        for ((param, vel), var) in params.iter_mut().zip(&mut velocity).zip(&p) {
            for ((w, v), g) in param
                .data_mut()
                .iter_mut()
                .zip(vel.data_mut())
                .zip(grads[*var].data())
            {
                *v = momentum * *v + g;
                *w -= lr * *v;
            }
        }
        if step % (steps / 10) == 0 {
            println!("step {step:>5}/{steps}  mse {:.6}", loss.item());
        }
    }

    // Judge on points the network never saw (midpoints of the training grid).
    tape.reset();
    let p: Vec<Var<f32>> = params.iter().map(|t| tape.var(t.clone())).collect();
    let test_x = Tensor::from_fn([n - 1, 1], |i| {
        -PI + 2.0 * PI * (i[0] as f32 + 0.5) / (n - 1) as f32
    });
    let pred = tape
        .no_grad(|| forward(&p, tape.constant(test_x.clone())))
        .value();
    let worst = pred
        .data()
        .iter()
        .zip(test_x.data())
        .map(|(y, x)| (y - x.sin()).abs())
        .fold(0.0f32, f32::max);
    println!(
        "done in {:.2?}: worst |prediction - sin(x)| on {} unseen points = {worst:.4}",
        start.elapsed(),
        n - 1
    );
    for x in [-2.0f32, -0.5, 1.0, 2.5] {
        let i = ((x + PI) / (2.0 * PI) * (n - 1) as f32 - 0.5).round() as usize;
        println!(
            "  x = {:>6.3}: network {:>7.4}, sin {:>7.4}",
            test_x.data()[i],
            pred.data()[i],
            test_x.data()[i].sin()
        );
    }
}
