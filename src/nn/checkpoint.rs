//! Checkpoints in the safetensors format: parameters by name, optionally
//! with the optimizer state. Loading checks every name, shape and dtype
//! before changing anything; saving writes a temporary file and renames it
//! over the target, so a failed save never destroys the previous checkpoint.

use super::optim::Optimizer;
use super::ParamStore;
use crate::tensor::{Element, Tensor};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What went wrong reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (corrupt or truncated).
    #[error("{path}: not a valid safetensors file: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        message: String,
    },
    /// A parameter of the model is not in the file.
    #[error("{path}: parameter `{name}` is missing from the file")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The parameter's name.
        name: String,
    },
    /// The file holds a tensor that the model has no parameter for.
    #[error("{path}: the file has `{name}`, which is not a parameter of this model")]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor's shape differs from the parameter's.
    #[error("{path}: `{name}` has shape {found:?} in the file but {expected:?} in the model")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The parameter's name.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// A tensor's element type differs from the model's.
    #[error("{path}: `{name}` is stored as {found} but the model uses {expected}")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The parameter's name.
        name: String,
        /// The model's dtype.
        expected: String,
        /// The file's dtype.
        found: String,
    },
}

const OPTIMIZER_PREFIX: &str = "optimizer.";
const STEPS_KEY: &str = "optimizer_steps";

fn dtype_of<T: Element>() -> Dtype {
    if std::mem::size_of::<T>() == 4 {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

fn to_bytes<T: Element>(t: &Tensor<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.numel() * std::mem::size_of::<T>());
    for v in t.data() {
        match dtype_of::<T>() {
            Dtype::F32 => out.extend_from_slice(&v.to_f32().unwrap().to_le_bytes()),
            _ => out.extend_from_slice(&v.to_f64().unwrap().to_le_bytes()),
        }
    }
    out
}

fn from_bytes<T: Element>(bytes: &[u8], shape: &[usize]) -> Tensor<T> {
    let data: Vec<T> = match dtype_of::<T>() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| T::from(f32::from_le_bytes(c.try_into().unwrap())).unwrap())
            .collect(),
        _ => bytes
            .chunks_exact(8)
            .map(|c| T::from(f64::from_le_bytes(c.try_into().unwrap())).unwrap())
            .collect(),
    };
    Tensor::from_vec(data, shape)
}

/// Writes `bytes` next to `path` and renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("the path names no file")))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io(e))
        }
    }
}

impl<T: Element> ParamStore<T> {
    /// Saves every parameter under its name.
    ///
    /// ```
    /// use tapegrad::nn::{Activation, Mlp, ParamStore};
    /// let mut params = ParamStore::<f32>::new();
    /// Mlp::new(&mut params, "mlp", &[3, 4, 2], Activation::Tanh, 1);
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-{}.safetensors", std::process::id()));
    /// params.save(&path)?;
    /// let mut other = ParamStore::<f32>::new();
    /// Mlp::new(&mut other, "mlp", &[3, 4, 2], Activation::Tanh, 2);
    /// other.load(&path)?;
    /// assert_eq!(other.value(other.id("mlp.0.weight").unwrap()), params.value(params.id("mlp.0.weight").unwrap()));
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::nn::CheckpointError>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        self.save_impl(path.as_ref(), None)
    }

    /// Saves the parameters and the optimizer's state (its per-parameter
    /// tensors and step count).
    pub fn save_with_optimizer(
        &self,
        path: impl AsRef<Path>,
        opt: &dyn Optimizer<T>,
    ) -> Result<(), CheckpointError> {
        self.save_impl(path.as_ref(), Some(opt))
    }

    fn save_impl(
        &self,
        path: &Path,
        opt: Option<&dyn Optimizer<T>>,
    ) -> Result<(), CheckpointError> {
        let mut entries: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .iter()
            .map(|(_, name, value)| (name.to_string(), value.shape().to_vec(), to_bytes(value)))
            .collect();
        let mut metadata = HashMap::from([("format".to_string(), "tapegrad".to_string())]);
        if let Some(opt) = opt {
            for (slot_name, slot) in opt.slots() {
                for (id, t) in slot.iter() {
                    let name = format!("{OPTIMIZER_PREFIX}{slot_name}.{}", self.name(id));
                    entries.push((name, t.shape().to_vec(), to_bytes(t)));
                }
            }
            metadata.insert(STEPS_KEY.to_string(), opt.steps().to_string());
        }
        let views: Vec<(String, TensorView<'_>)> = entries
            .iter()
            .map(|(n, shape, bytes)| {
                (
                    n.clone(),
                    TensorView::new(dtype_of::<T>(), shape.clone(), bytes).expect("sizes match"),
                )
            })
            .collect();
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| {
            CheckpointError::Corrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        write_atomically(path, &bytes)
    }

    /// Loads every parameter by name. Strict: every parameter must be in
    /// the file with the same shape and dtype, and the file may hold
    /// nothing else but optimizer state. Nothing changes on error.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        self.load_impl(path.as_ref(), None)
    }

    /// Loads the parameters and restores the optimizer's state from a file
    /// written by [`ParamStore::save_with_optimizer`].
    pub fn load_with_optimizer(
        &mut self,
        path: impl AsRef<Path>,
        opt: &mut dyn Optimizer<T>,
    ) -> Result<(), CheckpointError> {
        self.load_impl(path.as_ref(), Some(opt))
    }

    fn load_impl(
        &mut self,
        path: &Path,
        opt: Option<&mut dyn Optimizer<T>>,
    ) -> Result<(), CheckpointError> {
        let p = || path.to_path_buf();
        let bytes =
            std::fs::read(path).map_err(|source| CheckpointError::Io { path: p(), source })?;
        let corrupt = |e: safetensors::SafeTensorError| CheckpointError::Corrupt {
            path: p(),
            message: e.to_string(),
        };
        let file = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
        let read = |name: &str, expected: &[usize]| -> Result<Tensor<T>, CheckpointError> {
            let view = file.tensor(name).map_err(|_| CheckpointError::Missing {
                path: p(),
                name: name.to_string(),
            })?;
            if view.dtype() != dtype_of::<T>() {
                return Err(CheckpointError::Dtype {
                    path: p(),
                    name: name.to_string(),
                    expected: format!("{:?}", dtype_of::<T>()),
                    found: format!("{:?}", view.dtype()),
                });
            }
            if view.shape() != expected {
                return Err(CheckpointError::Shape {
                    path: p(),
                    name: name.to_string(),
                    expected: expected.to_vec(),
                    found: view.shape().to_vec(),
                });
            }
            Ok(from_bytes(view.data(), expected))
        };
        // Read and check everything first; assign only when all is well.
        let mut values = Vec::with_capacity(self.len());
        for (id, name, value) in self.iter() {
            values.push((id, read(name, value.shape())?));
        }
        for name in file.names() {
            if self.id(name).is_none() && !name.starts_with(OPTIMIZER_PREFIX) {
                return Err(CheckpointError::Unexpected {
                    path: p(),
                    name: name.to_string(),
                });
            }
        }
        let mut state = Vec::new();
        if let Some(opt) = &opt {
            for (slot_name, _) in opt.slots() {
                for (id, name, value) in self.iter() {
                    let key = format!("{OPTIMIZER_PREFIX}{slot_name}.{name}");
                    if file.names().contains(&key.as_str()) {
                        state.push((slot_name, id, read(&key, value.shape())?));
                    }
                }
            }
        }
        let steps = SafeTensors::read_metadata(&bytes)
            .ok()
            .and_then(|(_, m)| {
                m.metadata()
                    .as_ref()
                    .and_then(|m| m.get(STEPS_KEY))
                    .cloned()
            })
            .and_then(|s| s.parse::<u64>().ok());
        for (id, v) in values {
            *self.value_mut(id) = v;
        }
        if let Some(opt) = opt {
            for (slot_name, slot) in opt.slots_mut() {
                slot.clear();
                for (name, id, t) in &state {
                    if *name == slot_name {
                        slot.insert(*id, t.clone());
                    }
                }
            }
            opt.set_steps(steps.unwrap_or(0));
        }
        Ok(())
    }
}
