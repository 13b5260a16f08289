//! grad, vjp, jvp, jacobian (reverse and forward), hessian, hvp and custom
//! ops, against closed forms.

use tapegrad::grad::{func, grad, hessian, hvp, jacobian, jacobian_fwd, jvp, value_and_grad, vjp};
use tapegrad::{Algebra, CustomOp, Element, Tape, Tensor, Var};

/// The chained Rosenbrock function Σ 100(x_{i+1} - x_i²)² + (1 - x_i)².
fn rosenbrock<T: Element>(x: Var<'_, T>) -> Var<'_, T> {
    let n = x.shape()[0];
    let (a, b) = (x.narrow(0, 0, n - 1), x.narrow(0, 1, n - 1));
    ((b - a.square()).square() * T::lit(100.0) + (a - T::one()).square()).sum()
}

fn start(n: usize) -> Tensor<f64> {
    Tensor::from_fn([n], |i| if i[0] % 2 == 0 { -1.2 } else { 1.0 })
}

fn close(a: &Tensor<f64>, b: &Tensor<f64>, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (i, (p, q)) in a.data().iter().zip(b.data()).enumerate() {
        assert!(
            (p - q).abs() <= tol * (1.0 + q.abs()),
            "element {i}: {p} vs {q}"
        );
    }
}

#[test]
fn jacobian_of_a_linear_map_is_its_matrix() {
    let a = Tensor::<f64>::from_fn([3, 4], |i| (i[0] * 4 + i[1]) as f64 - 5.0);
    let x = Tensor::from_vec(vec![0.3, -1.0, 2.0, 0.5], [4, 1]);
    let f = func(|x| x.tape().constant(a.clone()).matmul(x));
    let j = jacobian(f, &x);
    assert_eq!(j.shape(), &[3, 1, 4, 1]);
    assert_eq!(j.data(), a.data());
    assert_eq!(jacobian_fwd(f, &x), j);
}

#[test]
fn jacobian_of_an_elementwise_op_is_diagonal() {
    let x = Tensor::<f64>::rand_uniform([2, 3], -2.0, 2.0, 5);
    let j = jacobian(|x| x.tanh(), &x);
    assert_eq!(j.shape(), &[2, 3, 2, 3]);
    for p in 0..6 {
        for q in 0..6 {
            let want = if p == q {
                1.0 - x.data()[p].tanh().powi(2)
            } else {
                0.0
            };
            assert!((j.data()[p * 6 + q] - want).abs() < 1e-15);
        }
    }
    close(&jacobian_fwd(|x| x.tanh(), &x), &j, 1e-15);
}

#[test]
fn jacobian_shapes_for_matrix_inputs_and_outputs() {
    // Y = W X V: dY[i,j]/dX[k,l] = W[i,k] V[l,j].
    let w = Tensor::<f64>::rand_uniform([4, 2], -1.0, 1.0, 1);
    let v = Tensor::<f64>::rand_uniform([3, 5], -1.0, 1.0, 2);
    let x = Tensor::<f64>::rand_uniform([2, 3], -1.0, 1.0, 3);
    let f = func(|x| {
        let t = x.tape();
        t.constant(w.clone())
            .matmul(x)
            .matmul(t.constant(v.clone()))
    });
    let j = jacobian(f, &x);
    assert_eq!(j.shape(), &[4, 5, 2, 3]);
    let want = Tensor::from_fn([4, 5, 2, 3], |i| {
        w.get(&[i[0], i[2]]) * v.get(&[i[3], i[1]])
    });
    close(&j, &want, 1e-14);
    close(&jacobian_fwd(f, &x), &want, 1e-14);
}

#[test]
fn hessian_of_a_quadratic_form_is_a_plus_a_transpose() {
    let a = Tensor::<f64>::rand_uniform([4, 4], -1.0, 1.0, 9);
    let x = Tensor::<f64>::rand_uniform([4, 1], -1.0, 1.0, 10);
    let h = hessian(
        |x| {
            x.transpose()
                .matmul(x.tape().constant(a.clone()))
                .matmul(x)
                .sum()
        },
        &x,
    );
    assert_eq!(h.shape(), &[4, 1, 4, 1]);
    let want = Tensor::from_fn([4, 1, 4, 1], |i| {
        a.get(&[i[0], i[2]]) + a.get(&[i[2], i[0]])
    });
    close(&h, &want, 1e-14);
}

#[test]
fn rosenbrock_hessian_matches_its_closed_form() {
    let x = Tensor::<f64>::rand_uniform([6], -2.0, 2.0, 4);
    let h = hessian(rosenbrock, &x);
    let xs = x.data();
    let want = Tensor::from_fn([6, 6], |ij| {
        let (i, j) = (ij[0], ij[1]);
        if i == j {
            let as_a = if i < 5 {
                1200.0 * xs[i] * xs[i] - 400.0 * xs[i + 1] + 2.0
            } else {
                0.0
            };
            let as_b = if i > 0 { 200.0 } else { 0.0 };
            as_a + as_b
        } else if j == i + 1 {
            -400.0 * xs[i]
        } else if i == j + 1 {
            -400.0 * xs[j]
        } else {
            0.0
        }
    });
    close(&h, &want, 1e-12);
}

#[test]
fn w3_check_values_at_n_100() {
    let x = start(100);
    let h = hessian(rosenbrock, &x);
    assert_eq!(h.get(&[0, 0]), 1330.0);
    assert_eq!(h.get(&[0, 1]), 480.0);
    let sum: f64 = h.data().iter().sum();
    assert!((sum - 177518.0).abs() < 1e-9);
    let hv = hvp(rosenbrock, &x, &Tensor::ones([100]));
    assert!((hv.data().iter().sum::<f64>() - 177518.0).abs() < 1e-9);
}

#[test]
fn hvp_equals_hessian_times_v() {
    let x = Tensor::<f64>::rand_uniform([7], -1.5, 1.5, 12);
    let v = Tensor::<f64>::rand_uniform([7], -1.0, 1.0, 13);
    let f = func(|x| rosenbrock(x) + (x.sin() * x).sum());
    let h = hessian(f, &x);
    let hv = hvp(f, &x, &v);
    let want = Tensor::from_fn([7], |i| {
        (0..7).map(|j| h.get(&[i[0], j]) * v.data()[j]).sum()
    });
    close(&hv, &want, 1e-12);
}

#[test]
fn jvp_and_vjp_agree_with_the_jacobian() {
    let x = Tensor::<f64>::rand_uniform([3, 2], -1.0, 1.0, 20);
    let w = Tensor::<f64>::rand_uniform([2, 4], -1.0, 1.0, 21);
    let f = func(|x| x.matmul(x.tape().constant(w.clone())).softmax(1) * x.sum());
    let j = jacobian(f, &x); // shape (3,4,3,2), read as a 12 × 6 matrix
    let v = Tensor::<f64>::rand_uniform([3, 2], -1.0, 1.0, 22);
    let u = Tensor::<f64>::rand_uniform([3, 4], -1.0, 1.0, 23);
    let (y, jv) = jvp(f, &x, &v);
    let (y2, jtu) = vjp(f, &x, &u);
    assert_eq!(y, y2);
    let jv_want = Tensor::from_fn([3, 4], |i| {
        (0..6)
            .map(|c| j.data()[(i[0] * 4 + i[1]) * 6 + c] * v.data()[c])
            .sum()
    });
    let jtu_want = Tensor::from_fn([3, 2], |i| {
        (0..12)
            .map(|r| j.data()[r * 6 + i[0] * 2 + i[1]] * u.data()[r])
            .sum()
    });
    close(&jv, &jv_want, 1e-13);
    close(&jtu, &jtu_want, 1e-13);
    let dot = |a: &Tensor<f64>, b: &Tensor<f64>| {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(p, q)| p * q)
            .sum::<f64>()
    };
    assert!((dot(&u, &jv) - dot(&jtu, &v)).abs() < 1e-13);
}

#[test]
fn value_and_grad_from_one_recording() {
    let x = start(4);
    let (value, g) = value_and_grad(rosenbrock, &x);
    // Terms at (-1.2, 1), (1, -1.2), (-1.2, 1): 24.2 + 484 + 24.2.
    assert!((value - 532.4).abs() < 1e-9);
    assert_eq!(g, grad(rosenbrock, &x));
    // 2-d Rosenbrock at (-1.2, 1): f = 24.2, ∇f = (-215.6, -88).
    let (v2, g2) = value_and_grad(rosenbrock, &start(2));
    assert!((v2 - 24.2).abs() < 1e-12);
    close(&g2, &Tensor::from_vec(vec![-215.6, -88.0], [2]), 1e-12);
}

#[test]
fn operators_work_in_f32() {
    let x = Tensor::<f32>::from_vec(vec![-1.2, 1.0], [2]);
    let g = grad(rosenbrock, &x);
    assert!((g.data()[0] + 215.6).abs() < 1e-3 && (g.data()[1] + 88.0).abs() < 1e-4);
    let h = hessian(rosenbrock, &x);
    for (got, want) in h.data().iter().zip([1330.0f32, 480.0, 480.0, 200.0]) {
        assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
    }
    let j = jacobian(|x| x.exp(), &x);
    assert!((j.data()[0] - (-1.2f32).exp()).abs() < 1e-6 && j.data()[1] == 0.0);
}

/// softsign x / (1 + |x|) as a user-defined op with its own rule.
struct Softsign;
impl<T: Element> CustomOp<T> for Softsign {
    fn name(&self) -> &'static str {
        "softsign"
    }
    fn forward(&self, xs: &[&Tensor<T>]) -> Tensor<T> {
        xs[0].map(|v| v / (T::one() + v.abs()))
    }
    fn vjp<X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        // d/dx = 1 / (1 + |x|)²
        let denom = xs[0].square().sqrt().affine(T::one(), T::one());
        g.div(&denom.square())
    }
}

#[test]
fn custom_ops_compose_with_everything() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![-2.0, 0.5, 3.0], [3]));
    let y = tape.custom(Softsign, &[x.sin()]).exp().sum();
    assert_eq!(tape.custom(Softsign, &[x]).op_name(), "softsign");
    let g = y.backward()[x].clone();
    let want: Vec<f64> = x
        .value()
        .data()
        .iter()
        .map(|&v| {
            let s = v.sin();
            (s / (1.0 + s.abs())).exp() / (1.0 + s.abs()).powi(2) * v.cos()
        })
        .collect();
    close(&g, &Tensor::from_vec(want, [3]), 1e-14);
    // Through the functional operators, recorded twice.
    let h = hessian(
        |x| tape_free_softsign(x).sum(),
        &Tensor::from_vec(vec![0.7], [1]),
    );
    let want = -2.0 / (1.7f64).powi(3);
    assert!((h.item() - want).abs() < 1e-12, "{} vs {want}", h.item());
}

fn tape_free_softsign(x: Var<'_, f64>) -> Var<'_, f64> {
    x.tape().custom(Softsign, &[x])
}

/// The several-input operators agree with the single-input ones applied to
/// the inputs concatenated into one vector (an independent route).
#[test]
fn several_inputs_agree_with_one_concatenated_input() {
    use tapegrad::grad::{
        hessian_multi, hvp_multi, jacobian_multi, jvp_multi, value_grad_hessian, vjp_multi,
    };
    let (a, b) = (Tensor::randn([3], 11), Tensor::randn([2], 12));
    // f(a, b) = [Σ sin(a)·b₀ + a₀ b₁², tanh(a₁ a₂ b₀)], a 2-vector.
    fn body<'t>(a: Var<'t, f64>, b: Var<'t, f64>) -> Var<'t, f64> {
        let first = a.sin().sum() * b.at(0) + a.at(0) * b.at(1).square();
        let second = (a.at(1) * a.at(2) * b.at(0)).tanh();
        Var::from_scalars(&[first, second])
    }
    let joined = Tensor::from_vec([a.data(), b.data()].concat(), [5]);
    let split = tapegrad::grad::func(|x| body(x.narrow(0, 0, 3), x.narrow(0, 3, 2)));
    let xs = [a.clone(), b.clone()];
    let j = tapegrad::grad::jacobian(split, &joined);
    let jm = jacobian_multi(|x| body(x[0], x[1]), &xs);
    assert_eq!((jm[0].shape(), jm[1].shape()), (&[2, 3][..], &[2, 2][..]));
    for i in 0..2 {
        for k in 0..5 {
            let want = j.data()[i * 5 + k];
            let got = if k < 3 {
                jm[0].data()[i * 3 + k]
            } else {
                jm[1].data()[i * 2 + k - 3]
            };
            assert!((want - got).abs() < 1e-14, "J[{i}][{k}]: {got} vs {want}");
        }
    }
    let u = Tensor::from_vec(vec![0.7, -1.3], [2]);
    let (_, g1) = tapegrad::grad::vjp(split, &joined, &u);
    let (_, gm) = vjp_multi(|x| body(x[0], x[1]), &xs, &u);
    close(
        &g1,
        &Tensor::from_vec([gm[0].data(), gm[1].data()].concat(), [5]),
        1e-14,
    );
    let (va, vb) = (Tensor::randn([3], 13), Tensor::randn([2], 14));
    let vjoined = Tensor::from_vec([va.data(), vb.data()].concat(), [5]);
    let (_, jv1) = tapegrad::grad::jvp(split, &joined, &vjoined);
    let (_, jvm) = jvp_multi(|x| body(x[0], x[1]), &xs, &[va.clone(), vb.clone()]);
    close(&jv1, &jvm, 1e-14);

    // A scalar function for the second-order operators: f = Σ body(a, b)².
    let scalar = tapegrad::grad::func(|x| split(x).square().sum());
    let h = tapegrad::grad::hessian(scalar, &joined);
    let hm = hessian_multi(|x| body(x[0], x[1]).square().sum(), &xs);
    let sizes = [3, 2];
    for (jb, rowb) in hm.iter().enumerate() {
        for (kb, block) in rowb.iter().enumerate() {
            assert_eq!(block.shape(), &[sizes[jb], sizes[kb]]);
            for r in 0..sizes[jb] {
                for c in 0..sizes[kb] {
                    let want = h.data()[(r + 3 * jb) * 5 + c + 3 * kb];
                    let got = block.data()[r * sizes[kb] + c];
                    assert!((want - got).abs() < 1e-12, "H[{jb}{kb}][{r}][{c}]");
                }
            }
        }
    }
    let hv1 = tapegrad::grad::hvp(scalar, &joined, &vjoined);
    let hvm = hvp_multi(|x| body(x[0], x[1]).square().sum(), &xs, &[va, vb]);
    close(
        &hv1,
        &Tensor::from_vec([hvm[0].data(), hvm[1].data()].concat(), [5]),
        1e-12,
    );
    let (f, g, hh) = value_grad_hessian(scalar, &joined);
    let (f1, g1) = tapegrad::grad::value_and_grad(scalar, &joined);
    assert_eq!((f, &g), (f1, &g1));
    assert_eq!(hh, h);
}

/// An input the function ignores gets zero blocks, not a panic.
#[test]
fn unused_inputs_get_zero_blocks() {
    use tapegrad::grad::{hessian_multi, hvp_multi, jvp_multi};
    let xs = [Tensor::from_vec(vec![1.0, 2.0], [2]), Tensor::zeros([3])];
    let h = hessian_multi(|x| x[0].square().sum(), &xs);
    assert_eq!(h[1][1], Tensor::zeros([3, 3]));
    assert_eq!(h[0][1], Tensor::zeros([2, 3]));
    assert_eq!(h[0][0].data(), &[2.0, 0.0, 0.0, 2.0]);
    let hv = hvp_multi(
        |x| x[0].square().sum(),
        &xs,
        &[Tensor::ones([2]), Tensor::ones([3])],
    );
    assert_eq!(
        (hv[0].data(), hv[1].data()),
        (&[2.0, 2.0][..], &[0.0, 0.0, 0.0][..])
    );
    let (_, jv) = jvp_multi(
        |x| x[0] * 0.0 + 1.0,
        &xs,
        &[Tensor::ones([2]), Tensor::ones([3])],
    );
    assert_eq!(jv.data(), &[0.0, 0.0]);
}
