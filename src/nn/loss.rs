//! Losses, built from primitive ops in their numerically stable forms.

use crate::ops::shape_error;
use crate::tape::Var;
use crate::tensor::{Element, Tensor};

/// How a per-sample loss is combined over the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The average over elements (the default).
    #[default]
    Mean,
    /// The sum over elements.
    Sum,
}

fn reduce<'t, T: Element>(per_element: Var<'t, T>, reduction: Reduction) -> Var<'t, T> {
    match reduction {
        Reduction::Mean => per_element.mean(),
        Reduction::Sum => per_element.sum(),
    }
}

#[track_caller]
fn same_shape<T: Element>(op: &str, a: Var<'_, T>, b: Var<'_, T>) {
    if a.shape() != b.shape() {
        shape_error(op, &[a, b], "prediction and target shapes differ");
    }
}

/// Mean squared error, `mean((pred - target)²)`.
///
/// ```
/// use tapegrad::{nn::mse, Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let y = tape.var(Tensor::from_vec(vec![1.0, 3.0], [2]));
/// let t = tape.constant(Tensor::from_vec(vec![0.0, 1.0], [2]));
/// assert_eq!(mse(y, t).item(), 2.5);
/// ```
#[track_caller]
pub fn mse<'t, T: Element>(pred: Var<'t, T>, target: Var<'t, T>) -> Var<'t, T> {
    same_shape("mse", pred, target);
    (pred - target).square().mean()
}

/// Mean absolute error, `mean(|pred - target|)`.
#[track_caller]
pub fn l1<'t, T: Element>(pred: Var<'t, T>, target: Var<'t, T>) -> Var<'t, T> {
    same_shape("l1", pred, target);
    (pred - target).abs().mean()
}

/// Huber loss: `d²/2` where `|d| <= delta`, `delta·(|d| - delta/2)`
/// beyond, averaged (`d = pred - target`).
#[track_caller]
pub fn huber<'t, T: Element>(pred: Var<'t, T>, target: Var<'t, T>, delta: T) -> Var<'t, T> {
    same_shape("huber", pred, target);
    let d = (pred - target).abs();
    let tape = pred.tape();
    let quadratic = d.square() * T::lit(0.5);
    let linear = (d - delta * T::lit(0.5)) * delta;
    Var::where_(d.le(tape.constant(delta)), quadratic, linear).mean()
}

/// Checks labels against a `(batch, classes)` tensor.
#[track_caller]
fn check_labels<T: Element>(op: &str, scores: Var<'_, T>, labels: &[usize]) {
    let shape = scores.shape();
    if shape.len() != 2 {
        shape_error(op, &[scores], "expects (batch, classes) scores");
    }
    let (batch, classes) = (shape[0], shape[1]);
    assert!(
        batch > 0,
        "{op}: empty batch ({} has shape {:?}): a mean over no samples is undefined; skip empty batches",
        scores.label(),
        shape.as_slice()
    );
    assert!(
        labels.len() == batch,
        "{op}: {} labels for a batch of {batch} ({} with shape {:?})",
        labels.len(),
        scores.label(),
        shape.as_slice()
    );
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        panic!("{op}: label {l} of sample {i} is out of range for {classes} classes (labels must be 0..{classes})");
    }
}

/// Negative log-likelihood of integer labels given `(batch, classes)`
/// log-probabilities.
#[track_caller]
pub fn nll_loss<'t, T: Element>(
    log_probs: Var<'t, T>,
    labels: &[usize],
    reduction: Reduction,
) -> Var<'t, T> {
    nll("nll_loss", log_probs, labels, reduction)
}

/// `-log_probs[label]`, reduced; `op` names the caller in errors.
#[track_caller]
fn nll<'t, T: Element>(
    op: &str,
    log_probs: Var<'t, T>,
    labels: &[usize],
    reduction: Reduction,
) -> Var<'t, T> {
    check_labels(op, log_probs, labels);
    reduce(-log_probs.gather(1, labels), reduction)
}

/// Cross-entropy of integer labels given `(batch, classes)` logits,
/// averaged over the batch: `-log softmax(logits)[label]`, computed through
/// log-softmax so that it stays finite for any logits.
///
/// ```
/// use tapegrad::{nn::cross_entropy, Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let logits = tape.var(Tensor::from_vec(vec![1000.0, -1000.0, 0.0, 0.0], [2, 2]));
/// let loss = cross_entropy(logits, &[0, 1]);
/// assert!((loss.item() - 2f64.ln() / 2.0).abs() < 1e-12);
/// ```
///
/// # Panics
/// If a label is not below the number of classes, or the label count is
/// not the batch size; the message names the label and the class count.
#[track_caller]
pub fn cross_entropy<'t, T: Element>(logits: Var<'t, T>, labels: &[usize]) -> Var<'t, T> {
    cross_entropy_with(logits, labels, Reduction::Mean)
}

/// [`cross_entropy`] with a chosen reduction.
#[track_caller]
pub fn cross_entropy_with<'t, T: Element>(
    logits: Var<'t, T>,
    labels: &[usize],
    reduction: Reduction,
) -> Var<'t, T> {
    check_labels("cross_entropy", logits, labels);
    nll("cross_entropy", logits.log_softmax(1), labels, reduction)
}

/// Binary cross-entropy on logits against targets in `[0, 1]`, averaged:
/// `softplus(x) - x·t`, which never takes the log of 0.
#[track_caller]
pub fn bce_with_logits<'t, T: Element>(logits: Var<'t, T>, targets: Var<'t, T>) -> Var<'t, T> {
    same_shape("bce_with_logits", logits, targets);
    (logits.softplus() - logits * targets).mean()
}

/// The fraction of rows of `(batch, classes)` scores whose largest entry
/// is at the label.
///
/// ```
/// use tapegrad::{nn::accuracy, Tensor};
/// let logits = Tensor::from_vec(vec![2.0f32, 1.0, 0.0, 3.0], [2, 2]);
/// assert_eq!(accuracy(&logits, &[0, 0]), 0.5);
/// ```
///
/// # Panics
/// If the scores are not 2-d, or there are not as many labels as rows.
#[track_caller]
pub fn accuracy<T: Element>(scores: &Tensor<T>, labels: &[usize]) -> f64 {
    assert!(
        scores.ndim() == 2 && scores.shape()[0] == labels.len(),
        "accuracy: {} labels for scores of shape {:?} (expects (batch, classes) scores, one label per row)",
        labels.len(),
        scores.shape()
    );
    if labels.is_empty() {
        return 0.0;
    }
    let hits = scores
        .argmax(1)
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    hits as f64 / labels.len() as f64
}
