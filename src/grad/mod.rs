//! Differential operators over closures, and gradient checking.
//!
//! Each operator takes a function written with the engine's ops, records
//! it on a fresh tape and returns plain [`Tensor`](crate::Tensor)s:
//!
//! | operator | returns | passes |
//! |---|---|---|
//! | [`grad`], [`value_and_grad`] | ∇f | 1 backward |
//! | [`vjp`] | f(x), uᵀJ | 1 backward |
//! | [`jvp`] | f(x), Jv | 1 recorded backward + 1 backward |
//! | [`jacobian`] | J, shape `out ++ in` | 1 batched backward (all rows at once) |
//! | [`jacobian_fwd`] | J | 1 recorded backward + 1 batched backward |
//! | [`hessian`] | H, shape `in ++ in` | 1 recorded backward + 1 batched backward |
//! | [`hvp`] | Hv | 1 recorded backward + 1 backward |
//! | [`value_grad_hessian`] | f, ∇f, H | as [`hessian`] |
//!
//! For functions of several inputs (`f(&[Var]) -> Var`, as [`func_multi`]
//! pins), [`jacobian_multi`], [`vjp_multi`], [`jvp_multi`],
//! [`hessian_multi`] (blocks `H_jk`) and [`hvp_multi`] give one block (or
//! one product) per input, each from a single recording of `f`.
//!
//! A closure kept in a variable and passed to several operators needs
//! [`func`] (or [`func_multi`]) around it, so that Rust gives it the
//! "for every tape" signature; a closure written in the call needs nothing.
//!
//! Forward mode ([`jvp`], [`jacobian_fwd`]) uses the double-VJP trick: the
//! recorded backward pass `u ↦ Jᵀu` is linear in `u`, so its own
//! vector-Jacobian product with `v` is `Jv`. No second engine is needed.

mod check;
mod functional;
mod multi;

pub use check::{assert_gradcheck, gradcheck, gradgradcheck, GradcheckError, GradcheckOptions};
pub(crate) use functional::jacobian_batched;
pub use functional::{
    func, func_multi, grad, hessian, hvp, jacobian, jacobian_fwd, jvp, value_and_grad, vjp,
};
pub use multi::{
    hessian_multi, hvp_multi, jacobian_multi, jvp_multi, value_grad_hessian, vjp_multi,
};
