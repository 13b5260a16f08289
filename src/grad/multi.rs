//! The derivative operators for functions of several inputs (and, for
//! `jacobian_multi`, `vjp_multi` and `jvp_multi`, an output of any shape),
//! each from one recording of the function, and `value_grad_hessian`.

use super::functional::{expect_scalar, jacobian_batched, value_grad_hessian_named};
use crate::tape::{Tape, Var};
use crate::tensor::{Element, Tensor};

/// Records `f` on a fresh tape with one leaf per input.
fn record_multi<T: Element, F, R>(
    f: F,
    xs: &[Tensor<T>],
    then: impl for<'t> FnOnce(&'t Tape<T>, &[Var<'t, T>], Var<'t, T>) -> R,
) -> R
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    let tape = Tape::new();
    let vs: Vec<Var<'_, T>> = xs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&vs);
    then(&tape, &vs, y)
}

#[track_caller]
fn same_shapes<T: Element>(op: &str, xs: &[Tensor<T>], vs: &[Tensor<T>]) {
    assert_eq!(
        xs.len(),
        vs.len(),
        "{op}: {} vectors for {} inputs",
        vs.len(),
        xs.len()
    );
    for (k, (x, v)) in xs.iter().zip(vs).enumerate() {
        assert_eq!(
            x.shape(),
            v.shape(),
            "{op}: vector {k} has shape {:?} but input {k} has shape {:?}",
            v.shape(),
            x.shape()
        );
    }
}

/// `Σ_k <parts_k, vectors_k>` recorded on the tape (the parts that carry
/// no gradient are zero and left out); `None` if no part does.
fn recorded_inner_product<'t, T: Element>(
    tape: &'t Tape<T>,
    parts: &[Var<'t, T>],
    vectors: &[Tensor<T>],
) -> Option<Var<'t, T>> {
    parts
        .iter()
        .zip(vectors)
        .filter(|(p, _)| p.requires_grad())
        .map(|(p, v)| (*p * tape.constant(v)).sum())
        .reduce(|s, t| s + t)
}

/// The Jacobian of `f` with respect to each input, from one recording and
/// one batched backward pass: block `k` has shape `out.shape ++ xs[k].shape`.
///
/// ```
/// use tapegrad::grad::jacobian_multi;
/// use tapegrad::Tensor;
/// // f(a, b) = a * b elementwise: ∂f/∂a = diag(b), ∂f/∂b = diag(a).
/// let (a, b) = (Tensor::from_vec(vec![1.0, 2.0], [2]), Tensor::from_vec(vec![3.0, 4.0], [2]));
/// let j = jacobian_multi(|x| x[0] * x[1], &[a, b]);
/// assert_eq!(j[0].data(), &[3.0, 0.0, 0.0, 4.0]);
/// assert_eq!(j[1].data(), &[1.0, 0.0, 0.0, 2.0]);
/// ```
#[track_caller]
pub fn jacobian_multi<T: Element, F>(f: F, xs: &[Tensor<T>]) -> Vec<Tensor<T>>
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    record_multi(f, xs, |_, vs, y| {
        let out = y.shape();
        jacobian_batched(y, vs)
            .into_iter()
            .zip(xs)
            .map(|(j, x)| j.reshape([out.as_slice(), x.shape()].concat()))
            .collect()
    })
}

/// The output and `uᵀJ_k` for every input `k` (each shaped like its input),
/// from one recording and one backward pass.
///
/// ```
/// use tapegrad::grad::vjp_multi;
/// use tapegrad::Tensor;
/// let (a, b) = (Tensor::from_vec(vec![1.0, 2.0], [2]), Tensor::from_vec(vec![3.0, 4.0], [2]));
/// let (y, g) = vjp_multi(|x| x[0] * x[1], &[a, b], &Tensor::from_vec(vec![1.0, -1.0], [2]));
/// assert_eq!(y.data(), &[3.0, 8.0]);
/// assert_eq!((g[0].data(), g[1].data()), (&[3.0, -4.0][..], &[1.0, -2.0][..]));
/// ```
#[track_caller]
pub fn vjp_multi<T: Element, F>(
    f: F,
    xs: &[Tensor<T>],
    u: &Tensor<T>,
) -> (Tensor<T>, Vec<Tensor<T>>)
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    record_multi(f, xs, |_, vs, y| {
        let g = y.backward_unchecked(u.clone());
        (y.value(), vs.iter().map(|v| g[*v].clone()).collect())
    })
}

/// The output and the directional derivative `Σ_k J_k v_k` (shaped like the
/// output), with one tangent per input; forward mode by the double-VJP
/// trick, from one recording.
///
/// ```
/// use tapegrad::grad::jvp_multi;
/// use tapegrad::Tensor;
/// let (a, b) = (Tensor::from_vec(vec![1.0, 2.0], [2]), Tensor::from_vec(vec![3.0, 4.0], [2]));
/// let ones = Tensor::ones([2]);
/// // d(a·b) along (1, 1) in both: b + a.
/// let (_, jv) = jvp_multi(|x| x[0] * x[1], &[a, b], &[ones.clone(), ones]);
/// assert_eq!(jv.data(), &[4.0, 6.0]);
/// ```
#[track_caller]
pub fn jvp_multi<T: Element, F>(
    f: F,
    xs: &[Tensor<T>],
    tangents: &[Tensor<T>],
) -> (Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    same_shapes("jvp_multi", xs, tangents);
    record_multi(f, xs, |tape, vs, y| {
        let u = tape.var(Tensor::ones(y.shape()));
        let jt_u = y.backward_recorded_with(u);
        // Σ_k <J_kᵀu, v_k> is linear in u; its gradient in u is Σ_k J_k v_k.
        let parts: Vec<Var<'_, T>> = vs.iter().map(|v| jt_u[*v]).collect();
        let jv = match recorded_inner_product(tape, &parts, tangents) {
            None => Tensor::zeros(y.shape()),
            Some(s) => s.backward()[u].clone(),
        };
        (y.value(), jv)
    })
}

/// The Hessian of a scalar function of several inputs, as blocks:
/// `h[j][k] = ∂²f/∂x_j∂x_k` with shape `xs[j].shape ++ xs[k].shape`. One
/// recording, one recorded backward pass, then one batched pass per input.
///
/// ```
/// use tapegrad::grad::hessian_multi;
/// use tapegrad::Tensor;
/// // f(a, b) = a² b: f_aa = 2b, f_ab = 2a, f_bb = 0.
/// let h = hessian_multi(|x| (x[0].square() * x[1]).sum(), &[Tensor::scalar(3.0), Tensor::scalar(5.0)]);
/// assert_eq!((h[0][0].item(), h[0][1].item(), h[1][0].item(), h[1][1].item()), (10.0, 6.0, 6.0, 0.0));
/// ```
#[track_caller]
pub fn hessian_multi<T: Element, F>(f: F, xs: &[Tensor<T>]) -> Vec<Vec<Tensor<T>>>
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    record_multi(f, xs, |_, vs, y| {
        expect_scalar("hessian_multi", y);
        let g = y.backward_recorded();
        vs.iter()
            .zip(xs)
            .map(|(v, xj)| {
                let gj = g[*v];
                let blocks: Vec<Tensor<T>> = if gj.requires_grad() {
                    jacobian_batched(gj, vs)
                } else {
                    xs.iter()
                        .map(|xk| Tensor::zeros([&[xj.numel()], xk.shape()].concat()))
                        .collect()
                };
                blocks
                    .into_iter()
                    .zip(xs)
                    .map(|(b, xk)| b.reshape([xj.shape(), xk.shape()].concat()))
                    .collect()
            })
            .collect()
    })
}

/// The Hessian-vector products `Σ_k H_jk v_k` for every input `j` (each
/// shaped like its input), from one recording and two backward passes.
///
/// ```
/// use tapegrad::grad::hvp_multi;
/// use tapegrad::Tensor;
/// // f(a, b) = a² b at (3, 5), v = (1, 0): (f_aa, f_ba) = (10, 6).
/// let xs = [Tensor::scalar(3.0), Tensor::scalar(5.0)];
/// let hv = hvp_multi(|x| (x[0].square() * x[1]).sum(), &xs, &[Tensor::scalar(1.0), Tensor::scalar(0.0)]);
/// assert_eq!((hv[0].item(), hv[1].item()), (10.0, 6.0));
/// ```
#[track_caller]
pub fn hvp_multi<T: Element, F>(f: F, xs: &[Tensor<T>], vectors: &[Tensor<T>]) -> Vec<Tensor<T>>
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    same_shapes("hvp_multi", xs, vectors);
    record_multi(f, xs, |tape, vs, y| {
        expect_scalar("hvp_multi", y);
        let g = y.backward_recorded();
        // ∇_x (Σ_k <∇_k f, v_k>) = H v.
        let parts: Vec<Var<'_, T>> = vs.iter().map(|v| g[*v]).collect();
        match recorded_inner_product(tape, &parts, vectors) {
            None => xs.iter().map(|x| Tensor::zeros(x.shape())).collect(),
            Some(s) => {
                let h = s.backward();
                vs.iter().map(|v| h[*v].clone()).collect()
            }
        }
    })
}

/// The value, the gradient and the Hessian of a scalar function, from one
/// recording (what a Newton step needs).
///
/// ```
/// use tapegrad::grad::value_grad_hessian;
/// use tapegrad::Tensor;
/// let (f, g, h) = value_grad_hessian(|x| (x * x * x).sum(), &Tensor::from_vec(vec![1.0, 2.0], [2]));
/// assert_eq!((f, g.data(), h.data()), (9.0, &[3.0, 12.0][..], &[6.0, 0.0, 0.0, 12.0][..]));
/// ```
#[track_caller]
pub fn value_grad_hessian<T: Element, F>(f: F, x: &Tensor<T>) -> (T, Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    value_grad_hessian_named("value_grad_hessian", f, x)
}
