//! The MNIST CNN of `examples/mnist_cnn.rs`, shared with the W7 workload
//! (`benches/common/workloads.rs`) so that the bench times the network the
//! example trains.

use tapegrad::nn::{
    Activation, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ParamStore, Sequential,
};
use tapegrad::ops::Pool2d;
use tapegrad::tensor::Conv2dGeom;

/// The network: its layers are named as in a PyTorch `nn.Sequential`
/// (`net.0.weight`, ...), so a PyTorch state dict loads into it.
pub fn mnist_cnn(params: &mut ParamStore<f32>, seed: u64) -> Sequential<f32> {
    let same = Conv2dGeom {
        padding: [1, 1],
        ..Default::default()
    };
    Sequential::new()
        .add(Conv2d::new(params, "net.0", 1, 16, [3, 3], same, seed))
        .add(BatchNorm2d::new(params, "net.1", 16))
        .add(Activation::Relu)
        .add(MaxPool2d(Pool2d::square(2)))
        .add(Conv2d::new(params, "net.4", 16, 32, [3, 3], same, seed + 1))
        .add(BatchNorm2d::new(params, "net.5", 32))
        .add(Activation::Relu)
        .add(MaxPool2d(Pool2d::square(2)))
        .add(Flatten(1))
        .add(Linear::new(params, "net.9", 32 * 7 * 7, 128, seed + 2))
        .add(Activation::Relu)
        .add(Dropout::new(params, "net.11", 0.2, seed + 3))
        .add(Linear::new(params, "net.12", 128, 10, seed + 4))
}
