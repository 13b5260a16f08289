//! gradcheck and gradgradcheck: they pass on every built-in op and name
//! the bad element when a rule is wrong.

use tapegrad::grad::{assert_gradcheck, func_multi, gradcheck, gradgradcheck, GradcheckOptions};
use tapegrad::{Algebra, CustomOp, Tensor, Var};

type Case<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn t(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(shape, -1.0, 1.0, seed)
}

fn positive(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::rand_uniform(shape, 0.5, 2.0, seed)
}

#[test]
fn every_built_in_op_passes_first_and_second_order() {
    let m = [2, 3];
    let cases: Vec<Case<'_>> = vec![
        (
            "add",
            Box::new(|| assert_gradcheck(|x| x[0] + x[1], &[t(&m, 1), t(&[3], 2)])),
        ),
        (
            "sub",
            Box::new(|| assert_gradcheck(|x| x[0] - x[1], &[t(&m, 1), t(&[2, 1], 2)])),
        ),
        (
            "mul",
            Box::new(|| assert_gradcheck(|x| x[0] * x[1], &[t(&m, 1), t(&m, 2)])),
        ),
        (
            "div",
            Box::new(|| assert_gradcheck(|x| x[0] / x[1], &[t(&m, 1), positive(&m, 2)])),
        ),
        (
            "pow",
            Box::new(|| assert_gradcheck(|x| x[0].pow(x[1]), &[positive(&m, 1), t(&m, 2)])),
        ),
        (
            "powf",
            Box::new(|| assert_gradcheck(|x| x[0].powf(1.7), &[positive(&m, 1)])),
        ),
        (
            "maximum",
            Box::new(|| assert_gradcheck(|x| x[0].maximum(x[1]), &[t(&m, 1), t(&m, 2)])),
        ),
        (
            "minimum",
            Box::new(|| assert_gradcheck(|x| x[0].minimum(x[1]), &[t(&m, 1), t(&m, 2)])),
        ),
        ("neg", Box::new(|| assert_gradcheck(|x| -x[0], &[t(&m, 1)]))),
        (
            "affine",
            Box::new(|| assert_gradcheck(|x| 3.0 - x[0] * 2.0, &[t(&m, 1)])),
        ),
        (
            "exp",
            Box::new(|| assert_gradcheck(|x| x[0].exp(), &[t(&m, 1)])),
        ),
        (
            "ln",
            Box::new(|| assert_gradcheck(|x| x[0].ln(), &[positive(&m, 1)])),
        ),
        (
            "sqrt",
            Box::new(|| assert_gradcheck(|x| x[0].sqrt(), &[positive(&m, 1)])),
        ),
        (
            "square",
            Box::new(|| assert_gradcheck(|x| x[0].square(), &[t(&m, 1)])),
        ),
        (
            "abs",
            Box::new(|| assert_gradcheck(|x| x[0].abs(), &[t(&m, 1)])),
        ),
        (
            "sin",
            Box::new(|| assert_gradcheck(|x| x[0].sin(), &[t(&m, 1)])),
        ),
        (
            "cos",
            Box::new(|| assert_gradcheck(|x| x[0].cos(), &[t(&m, 1)])),
        ),
        (
            "tanh",
            Box::new(|| assert_gradcheck(|x| x[0].tanh(), &[t(&m, 1)])),
        ),
        (
            "sigmoid",
            Box::new(|| assert_gradcheck(|x| x[0].sigmoid(), &[t(&m, 1)])),
        ),
        (
            "relu",
            Box::new(|| assert_gradcheck(|x| x[0].relu(), &[t(&m, 1)])),
        ),
        (
            "leaky_relu",
            Box::new(|| assert_gradcheck(|x| x[0].leaky_relu(), &[t(&m, 1)])),
        ),
        (
            "softplus",
            Box::new(|| assert_gradcheck(|x| x[0].softplus(), &[t(&m, 1)])),
        ),
        (
            "sum",
            Box::new(|| assert_gradcheck(|x| x[0].square().sum(), &[t(&m, 1)])),
        ),
        (
            "sum_axis",
            Box::new(|| assert_gradcheck(|x| x[0].square().sum_axis(1, true), &[t(&m, 1)])),
        ),
        (
            "mean",
            Box::new(|| assert_gradcheck(|x| x[0].square().mean(), &[t(&m, 1)])),
        ),
        (
            "mean_axis",
            Box::new(|| assert_gradcheck(|x| x[0].square().mean_axis(0, false), &[t(&m, 1)])),
        ),
        (
            "max_axis",
            Box::new(|| assert_gradcheck(|x| x[0].square().max_axis(1, false), &[t(&m, 1)])),
        ),
        (
            "logsumexp",
            Box::new(|| assert_gradcheck(|x| x[0].logsumexp(0, true), &[t(&m, 1)])),
        ),
        (
            "softmax",
            Box::new(|| assert_gradcheck(|x| x[0].softmax(1), &[t(&m, 1)])),
        ),
        (
            "log_softmax",
            Box::new(|| assert_gradcheck(|x| x[0].log_softmax(0), &[t(&m, 1)])),
        ),
        (
            "reshape",
            Box::new(|| assert_gradcheck(|x| x[0].square().reshape([3, 2]), &[t(&m, 1)])),
        ),
        (
            "permute",
            Box::new(|| assert_gradcheck(|x| x[0].square().permute([1, 0]), &[t(&m, 1)])),
        ),
        (
            "broadcast_to",
            Box::new(|| assert_gradcheck(|x| x[0].square().broadcast_to([4, 3]), &[t(&[3], 1)])),
        ),
        (
            "sum_to",
            Box::new(|| assert_gradcheck(|x| x[0].square().sum_to([3]), &[t(&m, 1)])),
        ),
        (
            "narrow",
            Box::new(|| assert_gradcheck(|x| x[0].square().narrow(1, 1, 2), &[t(&m, 1)])),
        ),
        (
            "pad",
            Box::new(|| assert_gradcheck(|x| x[0].square().pad(0, 1, 4), &[t(&m, 1)])),
        ),
        (
            "concat",
            Box::new(|| {
                assert_gradcheck(
                    |x| Var::concat(&[x[0], x[1].square()], 0),
                    &[t(&m, 1), t(&[1, 3], 2)],
                )
            }),
        ),
        (
            "stack",
            Box::new(|| {
                assert_gradcheck(
                    |x| Var::stack(&[x[0].square(), x[1]], 1),
                    &[t(&m, 1), t(&m, 2)],
                )
            }),
        ),
        (
            "index_select",
            Box::new(|| {
                assert_gradcheck(|x| x[0].square().index_select(1, &[2, 0, 2]), &[t(&m, 1)])
            }),
        ),
        (
            "gather",
            Box::new(|| assert_gradcheck(|x| x[0].square().gather(1, &[2, 0]), &[t(&m, 1)])),
        ),
        (
            "matmul",
            Box::new(|| {
                assert_gradcheck(|x| x[0].matmul(x[1]).square(), &[t(&m, 1), t(&[3, 2], 2)])
            }),
        ),
        (
            "batched matmul",
            Box::new(|| {
                assert_gradcheck(
                    |x| x[0].matmul(x[1]).square(),
                    &[t(&[2, 2, 3], 1), t(&[2, 3, 2], 2)],
                )
            }),
        ),
        (
            "where",
            Box::new(|| {
                assert_gradcheck(
                    |x| Var::where_(x[0].gt(x[1]), x[0].square(), x[1].exp()),
                    &[t(&m, 1), t(&m, 2)],
                )
            }),
        ),
    ];
    for (name, case) in cases {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)) {
            panic!("{name}: {:?}", e.downcast_ref::<String>());
        }
    }
}

/// x³ with a rule that is wrong where x > 1.5 (one element of the input
/// used below): the check must name that element.
struct BadCube;
impl CustomOp<f64> for BadCube {
    fn name(&self) -> &'static str {
        "bad_cube"
    }
    fn forward(&self, xs: &[&Tensor<f64>]) -> Tensor<f64> {
        xs[0].map(|v| v * v * v)
    }
    fn vjp<X: Algebra<f64>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        let bug = xs[0].constant_map(|v| if v > 1.5 { 1.0 } else { 0.0 });
        g.mul(&xs[0].square().scale(3.0).add(&bug))
    }
}

fn bad_input() -> Tensor<f64> {
    Tensor::from_vec(vec![0.5, -1.0, 1.0, 2.0, 0.3, -0.7], [2, 3])
}

#[test]
fn a_wrong_rule_fails_and_the_report_names_the_element() {
    let f = func_multi(|x| x[0].tape().custom(BadCube, &[x[0]]));
    let e = gradcheck(f, &[bad_input()]).unwrap_err();
    assert_eq!(e.input, 0);
    assert_eq!(e.input_index, vec![1, 0]);
    assert_eq!(e.output_index, vec![1, 0]);
    assert!(
        (e.analytic - 13.0).abs() < 1e-9,
        "3·2² + 1 = {}",
        e.analytic
    );
    assert!((e.numeric - 12.0).abs() < 1e-6);
    let shown = e.to_string();
    for part in [
        "gradient check failed",
        "d output[1, 0] / d input 0[1, 0]",
        "analytic 1.3e1",
        "absolute error",
        "relative error",
    ] {
        assert!(shown.contains(part), "{shown} lacks {part}");
    }
    // Fast mode notices too, and the follow-up full check locates it.
    let fast = GradcheckOptions {
        fast: true,
        ..Default::default()
    };
    let e2 = fast.check(f, &[bad_input()]).unwrap_err();
    assert_eq!(e2.input_index, vec![1, 0]);
}

/// x³ whose rule is right at first order but treats 3x² as a constant, so
/// its second derivative is wrong.
struct FlatCube;
impl CustomOp<f64> for FlatCube {
    fn name(&self) -> &'static str {
        "flat_cube"
    }
    fn forward(&self, xs: &[&Tensor<f64>]) -> Tensor<f64> {
        xs[0].map(|v| v * v * v)
    }
    fn vjp<X: Algebra<f64>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        g.mul(&xs[0].constant_map(|v| 3.0 * v * v))
    }
}

#[test]
fn gradgradcheck_catches_a_rule_that_is_wrong_only_at_second_order() {
    let f = func_multi(|x| x[0].tape().custom(FlatCube, &[x[0]]));
    let x = [bad_input()];
    assert!(gradcheck(f, &x).is_ok());
    let e = gradgradcheck(f, &x).unwrap_err();
    assert_eq!(e.order, "second derivative");
    assert!(e.to_string().starts_with("second derivative check failed"));
    assert!(GradcheckOptions {
        fast: true,
        ..Default::default()
    }
    .check_second(f, &x)
    .is_err());
}

#[test]
fn fast_mode_passes_where_the_full_check_does() {
    let fast = GradcheckOptions {
        fast: true,
        seed: 3,
        ..Default::default()
    };
    let f = func_multi(|x| (x[0].matmul(x[1]).tanh() * x[0].sum()).log_softmax(1));
    let inputs = [t(&[3, 4], 1), t(&[4, 2], 2)];
    fast.check(f, &inputs).unwrap();
    fast.check_second(f, &inputs).unwrap();
    gradcheck(f, &inputs).unwrap();
}
