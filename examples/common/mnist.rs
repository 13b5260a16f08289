//! The MNIST data and MLP the `mnist` and `mnist_ddp` examples share.

use std::error::Error;
use std::path::{Path, PathBuf};
use tapegrad::data::{read_mnist, train_test_split, Rows};
use tapegrad::nn::{Activation, Dropout, Linear, ParamStore, Sequential};
use tapegrad::Tensor;

/// Training and test sets.
pub struct Split {
    pub x_train: Tensor<f32>,
    pub y_train: Vec<usize>,
    pub x_test: Tensor<f32>,
    pub y_test: Vec<usize>,
}

pub fn bundled(seed: u64) -> Result<Split, Box<dyn Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let (x, y) = read_mnist::<f32>(
        dir.join("mnist-10k-images-idx3-ubyte.gz"),
        dir.join("mnist-10k-labels-idx1-ubyte.gz"),
    )?;
    let (train, test) = train_test_split(x.shape()[0], 0.2, seed);
    Ok(Split {
        x_train: x.rows(&train),
        y_train: y.rows(&train),
        x_test: x.rows(&test),
        y_test: y.rows(&test),
    })
}

/// The four standard MNIST files in `dir`, each plain or gzip.
pub fn full(dir: &Path) -> Result<Split, Box<dyn Error>> {
    let find = |stem: &str| -> Result<PathBuf, Box<dyn Error>> {
        [stem.to_string(), format!("{stem}.gz")]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.exists())
            .ok_or_else(|| format!("{}: no {stem} or {stem}.gz", dir.display()).into())
    };
    let (x_train, y_train) = read_mnist(
        find("train-images-idx3-ubyte")?,
        find("train-labels-idx1-ubyte")?,
    )?;
    let (x_test, y_test) = read_mnist(
        find("t10k-images-idx3-ubyte")?,
        find("t10k-labels-idx1-ubyte")?,
    )?;
    Ok(Split {
        x_train,
        y_train,
        x_test,
        y_test,
    })
}

/// 784-512-256-10 with ReLU and dropout, named like the PyTorch
/// `nn.Sequential` of the same layers.
pub fn build_model(params: &mut ParamStore<f32>, seed: u64) -> Sequential<f32> {
    Sequential::new()
        .add(Linear::new(params, "mlp.0", 784, 512, seed))
        .add(Activation::Relu)
        .add(Dropout::new(params, "mlp.2", 0.2, seed + 1))
        .add(Linear::new(params, "mlp.3", 512, 256, seed + 2))
        .add(Activation::Relu)
        .add(Dropout::new(params, "mlp.5", 0.2, seed + 3))
        .add(Linear::new(params, "mlp.6", 256, 10, seed + 4))
}
