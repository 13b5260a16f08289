//! W3 (Hessian and one Hessian-vector product of the extended Rosenbrock
//! function, n = 100) and W4 (100 × 100 Jacobian of tanh(Wx + b)), f64,
//! plus forward against reverse mode on a tall, thin Jacobian.
//! Run: `cargo bench --bench grad_operators`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use tapegrad::grad::{func, hessian, hvp, jacobian, jacobian_fwd};
use tapegrad::Tensor;

#[path = "common/workloads.rs"]
mod workloads;
use workloads::{rosenbrock, w3_start, W4};

fn bench(c: &mut Criterion) {
    // W3
    let x0 = w3_start();
    let ones = Tensor::ones([100]);
    let h = hessian(rosenbrock, &x0);
    assert_eq!((h.get(&[0, 0]), h.get(&[0, 1])), (1330.0, 480.0));
    assert!((h.data().iter().sum::<f64>() - 177518.0).abs() < 1e-9);
    assert!((hvp(rosenbrock, &x0, &ones).data().iter().sum::<f64>() - 177518.0).abs() < 1e-9);
    c.bench_function("w3_hessian_rosenbrock_100", |b| {
        b.iter(|| black_box(hessian(rosenbrock, &x0)))
    });
    c.bench_function("w3_hvp_rosenbrock_100", |b| {
        b.iter(|| black_box(hvp(rosenbrock, &x0, &ones)))
    });

    // W4
    let w4 = W4::new();
    let (layer, x) = (func(|x| w4.layer(x)), w4.x.clone());
    let j = jacobian(layer, &x);
    let trace: f64 = (0..100).map(|i| j.data()[i * 100 + i]).sum();
    assert!((j.data().iter().sum::<f64>() - -0.02457585158224078).abs() < 1e-12);
    assert!((trace - 0.05357179042769554).abs() < 1e-12);
    c.bench_function("w4_jacobian_tanh_100x100", |b| {
        b.iter(|| black_box(jacobian(layer, &x)))
    });

    // Tall and thin: 200 outputs of 4 inputs. Forward mode needs 4 passes,
    // reverse mode 200.
    let a = Tensor::<f64>::rand_uniform([200, 4], -1.0, 1.0, 1);
    let tall = func(|x| x.tape().constant(a.clone()).matmul(x).sin());
    let x4 = Tensor::<f64>::rand_uniform([4, 1], -1.0, 1.0, 2);
    assert!(jacobian(tall, &x4).max_abs_diff(&jacobian_fwd(tall, &x4)) < 1e-14);
    c.bench_function("tall_jacobian_200x4_reverse", |b| {
        b.iter(|| black_box(jacobian(tall, &x4)))
    });
    c.bench_function("tall_jacobian_200x4_forward", |b| {
        b.iter(|| black_box(jacobian_fwd(tall, &x4)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
