//! Layers, losses and training behaviour: the chapter's regression network,
//! XOR, cross-entropy, determinism.

use tapegrad::nn::{
    bce_with_logits, cross_entropy, cross_entropy_with, huber, l1, mse, nll_loss, Activation, Adam,
    Dropout, Init, LayerNorm, Linear, Mlp, Module, Optimizer, ParamStore, Reduction, Sequential,
    Sgd,
};
use tapegrad::{Tape, Tensor, Var};

#[test]
fn chapter_two_layer_network_gradient_matches_the_hand_derivation() {
    // z1_m = Σ_n w1_nm x_n, a1_m = ReLU(z1_m), z2 = Σ_m w2_m a1_m, y = z2,
    // J = (1/N) Σ (t - y)².
    let (n_samples, d, m) = (5, 3, 4);
    let x = Tensor::<f64>::rand_uniform([n_samples, d], -1.0, 1.0, 1);
    let t = Tensor::<f64>::rand_uniform([n_samples, 1], -1.0, 1.0, 2);
    let w1 = Tensor::<f64>::rand_uniform([d, m], -1.0, 1.0, 3);
    let w2 = Tensor::<f64>::rand_uniform([m, 1], -1.0, 1.0, 4);
    let tape = Tape::new();
    let (w1v, w2v) = (tape.var(w1.clone()), tape.var(w2.clone()));
    let z1 = tape.constant(x.clone()).matmul(w1v);
    let y = z1.relu().matmul(w2v);
    let j = mse(y, tape.constant(t.clone()));
    let g = j.backward();
    let (z1v, yv) = (z1.value(), y.value());
    for nn in 0..d {
        for mm in 0..m {
            let hand: f64 = -(1.0 / n_samples as f64)
                * (0..n_samples)
                    .map(|s| {
                        let relu_d = if z1v.get(&[s, mm]) > 0.0 { 1.0 } else { 0.0 };
                        2.0 * (t.get(&[s, 0]) - yv.get(&[s, 0]))
                            * 1.0
                            * w2.get(&[mm, 0])
                            * relu_d
                            * x.get(&[s, nn])
                    })
                    .sum::<f64>();
            let engine = g[w1v].get(&[nn, mm]);
            assert!(
                (engine - hand).abs() < 1e-14,
                "w1_{nn}{mm}: {engine} vs {hand}"
            );
        }
    }
}

#[test]
fn gradient_descent_lowers_the_chapter_loss_every_step() {
    let x = Tensor::<f64>::rand_uniform([20, 3], -1.0, 1.0, 5);
    let t = x.map(|v| v * 0.5); // a learnable target per column, summed below
    let t = Tensor::from_fn([20, 1], |i| t.get(&[i[0], 0]) - t.get(&[i[0], 2]));
    let mut params = ParamStore::<f64>::new();
    let hidden = Linear::with_init(&mut params, "w1", 3, 6, false, Init::KaimingUniform, 6);
    let out = Linear::with_init(&mut params, "w2", 6, 1, false, Init::XavierUniform, 7);
    let mut opt = Sgd::new(0.05);
    let tape = Tape::new();
    let mut last = f64::INFINITY;
    for step in 0..100 {
        tape.reset();
        let y = out.forward(
            &params,
            hidden.forward(&params, tape.constant(x.clone())).relu(),
        );
        let loss = mse(y, tape.constant(t.clone()));
        assert!(
            loss.item() < last,
            "step {step}: {} after {last}",
            loss.item()
        );
        last = loss.item();
        opt.step(&mut params, &loss.backward());
    }
}

fn accuracy(logits: &Tensor<f32>, labels: &[usize]) -> f32 {
    let c = logits.shape()[1];
    let hits = labels
        .iter()
        .enumerate()
        .filter(|(i, &l)| (0..c).all(|k| logits.get(&[*i, k]) <= logits.get(&[*i, l])))
        .count();
    hits as f32 / labels.len() as f32
}

#[test]
fn an_mlp_learns_xor() {
    let x = Tensor::<f32>::from_vec(vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], [4, 2]);
    let labels = [0, 1, 1, 0];
    let mut params = ParamStore::new();
    let model = Mlp::new(&mut params, "xor", &[2, 8, 2], Activation::Tanh, 3);
    let mut opt = Adam::new(0.05);
    let tape = Tape::new();
    for _ in 0..300 {
        tape.reset();
        let loss = cross_entropy(model.forward(&params, tape.constant(x.clone())), &labels);
        opt.step(&mut params, &loss.backward());
    }
    tape.reset();
    let logits = model.forward(&params, tape.constant(x.clone())).value();
    assert_eq!(accuracy(&logits, &labels), 1.0);
}

#[test]
fn cross_entropy_is_minus_log_softmax_at_the_label() {
    let tape = Tape::<f64>::new();
    let z = Tensor::from_vec(vec![0.2, -1.0, 3.0, 0.5, 0.5, 0.5], [2, 3]);
    let logits = tape.var(z.clone());
    let ce = cross_entropy_with(logits, &[2, 0], Reduction::Sum).item();
    let lse = |r: usize| (0..3).map(|k| z.get(&[r, k]).exp()).sum::<f64>().ln();
    let want = (lse(0) - 3.0) + (lse(1) - 0.5);
    assert!((ce - want).abs() < 1e-14);
    assert!((cross_entropy(logits, &[2, 0]).item() - want / 2.0).abs() < 1e-14);
    assert!(
        (nll_loss(logits.log_softmax(1), &[2, 0], Reduction::Mean).item() - want / 2.0).abs()
            < 1e-14
    );
    // Finite for huge logits, with the right gradient (softmax - onehot).
    let big = tape.var(Tensor::from_vec(
        vec![1000.0, -1000.0, 0.0, -1000.0, 1000.0, 0.0],
        [2, 3],
    ));
    let loss = cross_entropy(big, &[1, 1]);
    assert_eq!(loss.item(), 1000.0);
    let g = loss.backward()[big].clone();
    assert_eq!(g.data(), &[0.5, -0.5, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn a_bad_label_is_a_clear_error() {
    let tape = Tape::<f32>::new();
    let logits = tape.var(Tensor::zeros([3, 10]));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cross_entropy(logits, &[1, 12, 3]).item()
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert_eq!(
        msg,
        "cross_entropy: label 12 of sample 1 is out of range for 10 classes (labels must be 0..10)"
    );
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cross_entropy(logits, &[1, 2]).item()
    }))
    .unwrap_err();
    assert!(err
        .downcast_ref::<String>()
        .unwrap()
        .contains("2 labels for a batch of 3"));
}

#[test]
fn regression_losses_match_their_definitions() {
    let tape = Tape::<f64>::new();
    let p = tape.var(Tensor::from_vec(vec![0.0, 2.0, -3.0], [3]));
    let t = tape.constant(Tensor::from_vec(vec![0.5, 0.0, 0.0], [3]));
    assert!((mse(p, t).item() - (0.25 + 4.0 + 9.0) / 3.0).abs() < 1e-15);
    assert!((l1(p, t).item() - 5.5 / 3.0).abs() < 1e-15);
    // Huber with delta 1: 0.125, 2 - 0.5, 3 - 0.5.
    assert!((huber(p, t, 1.0).item() - (0.125 + 1.5 + 2.5) / 3.0).abs() < 1e-15);
    let z = tape.var(Tensor::from_vec(vec![800.0, -800.0, 0.0], [3]));
    let y = tape.constant(Tensor::from_vec(vec![0.0, 1.0, 1.0], [3]));
    let bce = bce_with_logits(z, y);
    assert!((bce.item() - (800.0 + 800.0 + 2f64.ln()) / 3.0).abs() < 1e-12);
    assert!(bce.backward()[z].data().iter().all(|v| v.is_finite()));
}

fn train_twenty_steps(seed: u64) -> Vec<f32> {
    let mut params = ParamStore::<f32>::new();
    let model = Sequential::new()
        .add(Linear::new(&mut params, "0", 5, 16, seed))
        .add(Activation::Gelu)
        .add(Dropout::new(&mut params, "drop", 0.2, seed))
        .add(LayerNorm::new(&mut params, "3", 16))
        .add(Linear::new(&mut params, "4", 16, 3, seed + 1));
    let x = Tensor::rand_uniform([12, 5], -1.0, 1.0, seed + 2);
    let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
    let mut opt = Adam::new(1e-2);
    let tape = Tape::new();
    for _ in 0..20 {
        tape.reset();
        let loss = cross_entropy(model.forward(&params, tape.constant(x.clone())), &labels);
        opt.step(&mut params, &loss.backward());
    }
    params.iter().flat_map(|(_, _, t)| t.to_vec()).collect()
}

#[test]
fn same_seed_same_parameters_bit_for_bit() {
    let a = train_twenty_steps(11);
    let b = train_twenty_steps(11);
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_ne!(a, train_twenty_steps(12));
}

#[test]
fn dropout_trains_and_evaluates_differently() {
    let mut params = ParamStore::<f64>::new();
    let d = Dropout::new(&mut params, "drop", 0.5, 3);
    let tape = Tape::new();
    let x = tape.constant(Tensor::ones([1000]));
    let y = Module::<f64>::forward(&d, &params, x).value();
    let zeros = y.data().iter().filter(|v| **v == 0.0).count();
    assert!((400..600).contains(&zeros), "{zeros} of 1000 dropped");
    assert!(y.data().iter().all(|v| *v == 0.0 || *v == 2.0));
    params.eval();
    assert_eq!(
        Module::<f64>::forward(&d, &params, x).value(),
        Tensor::ones([1000])
    );
}

#[test]
fn layer_norm_normalises_the_last_dimension() {
    let mut params = ParamStore::<f64>::new();
    let ln = LayerNorm::new(&mut params, "ln", 4);
    let tape = Tape::new();
    let x = tape.var(Tensor::from_vec(
        vec![1.0, 2.0, 3.0, 4.0, -5.0, 0.0, 5.0, 10.0],
        [2, 4],
    ));
    let y = ln.forward(&params, x).value();
    for r in 0..2 {
        let row: Vec<f64> = (0..4).map(|c| y.get(&[r, c])).collect();
        let mean = row.iter().sum::<f64>() / 4.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        assert!(
            mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }
}

#[test]
fn frozen_parameters_get_no_gradient_and_no_update() {
    let mut params = ParamStore::<f64>::new();
    let layer = Linear::new(&mut params, "l", 2, 2, 1);
    params.freeze(layer.weight);
    let before = params.value(layer.weight).clone();
    let bias_before = params.value(layer.bias.unwrap()).clone();
    let tape = Tape::new();
    let loss = layer
        .forward(&params, tape.constant(Tensor::ones([3, 2])))
        .square()
        .sum();
    let grads = loss.backward();
    assert!(params.grad(&grads, layer.weight).is_none());
    Sgd::new(0.1).step(&mut params, &grads);
    assert_eq!(params.value(layer.weight), &before);
    assert_ne!(params.value(layer.bias.unwrap()), &bias_before);
    params.unfreeze(layer.weight);
    assert!(!params.is_frozen(layer.weight));
}

#[test]
fn a_parameter_used_twice_is_one_node_with_summed_gradient() {
    let mut params = ParamStore::<f64>::new();
    let w = params.add("w", Tensor::scalar(3.0));
    let tape = Tape::new();
    let a: Var<f64> = params.var(&tape, w);
    let b = params.var(&tape, w);
    assert_eq!(a.index(), b.index());
    let grads = (a * b).backward();
    assert_eq!(params.grad(&grads, w).unwrap().item(), 6.0);
}
