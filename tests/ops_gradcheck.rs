//! Every op's first and second derivatives against central finite
//! differences in f64, over random shapes (with broadcasting pairs) and
//! random in-domain values.

mod common;

use common::check;
use common::shapes::{broadcast_pair, shape, shape_at_least};
use proptest::prelude::*;
use tapegrad::{Tensor, Var};

fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(shape, lo, hi, seed)
}

/// Values in ±[0.2, 2]: away from zero, for divisors and kinks.
fn nonzero(shape: &[usize], seed: u64) -> Tensor<f64> {
    uniform(shape, -1.0, 1.0, seed).map(|v| v.signum() * (0.2 + 1.8 * v.abs()))
}

fn check_unary<F: for<'t> Fn(Var<'t, f64>) -> Var<'t, f64>>(
    name: &str,
    f: F,
    x: Tensor<f64>,
    seed: u64,
) {
    check(name, &|v: &[Var<f64>]| f(v[0]), &[x], seed);
}

fn check_binary<F: for<'t> Fn(Var<'t, f64>, Var<'t, f64>) -> Var<'t, f64>>(
    name: &str,
    f: F,
    a: Tensor<f64>,
    b: Tensor<f64>,
    seed: u64,
) {
    check(name, &|v: &[Var<f64>]| f(v[0], v[1]), &[a, b], seed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn add_sub_mul_broadcast((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        let (a, b) = (uniform(&sa, -2.0, 2.0, seed), uniform(&sb, -2.0, 2.0, seed + 1));
        check_binary("add", |a, b| a + b, a.clone(), b.clone(), seed);
        check_binary("sub", |a, b| a - b, a.clone(), b.clone(), seed);
        check_binary("mul", |a, b| a * b, a, b, seed);
    }

    #[test]
    fn div_broadcast((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        check_binary("div", |a, b| a / b, uniform(&sa, -2.0, 2.0, seed), nonzero(&sb, seed + 1), seed);
    }

    #[test]
    fn pow_broadcast((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        check_binary("pow", |a, b| a.pow(b), uniform(&sa, 0.2, 2.0, seed), uniform(&sb, -2.0, 2.0, seed + 1), seed);
    }

    #[test]
    fn maximum_minimum_broadcast((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        let (a, b) = (uniform(&sa, -2.0, 2.0, seed), uniform(&sb, -2.0, 2.0, seed + 1));
        check_binary("maximum", |a, b| a.maximum(b), a.clone(), b.clone(), seed);
        check_binary("minimum", |a, b| a.minimum(b), a, b, seed);
    }

    #[test]
    fn where_broadcast((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        let (a, b) = (uniform(&sa, -2.0, 2.0, seed), uniform(&sb, -2.0, 2.0, seed + 1));
        let out = tapegrad::tensor::broadcast_shapes(&sa, &sb).unwrap();
        let mask = uniform(&out, 0.0, 1.0, seed + 2).map(|v| if v < 0.5 { 0.0 } else { 1.0 });
        check("where", &|v: &[Var<f64>]| Var::where_(v[0].tape().constant(mask.clone()), v[0] * v[0], v[1].sin()), &[a, b], seed);
    }

    #[test]
    fn arithmetic_with_numbers(s in shape(3), seed in any::<u64>()) {
        let x = nonzero(&s, seed);
        check_unary("neg", |x| -x, x.clone(), seed);
        check_unary("affine", |x| 2.5 * x + 1.0, x.clone(), seed);
        check_unary("number minus", |x| 1.0 - x, x.clone(), seed);
        check_unary("number over", |x| 2.0 / x, x.clone(), seed);
        check_unary("over number", |x| x / 3.0, x, seed);
    }

    #[test]
    fn powf(s in shape(3), p in -2.5f64..3.0, seed in any::<u64>()) {
        check_unary("powf", move |x| x.powf(p), uniform(&s, 0.2, 2.0, seed), seed);
    }

    #[test]
    fn exp_ln_sqrt(s in shape(3), seed in any::<u64>()) {
        check_unary("exp", |x| x.exp(), uniform(&s, -2.0, 2.0, seed), seed);
        check_unary("ln", |x| x.ln(), uniform(&s, 0.1, 3.0, seed), seed);
        check_unary("sqrt", |x| x.sqrt(), uniform(&s, 0.1, 3.0, seed), seed);
    }

    #[test]
    fn square_abs_trig(s in shape(3), seed in any::<u64>()) {
        check_unary("square", |x| x.square(), uniform(&s, -2.0, 2.0, seed), seed);
        check_unary("abs", |x| x.abs(), nonzero(&s, seed), seed);
        check_unary("sin", |x| x.sin(), uniform(&s, -3.0, 3.0, seed), seed);
        check_unary("cos", |x| x.cos(), uniform(&s, -3.0, 3.0, seed), seed);
        check_unary("atan", |x| x.atan(), uniform(&s, -3.0, 3.0, seed), seed);
    }

    #[test]
    fn inverse_trig_hyperbolic_log1p_expm1(s in shape(3), seed in any::<u64>()) {
        check_unary("asin", |x| x.asin(), uniform(&s, -0.9, 0.9, seed), seed);
        check_unary("acos", |x| x.acos(), uniform(&s, -0.9, 0.9, seed), seed);
        check_unary("sinh", |x| x.sinh(), uniform(&s, -2.0, 2.0, seed), seed);
        check_unary("cosh", |x| x.cosh(), uniform(&s, -2.0, 2.0, seed), seed);
        check_unary("asinh", |x| x.asinh(), uniform(&s, -3.0, 3.0, seed), seed);
        check_unary("log1p", |x| x.log1p(), uniform(&s, -0.5, 2.0, seed), seed);
        check_unary("expm1", |x| x.expm1(), uniform(&s, -2.0, 2.0, seed), seed);
        check_unary("silu", |x| x.silu(), uniform(&s, -3.0, 3.0, seed), seed);
        // ELU's second derivative jumps at 0 and clamp's first at ±1: the
        // values keep away from the kinks.
        check_unary("elu", |x| x.elu(), nonzero(&s, seed), seed);
        check_unary("elu_with", |x| x.elu_with(0.5), nonzero(&s, seed), seed);
        let off_edges = nonzero(&s, seed).map(|v| if (v.abs() - 1.0).abs() < 0.05 { 1.2 * v } else { v });
        check_unary("clamp", |x| x.clamp(-1.0, 1.0), off_edges, seed);
    }

    #[test]
    fn atan2_broadcast((sa, sb) in broadcast_pair(), seed in any::<u64>()) {
        // Away from the origin, where the angle jumps.
        check_binary("atan2", |a, b| a.atan2(b), uniform(&sa, 0.3, 2.0, seed), uniform(&sb, -2.0, 2.0, seed + 1), seed);
    }

    #[test]
    fn activations(s in shape(3), seed in any::<u64>()) {
        let x = nonzero(&s, seed).map(|v| 2.0 * v);
        check_unary("tanh", |x| x.tanh(), x.clone(), seed);
        check_unary("sigmoid", |x| x.sigmoid(), x.clone(), seed);
        check_unary("relu", |x| x.relu(), x.clone(), seed);
        check_unary("leaky_relu", |x| x.leaky_relu(), x.clone(), seed);
        check_unary("leaky_relu_with", |x| x.leaky_relu_with(0.2), x.clone(), seed);
        check_unary("softplus", |x| x.softplus(), x.clone(), seed);
        check_unary("erf", |x| x.erf(), x, seed);
    }

    #[test]
    fn sums_and_means(s in shape_at_least(1, 3), axis_pick in any::<usize>(), keepdim in any::<bool>(), seed in any::<u64>()) {
        let axis = axis_pick % s.len();
        let x = uniform(&s, -2.0, 2.0, seed);
        // Squared first so the second derivative is not identically zero.
        check_unary("sum", |x| x.square().sum(), x.clone(), seed);
        check_unary("mean", |x| x.square().mean(), x.clone(), seed);
        check_unary("sum_axis", move |x| x.square().sum_axis(axis, keepdim), x.clone(), seed);
        check_unary("mean_axis", move |x| x.square().mean_axis(axis, keepdim), x, seed);
    }

    #[test]
    fn max_and_logsumexp(s in shape_at_least(1, 3), axis_pick in any::<usize>(), keepdim in any::<bool>(), seed in any::<u64>()) {
        let axis = axis_pick % s.len();
        let x = uniform(&s, -2.0, 2.0, seed);
        check_unary("max_axis", move |x| x.square().max_axis(axis, keepdim), x.clone(), seed);
        check_unary("logsumexp", move |x| x.logsumexp(axis, keepdim), x, seed);
    }

    #[test]
    fn softmax_and_log_softmax(s in shape_at_least(1, 3), axis_pick in any::<usize>(), seed in any::<u64>()) {
        let axis = axis_pick % s.len();
        let x = uniform(&s, -3.0, 3.0, seed);
        check_unary("softmax", move |x| x.softmax(axis), x.clone(), seed);
        check_unary("log_softmax", move |x| x.log_softmax(axis), x, seed);
    }

    #[test]
    fn reshape_permute_transpose(s in shape_at_least(2, 4), seed in any::<u64>()) {
        let x = uniform(&s, -2.0, 2.0, seed);
        let n: usize = s.iter().product();
        let perm: Vec<usize> = (0..s.len()).rev().collect();
        check_unary("reshape", move |x| x.square().reshape([n]), x.clone(), seed);
        check_unary("permute", move |x| x.square().permute(&perm), x.clone(), seed);
        check_unary("transpose", |x| x.square().transpose(), x, seed);
    }

    #[test]
    fn broadcast_to_and_sum_to((small, big) in broadcast_pair(), seed in any::<u64>()) {
        let out = tapegrad::tensor::broadcast_shapes(&small, &big).unwrap();
        let (from, to) = (small.clone(), out.to_vec());
        if tapegrad::tensor::broadcasts_to(&from, &to) {
            let t = to.clone();
            check_unary("broadcast_to", move |x| x.square().broadcast_to(&t), uniform(&from, -2.0, 2.0, seed), seed);
            check_unary("sum_to", move |x| x.square().sum_to(&from), uniform(&to, -2.0, 2.0, seed), seed);
        }
    }

    #[test]
    fn narrow_pad_concat_stack(s in shape_at_least(1, 3), axis_pick in any::<usize>(), seed in any::<u64>()) {
        let axis = axis_pick % s.len();
        let len = s[axis];
        let x = uniform(&s, -2.0, 2.0, seed);
        let y = uniform(&s, -2.0, 2.0, seed + 1);
        let start = (seed as usize) % len;
        check_unary("narrow", move |x| x.square().narrow(axis, start, len - start), x.clone(), seed);
        check_unary("pad", move |x| x.square().pad(axis, 1, len + 2), x.clone(), seed);
        check_binary("concat", move |a, b| Var::concat(&[a.square(), b, a], axis), x.clone(), y.clone(), seed);
        check_binary("stack", move |a, b| Var::stack(&[a, b.square()], axis), x, y, seed);
    }

    #[test]
    fn index_select_and_gather(s in shape_at_least(1, 3), axis_pick in any::<usize>(), seed in any::<u64>()) {
        let axis = axis_pick % s.len();
        let n = s[axis];
        let x = uniform(&s, -2.0, 2.0, seed);
        let picks: Vec<usize> = (0..5).map(|i| (seed as usize / (i + 1)) % n).collect();
        let p = picks.clone();
        check_unary("index_select", move |x| x.square().index_select(axis, &p), x.clone(), seed);
        let others: usize = s.iter().product::<usize>() / n;
        let idx: Vec<usize> = (0..others * 2).map(|i| (seed as usize).wrapping_mul(i + 7) % n).collect();
        check_unary("gather", move |x| x.square().gather(axis, &idx), x, seed);
    }

    #[test]
    fn matmul_2d_3d(m in 1usize..4, k in 1usize..4, n in 1usize..4, b in 1usize..3, seed in any::<u64>()) {
        fn mm<'t>(a: Var<'t, f64>, b: Var<'t, f64>) -> Var<'t, f64> {
            a.matmul(b).tanh()
        }
        check_binary("matmul 2d", mm, uniform(&[m, k], -1.0, 1.0, seed), uniform(&[k, n], -1.0, 1.0, seed + 1), seed);
        check_binary("matmul 3d", mm, uniform(&[b, m, k], -1.0, 1.0, seed), uniform(&[b, k, n], -1.0, 1.0, seed + 1), seed);
        check_binary("matmul 3d·2d", mm, uniform(&[b, m, k], -1.0, 1.0, seed), uniform(&[k, n], -1.0, 1.0, seed + 1), seed);
        check_binary("matmul 2d·3d", mm, uniform(&[m, k], -1.0, 1.0, seed), uniform(&[b, k, n], -1.0, 1.0, seed + 1), seed);
    }

    #[test]
    fn matmul_with_transposed_operands(m in 1usize..4, k in 1usize..4, n in 1usize..4, b in 1usize..3, seed in any::<u64>()) {
        let a_t = uniform(&[b, k, m], -1.0, 1.0, seed);
        let b_t = uniform(&[n, k], -1.0, 1.0, seed + 1);
        let (a, bb) = (uniform(&[b, m, k], -1.0, 1.0, seed + 2), uniform(&[b, k, n], -1.0, 1.0, seed + 3));
        check_binary("matmul aᵀb", |x, y| x.matmul_t(y, true, false).tanh(), a_t.clone(), bb.clone(), seed);
        check_binary("matmul abᵀ", |x, y| x.matmul_t(y, false, true).tanh(), a.clone(), b_t.clone(), seed);
        check_binary("matmul aᵀbᵀ", |x, y| x.matmul_t(y, true, true).tanh(), a_t, b_t, seed);
        check_binary("matmul 2d abᵀ", |x, y| x.matmul_t(y, false, true).tanh(), uniform(&[m, k], -1.0, 1.0, seed), uniform(&[n, k], -1.0, 1.0, seed), seed);
    }
}
