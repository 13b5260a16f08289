//! `grad`, `value_and_grad`, `vjp`, `jvp`, `jacobian`, `jacobian_fwd`,
//! `hessian` and `hvp`.

use crate::tape::{Tape, Var};
use crate::tensor::{numel, Element, Shape, Tensor};

/// Pins a closure's signature to "for every tape", so it can be kept in a
/// variable and passed to several operators. (Rust infers that signature
/// only for a closure written directly in the call.)
///
/// ```
/// use tapegrad::grad::{func, jacobian, jacobian_fwd};
/// use tapegrad::Tensor;
/// let f = func(|x| x.sin() * 2.0);
/// let x = Tensor::from_vec(vec![0.1, 0.2], [2]);
/// assert_eq!(jacobian(f, &x), jacobian_fwd(f, &x));
/// ```
pub fn func<T: Element, F>(f: F) -> F
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    f
}

/// Like [`func`], for functions of several inputs (as [`gradcheck`](super::gradcheck) takes).
///
/// ```
/// use tapegrad::grad::{func_multi, gradcheck, gradgradcheck};
/// use tapegrad::Tensor;
/// let f = func_multi(|x| (x[0] * x[1]).tanh().sum());
/// let inputs = [Tensor::randn([3], 1), Tensor::randn([3], 2)];
/// gradcheck(f, &inputs).unwrap();
/// gradgradcheck(f, &inputs).unwrap();
/// ```
pub fn func_multi<T: Element, F>(f: F) -> F
where
    F: for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
{
    f
}

/// Records `f` at `x` on a fresh tape and hands the tape, the input and the
/// output to `then`.
fn record<T: Element, F, R>(
    f: F,
    x: &Tensor<T>,
    then: impl for<'t> FnOnce(&'t Tape<T>, Var<'t, T>, Var<'t, T>) -> R,
) -> R
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    let tape = Tape::new();
    let v = tape.var(x.clone());
    let y = f(v);
    then(&tape, v, y)
}

#[track_caller]
pub(crate) fn expect_scalar<T: Element>(op: &str, y: Var<'_, T>) {
    let shape = y.shape();
    assert!(
        numel(&shape) == 1,
        "{op}: the function must return a single element, but returned shape {:?}",
        shape.as_slice()
    );
}

/// The rows of the Jacobian of `y` (any shape) with respect to each of
/// `wrt`, by one backward pass per element of `y`: `rows[i][k]` is
/// `∂y_i/∂wrt_k`, shaped like `wrt_k`.
pub(crate) fn jacobian_rows<'t, T: Element>(
    y: Var<'t, T>,
    wrt: &[Var<'t, T>],
) -> Vec<Vec<Tensor<T>>> {
    let out = y.shape();
    (0..numel(&out))
        .map(|i| {
            let g = y.backward_unchecked(Tensor::one_hot(&out, i));
            wrt.iter().map(|v| g[*v].clone()).collect()
        })
        .collect()
}

/// The Jacobian of `y` (any shape) with respect to each of `wrt`, in one
/// batched backward pass seeded with every one-hot vector at once: for
/// each `wrt_k` a tensor of shape `[numel(y)] ++ wrt_k.shape`.
pub(crate) fn jacobian_batched<'t, T: Element>(
    y: Var<'t, T>,
    wrt: &[Var<'t, T>],
) -> Vec<Tensor<T>> {
    let out = y.shape();
    let m = numel(&out);
    let mut seed_shape: Shape = [m].into_iter().collect();
    seed_shape.extend_from_slice(&out);
    let mut seeds = Tensor::zeros(&seed_shape);
    for i in 0..m {
        seeds.data_mut()[i * m + i] = T::one();
    }
    let wrt: Vec<usize> = wrt.iter().map(|v| v.index()).collect();
    crate::tape::backward::walk_batched(y.tape(), y.index(), seeds, &wrt)
}

/// Gradient of a scalar function.
///
/// ```
/// use tapegrad::{grad::grad, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], [2]);
/// let g = grad(|x| (x * x).sum(), &x);
/// assert_eq!(g.data(), &[2.0, 4.0]);
/// ```
#[track_caller]
pub fn grad<T: Element, F>(f: F, x: &Tensor<T>) -> Tensor<T>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    value_and_grad(f, x).1
}

/// The value and the gradient of a scalar function, from one recording.
#[track_caller]
pub fn value_and_grad<T: Element, F>(f: F, x: &Tensor<T>) -> (T, Tensor<T>)
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    record(f, x, |_, v, y| {
        expect_scalar("value_and_grad", y);
        (
            y.item(),
            y.backward_unchecked(Tensor::scalar(T::one()))[v].clone(),
        )
    })
}

/// The output and the vector-Jacobian product `uᵀJ` (shape of `x`), where
/// `u` has the output's shape.
///
/// ```
/// use tapegrad::{grad::vjp, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], [2]);
/// let (y, g) = vjp(|x| x * x, &x, &Tensor::from_vec(vec![1.0, -1.0], [2]));
/// assert_eq!((y.data(), g.data()), (&[1.0, 4.0][..], &[2.0, -4.0][..]));
/// ```
#[track_caller]
pub fn vjp<T: Element, F>(f: F, x: &Tensor<T>, u: &Tensor<T>) -> (Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    record(f, x, |_, v, y| {
        (y.value(), y.backward_unchecked(u.clone())[v].clone())
    })
}

/// The output and the Jacobian-vector product `Jv` (shape of the output),
/// where `v` has the input's shape. Forward mode by the double-VJP trick.
///
/// ```
/// use tapegrad::{grad::jvp, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], [2]);
/// let (_, jv) = jvp(|x| x * x, &x, &Tensor::from_vec(vec![1.0, 1.0], [2]));
/// assert_eq!(jv.data(), &[2.0, 4.0]);
/// ```
#[track_caller]
pub fn jvp<T: Element, F>(f: F, x: &Tensor<T>, v: &Tensor<T>) -> (Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    assert_eq!(
        x.shape(),
        v.shape(),
        "jvp: tangent shape {:?} differs from input shape {:?}",
        v.shape(),
        x.shape()
    );
    record(f, x, |tape, xv, y| {
        let (u, jt_u) = transpose_map(tape, xv, y);
        (y.value(), jt_u.backward_unchecked(v.clone())[u].clone())
    })
}

/// `u ↦ Jᵀu` recorded on the tape (linear in the seed `u`, a leaf of ones).
fn transpose_map<'t, T: Element>(
    tape: &'t Tape<T>,
    x: Var<'t, T>,
    y: Var<'t, T>,
) -> (Var<'t, T>, Var<'t, T>) {
    let u = tape.var(Tensor::ones(y.shape()));
    let jt_u = y.backward_recorded_with(u)[x];
    (u, jt_u)
}

/// The Jacobian of `f` at `x`, by reverse mode: one recording and one
/// batched backward pass that computes every row at once (the one-hot
/// seeds ride along a leading batch axis). The result has shape
/// `output.shape ++ input.shape`, as in JAX.
///
/// ```
/// use tapegrad::{grad::jacobian, Tensor};
/// let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]);
/// let j = jacobian(|x| x.tape().constant(a.clone()).matmul(x), &Tensor::zeros([2, 1]));
/// assert_eq!(j.shape(), &[3, 1, 2, 1]);
/// assert_eq!(j.data(), a.data());
/// ```
#[track_caller]
pub fn jacobian<T: Element, F>(f: F, x: &Tensor<T>) -> Tensor<T>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    record(f, x, |_, v, y| {
        let jac = jacobian_batched(y, &[v]).swap_remove(0);
        jac.reshape([y.shape().as_slice(), x.shape()].concat())
    })
}

/// The Jacobian of `f` at `x` by forward mode: the Jacobian-vector
/// products with every unit vector, as one recorded backward pass and one
/// batched pass through it. The reverse-mode [`jacobian`] is usually
/// faster; this one is an independent route to the same matrix (the two
/// cross-check each other). Same shape as [`jacobian`].
#[track_caller]
pub fn jacobian_fwd<T: Element, F>(f: F, x: &Tensor<T>) -> Tensor<T>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    record(f, x, |tape, xv, y| {
        let out = y.shape();
        let (u, jt_u) = transpose_map(tape, xv, y);
        // All the JVPs J e_j in one batched pass: the rows of Jᵀ.
        let jt = jacobian_batched(jt_u, &[u]).swap_remove(0);
        let (m, n) = (numel(&out), x.numel());
        Tensor::from_fn([m, n], |ij| jt.data()[ij[1] * m + ij[0]])
            .reshape([out.as_slice(), x.shape()].concat())
    })
}

/// The Hessian of a scalar function, through grad of grad: one recorded
/// backward pass, then one batched backward pass through it for all the
/// Hessian's rows at once. Shape `input.shape ++ input.shape`.
///
/// ```
/// use tapegrad::{grad::hessian, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], [2]);
/// let h = hessian(|x| (x * x * x).sum(), &x);
/// assert_eq!(h.data(), &[6.0, 0.0, 0.0, 12.0]);
/// ```
#[track_caller]
pub fn hessian<T: Element, F>(f: F, x: &Tensor<T>) -> Tensor<T>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    value_grad_hessian_named("hessian", f, x).2
}

/// The value, the gradient and the Hessian of `f` at `x` from one
/// recording, for [`hessian`] and
/// [`value_grad_hessian`](super::value_grad_hessian); `op` names the caller
/// in errors.
#[track_caller]
pub(crate) fn value_grad_hessian_named<T: Element, F>(
    op: &str,
    f: F,
    x: &Tensor<T>,
) -> (T, Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    // Recorded inline rather than through `record`, so a wrong output
    // shape is reported at the caller's line.
    let tape = Tape::new();
    let v = tape.var(x.clone());
    let y = f(v);
    expect_scalar(op, y);
    let g = y.backward_recorded()[v];
    let shape = [x.shape(), x.shape()].concat();
    let h = if g.requires_grad() {
        jacobian_batched(g, &[v]).swap_remove(0).reshape(shape)
    } else {
        Tensor::zeros(shape)
    };
    (y.item(), g.value(), h)
}

/// The Hessian-vector product `Hv` without forming the Hessian: one
/// recorded backward pass and one backward pass, whatever the size of `x`.
///
/// ```
/// use tapegrad::{grad::hvp, Tensor};
/// let x = Tensor::from_vec(vec![1.0, 2.0], [2]);
/// let hv = hvp(|x| (x * x * x).sum(), &x, &Tensor::from_vec(vec![1.0, 1.0], [2]));
/// assert_eq!(hv.data(), &[6.0, 12.0]);
/// ```
#[track_caller]
pub fn hvp<T: Element, F>(f: F, x: &Tensor<T>, v: &Tensor<T>) -> Tensor<T>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    assert_eq!(
        x.shape(),
        v.shape(),
        "hvp: vector shape {:?} differs from input shape {:?}",
        v.shape(),
        x.shape()
    );
    record(f, x, |_, xv, y| {
        expect_scalar("hvp", y);
        let g = y.backward_recorded()[xv];
        if !g.requires_grad() {
            return Tensor::zeros(x.shape());
        }
        // ∇(g·v) is the backward pass of g seeded with v.
        g.backward_unchecked(v.clone())[xv].clone()
    })
}
