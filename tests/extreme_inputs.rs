//! Numerically nasty inputs: huge logits, saturated activations.

use tapegrad::{Tape, Tensor};

fn all_finite(t: &Tensor<f64>) -> bool {
    t.data().iter().all(|v| v.is_finite())
}

#[test]
fn softmax_and_log_softmax_of_logits_near_1000() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1000.0, 999.0, -1000.0, 0.0], [1, 4]));
    let p = x.softmax(1);
    let lp = x.log_softmax(1);
    let (pv, lv) = (p.value(), lp.value());
    assert!(all_finite(&pv) && all_finite(&lv));
    let e = (-1.0f64).exp();
    assert!((pv.data()[0] - 1.0 / (1.0 + e)).abs() < 1e-15);
    assert!((lv.data()[1] - (-1.0 - (1.0 + e).ln())).abs() < 1e-12);
    assert!((lv.data()[2] - (-2000.0 - (1.0 + e).ln())).abs() < 1e-9);
    let w = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 4]));
    let gp = (p * w).sum().backward()[x].clone();
    let gl = (lp * w).sum().backward()[x].clone();
    assert!(all_finite(&gp) && all_finite(&gl));
    // d/dx Σ w·log_softmax = w - softmax·Σw
    for j in 0..4 {
        let want = (j + 1) as f64 - pv.data()[j] * 10.0;
        assert!((gl.data()[j] - want).abs() < 1e-12);
    }
}

#[test]
fn sigmoid_of_plus_minus_800() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![800.0, -800.0], [2]));
    let y = x.sigmoid();
    assert_eq!(y.value().data(), &[1.0, 0.0]);
    let g = y.sum().backward()[x].clone();
    assert_eq!(g.data(), &[0.0, 0.0]);
    let s = x.softplus();
    assert_eq!(s.value().data(), &[800.0, 0.0]);
    assert_eq!(s.sum().backward()[x].data(), &[1.0, 0.0]);
}

#[test]
fn logsumexp_of_large_values() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1e300, 1e300, 5e2, 7e2], [2, 2]));
    let l = x.logsumexp(1, false);
    let v = l.value();
    assert!(all_finite(&v));
    assert_eq!(v.data()[0], 1e300);
    assert!((v.data()[1] - (700.0 + (1.0 + (-200f64).exp()).ln())).abs() < 1e-12);
    let g = l.sum().backward()[x].clone();
    assert!(all_finite(&g));
    assert_eq!(&g.data()[..2], &[0.5, 0.5]);
    // A shift-invariant gradient: exact softmax even where x - logsumexp
    // would lose digits.
    let big = tape.var(Tensor::from_vec(vec![1e9, 1e9 + 1.0], [2]));
    let gb = big.logsumexp(0, false).backward()[big].clone();
    let want = 1.0 / (1.0 + (-1f64).exp());
    assert!((gb.data()[1] - want).abs() < 1e-15);
}

#[test]
fn tanh_saturates_cleanly() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![50.0, -50.0], [2]));
    let y = x.tanh();
    assert_eq!(y.value().data(), &[1.0, -1.0]);
    assert_eq!(y.sum().backward()[x].data(), &[0.0, 0.0]);
}

#[test]
fn powers_at_zero_follow_pytorch() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::from_vec(vec![0.0, 0.0, 2.0], [3]));
    let b = tape.var(Tensor::from_vec(vec![0.0, 2.0, 0.0], [3]));
    let g = a.pow(b).sum().backward();
    // d/da a^b = b·a^(b-1): 0 at b = 0 (not 0·∞), 0 at a = 0, b = 2.
    assert_eq!(g[a].data(), &[0.0, 0.0, 0.0]);
    // d/db a^b = a^b·ln a: 0 at a = 0 (not 0·-∞), ln 2 at a = 2, b = 0.
    assert_eq!(g[b].data(), &[0.0, 0.0, 2f64.ln()]);
    let x = tape.var(0.0);
    assert_eq!(x.powf(0.0).backward()[x].item(), 0.0);
    assert_eq!(x.powf(2.0).backward()[x].item(), 0.0);
    assert_eq!(x.sqrt().backward()[x].item(), f64::INFINITY);
}

#[test]
fn tanh_derivative_keeps_digits_near_saturation() {
    let tape = Tape::<f64>::new();
    let x = tape.var(10.0);
    let d = x.tanh().backward()[x].item();
    let exact = 1.0 / 10f64.cosh().powi(2);
    assert!(((d - exact) / exact).abs() < 1e-8, "{d} vs {exact}");
}

#[test]
fn atan_of_plus_minus_1e300_is_finite_with_zero_slope() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1e300, -1e300, 0.0], [3]));
    let y = x.atan();
    let half_pi = std::f64::consts::FRAC_PI_2;
    assert_eq!(y.value().data(), &[half_pi, -half_pi, 0.0]);
    let g = y.sum().backward();
    assert_eq!(g[x].data(), &[0.0, 0.0, 1.0]);
    // Second derivative, -2x/(1 + x²)², also finite (0) out there.
    let h = tape.var(Tensor::from_vec(vec![1e300], [1]));
    let d = h.atan().sum().backward_recorded()[h];
    assert!(all_finite(&d.sum().backward()[h]));
}

/// log1p and expm1 keep tiny arguments (ln(1 + 1e-300) would be 0), with
/// slope 1 there; asin and acos stay finite up to one ulp from ±1, and
/// their slope there is the exact 1/√((1 − x)(1 + x)).
#[test]
fn log1p_expm1_asin_acos_at_their_edges() {
    let tape = Tape::<f64>::new();
    let tiny = tape.var(Tensor::from_vec(vec![1e-300, -1e-300], [2]));
    for y in [tiny.log1p(), tiny.expm1()] {
        assert_eq!(y.value().data(), &[1e-300, -1e-300]);
        assert_eq!(y.sum().backward()[tiny].data(), &[1.0, 1.0]);
    }
    let edge = 1.0 - f64::EPSILON / 2.0; // the largest f64 below 1
    let x = tape.var(Tensor::from_vec(vec![edge, -edge], [2]));
    let slope = 1.0 / ((1.0 - edge) * (1.0 + edge)).sqrt();
    let g = x.asin().sum().backward()[x].clone();
    assert!(all_finite(&g) && g.data().iter().all(|&d| (d - slope).abs() <= 1e-15 * slope));
    let g = x.acos().sum().backward()[x].clone();
    assert!(g.data().iter().all(|&d| (d + slope).abs() <= 1e-15 * slope));
    assert!(all_finite(&x.asin().value()) && all_finite(&x.acos().value()));
}
