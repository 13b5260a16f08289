//! Neural networks: parameters, layers, losses, initialisation, first-order
//! optimizers and checkpoints.
//!
//! A training step, as in PyTorch but explicit:
//!
//! ```
//! use tapegrad::nn::{cross_entropy, Activation, Adam, Mlp, Module, Optimizer, ParamStore};
//! use tapegrad::{Tape, Tensor};
//!
//! let mut params = ParamStore::<f32>::new();
//! let model = Mlp::new(&mut params, "mlp", &[4, 16, 3], Activation::Relu, 42);
//! let mut opt = Adam::new(1e-2);
//! let x = Tensor::rand_uniform([8, 4], -1.0, 1.0, 1);
//! let labels = [0, 1, 2, 0, 1, 2, 0, 1];
//! let tape = Tape::new();
//! let mut first = None;
//! for _ in 0..50 {
//!     tape.reset();
//!     let logits = model.forward(&params, tape.constant(x.clone()));
//!     let loss = cross_entropy(logits, &labels);
//!     first.get_or_insert(loss.item());
//!     let grads = loss.backward();
//!     opt.step(&mut params, &grads);
//! }
//! # let _ = first;
//! ```

mod checkpoint;
mod conv;
#[cfg(feature = "mpi")]
pub mod distributed;
mod init;
mod layers;
mod loss;
mod module;
mod norm;
pub mod optim;
mod params;

pub use checkpoint::{CheckpointError, LoadOptions, LoadReport, Mismatch, Precision, StateDict};
pub use conv::{AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, ConvTranspose2d, Flatten, MaxPool2d};
pub use init::Init;
pub use layers::{Activation, Dropout, Dropout2d, LayerNorm, Linear, Mlp};
pub use loss::{
    accuracy, bce_with_logits, cross_entropy, cross_entropy_with, huber, l1, mse, nll_loss,
    Reduction,
};
pub use module::{Module, Sequential};
pub use norm::{batch_norm, BatchNorm, BatchNorm1d, BatchNorm2d};
pub use optim::{
    clip_grad_norm, try_clip_grad_norm, AdaGrad, Adam, AdamW, GradAccumulator, GradSource, Hyper,
    Optimizer, ParamGroup, RmsProp, Schedule, Settings, Sgd, StepError,
};
pub use params::{BufferId, ParamId, ParamKey, ParamStore, RngId};
