//! The MNIST CNN of `examples/mnist_cnn.rs`, shared with the W7 workload
//! (`benches/common/workloads.rs`) so that the bench times the network the
//! example trains.

use tapegrad::nn::{
    Activation, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, ParamStore, Sequential,
};
use tapegrad::ops::Pool2d;
use tapegrad::tensor::Conv2dGeom;

/// Three blocks of conv 3×3 (16, 32, 64 channels), batch norm, ReLU and
/// 2×2 max pooling (28 → 14 → 7 → 3), then Linear(576 → 128), ReLU,
/// dropout and Linear(128 → 10). Its layers are named as in a PyTorch
/// `nn.Sequential` (`net.0.weight`, ...), so a PyTorch state dict loads
/// into it.
pub fn mnist_cnn(params: &mut ParamStore<f32>, seed: u64) -> Sequential<f32> {
    let same = Conv2dGeom {
        padding: [1, 1],
        ..Default::default()
    };
    let mut net = Sequential::new();
    let mut channels = 1;
    for (block, (out, s)) in [(16, 0), (32, 1), (64, 5)].into_iter().enumerate() {
        let at = |k: usize| format!("net.{}", 4 * block + k);
        net = net
            .add(Conv2d::new(
                params,
                &at(0),
                channels,
                out,
                [3, 3],
                same,
                seed + s,
            ))
            .add(BatchNorm2d::new(params, &at(1), out))
            .add(Activation::Relu)
            .add(MaxPool2d(Pool2d::square(2)));
        channels = out;
    }
    net.add(Flatten(1))
        .add(Linear::new(params, "net.13", 64 * 3 * 3, 128, seed + 2))
        .add(Activation::Relu)
        .add(Dropout::new(params, "net.15", 0.2, seed + 3))
        .add(Linear::new(params, "net.16", 128, 10, seed + 4))
}
