//! Gradient clipping by the global L2 norm.

use super::StepError;
use crate::nn::ParamStore;
use crate::tape::Gradients;
use crate::tensor::{Element, Tensor};

/// Scales all parameter gradients so that their global L2 norm is at most
/// `max_norm`; returns the norm before clipping (as PyTorch's
/// `clip_grad_norm_`).
///
/// ```
/// use tapegrad::nn::{clip_grad_norm, ParamStore};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f64>::new();
/// let w = params.add("w", Tensor::from_vec(vec![3.0, 4.0], [2]));
/// let tape = Tape::new();
/// let loss = (params.var(&tape, w).square() * 0.5).sum(); // gradient = w
/// let mut grads = loss.backward();
/// assert_eq!(clip_grad_norm(&params, &mut grads, 1.0), 5.0);
/// let g = params.grad(&grads, w).unwrap();
/// assert!((g.data()[0] - 0.6).abs() < 1e-6 && (g.data()[1] - 0.8).abs() < 1e-6);
/// ```
///
/// # Panics
/// As [`try_clip_grad_norm`] fails: when the norm is NaN or infinite
/// (nothing is scaled), or no trainable parameter has a gradient; and
/// when an optimizer step has applied `grads` already (clipping after the
/// step would change nothing: clip between backward and step).
#[track_caller]
pub fn clip_grad_norm<T: Element>(
    params: &ParamStore<T>,
    grads: &mut Gradients<'_, T>,
    max_norm: f64,
) -> f64 {
    try_clip_grad_norm(params, grads, max_norm).unwrap_or_else(|e| panic!("{e}"))
}

/// [`clip_grad_norm`], returning its failures as errors (gradients left
/// as they were) instead of panicking.
///
/// ```
/// use tapegrad::nn::{try_clip_grad_norm, ParamStore, StepError};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f64>::new();
/// let w = params.add("w", Tensor::from_vec(vec![f64::NAN, 1.0], [2]));
/// let tape = Tape::new();
/// let mut grads = params.var(&tape, w).square().sum().backward();
/// assert!(matches!(try_clip_grad_norm(&params, &mut grads, 1.0), Err(StepError::NonFinite { .. })));
/// ```
///
/// # Panics
/// If `max_norm` is not a positive finite number.
#[track_caller]
pub fn try_clip_grad_norm<T: Element>(
    params: &ParamStore<T>,
    grads: &mut Gradients<'_, T>,
    max_norm: f64,
) -> Result<f64, StepError> {
    let op = "clip_grad_norm";
    check_max_norm(op, max_norm);
    assert!(
        !grads.applied(),
        "{op}: these gradients were applied by an optimizer step already, so clipping them \
         now changes nothing; clip between backward() and step()"
    );
    super::settings::check_gradients(op, params, grads, true, |_| true)?;
    let norm = global_norm(params.trainable().filter_map(|id| params.grad(grads, id)));
    if let Some(scale) = clip_scale(op, norm, max_norm)? {
        for id in params.trainable() {
            if let Some(g) = params.grad_mut(grads, id) {
                g.data_mut().iter_mut().for_each(|v| *v = *v * scale);
            }
        }
    }
    Ok(norm)
}

/// The L2 norm of all the tensors' elements together, in f64.
pub(crate) fn global_norm<'a, T: Element + 'a>(ts: impl Iterator<Item = &'a Tensor<T>>) -> f64 {
    ts.flat_map(|g| g.data().iter())
        .map(|v| {
            let v = v.to_f64().unwrap_or(f64::NAN);
            v * v
        })
        .sum::<f64>()
        .sqrt()
}

/// The factor that brings `norm` down to `max_norm` (`None` if it is
/// there already), or an error for a non-finite norm.
pub(crate) fn clip_scale<T: Element>(
    op: &'static str,
    norm: f64,
    max_norm: f64,
) -> Result<Option<T>, StepError> {
    if !norm.is_finite() {
        return Err(StepError::NonFinite {
            op,
            param: "(all parameters: the global norm)".into(),
            index: 0,
            value: norm,
        });
    }
    Ok((norm > max_norm).then(|| T::lit(max_norm / (norm + 1e-6))))
}

/// Panics unless `max_norm` is a positive finite number.
#[track_caller]
pub(crate) fn check_max_norm(op: &str, max_norm: f64) {
    assert!(
        max_norm.is_finite() && max_norm > 0.0,
        "{op}: max_norm {max_norm} must be a positive finite number"
    );
}
