//! What the MNIST examples share around their training loops: a progress
//! bar per epoch (one line per epoch when not on a terminal), held-out
//! evaluation, and the loss and accuracy curves as an SVG.

use super::{save_panels, Panel, Series};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::time::Instant;
use tapegrad::nn::{accuracy, cross_entropy, Module, ParamStore};
use tapegrad::{Tape, Tensor};

/// The bar for one epoch of `len` steps.
pub fn epoch_bar(epoch: usize, epochs: usize, len: usize) -> ProgressBar {
    let style =
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos:>3}/{len} {elapsed:>3} {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
    ProgressBar::new(len as u64)
        .with_style(style)
        .with_prefix(format!("epoch {}/{epochs}", epoch + 1))
}

/// Ends an epoch's bar with `summary`, or prints it as a line when the bar
/// is hidden (a log, CI).
pub fn end_epoch(bar: ProgressBar, epoch: usize, epochs: usize, summary: String, start: Instant) {
    if bar.is_hidden() {
        println!(
            "epoch {:>2}/{epochs}  {summary}  ({:.1?})",
            epoch + 1,
            start.elapsed()
        );
    }
    bar.finish_with_message(summary);
}

/// The model's outputs for `x`, without recording a backward pass.
pub fn logits(model: &impl Module<f32>, params: &ParamStore<f32>, x: &Tensor<f32>) -> Tensor<f32> {
    let tape = Tape::new();
    tape.no_grad(|| model.forward(params, tape.constant(x.clone())).value())
}

/// Held-out loss and accuracy (the caller puts the store in eval mode).
pub fn evaluate(
    model: &impl Module<f32>,
    params: &ParamStore<f32>,
    x: &Tensor<f32>,
    y: &[usize],
) -> (f64, f64) {
    let scores = logits(model, params, x);
    let tape = Tape::new();
    let loss = tape.no_grad(|| cross_entropy(tape.constant(scores.clone()), y).item());
    (loss as f64, accuracy(&scores, y))
}

/// Per-epoch training loss, held-out loss and held-out accuracy (%).
#[derive(Default)]
pub struct Curves {
    loss: Vec<(f64, f64)>,
    test_loss: Vec<(f64, f64)>,
    accuracy: Vec<(f64, f64)>,
}

impl Curves {
    pub fn push(&mut self, epoch: usize, loss: f64, test_loss: f64, accuracy: f64) {
        let e = (epoch + 1) as f64;
        self.loss.push((e, loss));
        self.test_loss.push((e, test_loss));
        self.accuracy.push((e, 100.0 * accuracy));
    }

    /// Two panels: the losses on a log scale, and the accuracy.
    pub fn save(self, path: &Path) {
        save_panels(
            path,
            &[
                Panel {
                    title: "loss (log scale)",
                    x_label: "epoch",
                    y_label: "cross-entropy",
                    series: vec![
                        Series {
                            name: "training (mean over the epoch)",
                            points: self.loss,
                        },
                        Series {
                            name: "held-out (end of epoch)",
                            points: self.test_loss,
                        },
                    ],
                    log_y: true,
                },
                Panel {
                    title: "held-out accuracy",
                    x_label: "epoch",
                    y_label: "accuracy (%)",
                    series: vec![Series {
                        name: "test accuracy",
                        points: self.accuracy,
                    }],
                    log_y: false,
                },
            ],
        );
    }
}
