//! Checkpoints in the safetensors format, and in-memory state dicts:
//! parameters and buffers by name, optionally the optimizer's state, and
//! the model's random streams (so a resumed run draws the same dropout
//! masks). Loading checks every name, shape and dtype before changing
//! anything and reports every mismatch at once; saving writes a temporary
//! file and renames it over the target, so a failed save never destroys
//! the previous checkpoint.

use super::optim::Optimizer;
use super::ParamStore;
use crate::tensor::{Element, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// Tensors by name: a model's parameters and buffers, as PyTorch's
/// `state_dict()`.
pub type StateDict<T> = BTreeMap<String, Tensor<T>>;

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
    /// The checkpoint does not fit the model: every problem found, not only
    /// the first.
    #[error("{path}: does not fit this model ({} problem{}): {}{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, list(.problems), hint(.problems))]
    Mismatch {
        /// The file (or `<state dict>`).
        path: PathBuf,
        /// Each missing, unexpected, misshapen or mistyped tensor.
        problems: Vec<Mismatch>,
    },
    /// `load_with_optimizer` on a file saved without optimizer state.
    #[error(
        "{path}: the file holds no optimizer state (it was saved with `save`, or by another \
         tool); load it with `load`, or pass LoadOptions::fresh_optimizer to start the \
         optimizer afresh"
    )]
    NoOptimizerState {
        /// The file.
        path: PathBuf,
    },
}

/// One way a checkpoint does not fit a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// A tensor of the model is not in the checkpoint.
    Missing(String),
    /// The checkpoint holds a tensor the model has none of.
    Unexpected(String),
    /// A tensor's shape differs.
    Shape {
        /// The model's name for it.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The checkpoint's shape.
        found: Vec<usize>,
    },
    /// A tensor's element type differs (and conversion was not asked for).
    Dtype {
        /// The model's name for it.
        name: String,
        /// The model's dtype.
        expected: String,
        /// The checkpoint's dtype.
        found: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing(n) => write!(f, "`{n}` is missing from the file"),
            Mismatch::Unexpected(n) => write!(f, "the file has `{n}`, which the model has not"),
            Mismatch::Shape {
                name,
                expected,
                found,
            } => write!(
                f,
                "`{name}` has shape {found:?} in the file but {expected:?} in the model"
            ),
            Mismatch::Dtype {
                name,
                expected,
                found,
            } => write!(
                f,
                "`{name}` is stored as {found} but the model uses {expected} \
                 (LoadOptions::convert_dtype converts)"
            ),
        }
    }
}

/// A remapping that would fix names that differ by a prefix (a file from
/// `DataParallel`, `module.…`, or a model nested under another name).
fn hint(problems: &[Mismatch]) -> String {
    let names =
        |f: fn(&Mismatch) -> Option<&String>| problems.iter().filter_map(f).collect::<Vec<_>>();
    let missing = names(|p| match p {
        Mismatch::Missing(n) => Some(n),
        _ => None,
    });
    let unexpected = names(|p| match p {
        Mismatch::Unexpected(n) => Some(n),
        _ => None,
    });
    for m in &missing {
        for u in &unexpected {
            if let Some(prefix) = u.strip_suffix(m.as_str()) {
                return format!(" (the file's names start with `{prefix}`: load with LoadOptions::new().strip_prefix(\"{prefix}\"))");
            }
            if let Some(prefix) = m.strip_suffix(u.as_str()) {
                return format!(" (the model's names start with `{prefix}`: load with LoadOptions::new().add_prefix(\"{prefix}\"))");
            }
        }
    }
    String::new()
}

fn list(problems: &[Mismatch]) -> String {
    let all: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    all.join("; ")
}

/// How to load a checkpoint. The default is strict: every tensor of the
/// model must be in the file with its shape and dtype, and the file may
/// hold nothing else.
///
/// ```
/// use tapegrad::nn::LoadOptions;
/// // A PyTorch DataParallel file, in f16, into part of a model:
/// let opts = LoadOptions::new().strip_prefix("module.").convert_dtype(true).strict(false);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    strict: bool,
    strip_prefix: Option<String>,
    add_prefix: Option<String>,
    convert_dtype: bool,
    fresh_optimizer: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadOptions {
    /// Strict, names as they are, no conversion.
    pub fn new() -> Self {
        LoadOptions {
            strict: true,
            strip_prefix: None,
            add_prefix: None,
            convert_dtype: false,
            fresh_optimizer: false,
        }
    }

    /// With `false`, missing and unexpected names are returned in the
    /// [`LoadReport`] instead of failing (PyTorch's `strict=False`);
    /// shapes and dtypes of the names that match must still fit.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Removes `prefix` from every name in the file that starts with it
    /// (`module.` of DataParallel, `model.` of Lightning).
    pub fn strip_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.strip_prefix = Some(prefix.into());
        self
    }

    /// Puts `prefix` before every name in the file (after stripping).
    pub fn add_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.add_prefix = Some(prefix.into());
        self
    }

    /// Converts f16, bf16, f32 and f64 tensors to the model's type.
    pub fn convert_dtype(mut self, convert: bool) -> Self {
        self.convert_dtype = convert;
        self
    }

    /// Lets `load_with_optimizer` read a file without optimizer state:
    /// the optimizer then starts afresh (no state, step 0).
    pub fn fresh_optimizer(mut self, fresh: bool) -> Self {
        self.fresh_optimizer = fresh;
        self
    }

    /// The model's name for a name in the file.
    fn map(&self, name: &str) -> String {
        let name = match &self.strip_prefix {
            Some(p) => name.strip_prefix(p.as_str()).unwrap_or(name),
            None => name,
        };
        match &self.add_prefix {
            Some(p) => format!("{p}{name}"),
            None => name.to_string(),
        }
    }
}

/// What a non-strict load did not match (PyTorch's `load_state_dict`
/// result).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Tensors of the model the checkpoint does not have (left as they
    /// were).
    pub missing: Vec<String>,
    /// Names in the checkpoint the model has no tensor for (ignored).
    pub unexpected: Vec<String>,
}

/// The precision a checkpoint is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single.
    F32,
    /// IEEE double.
    F64,
}

impl Precision {
    fn dtype(self) -> Dtype {
        match self {
            Precision::F16 => Dtype::F16,
            Precision::BF16 => Dtype::BF16,
            Precision::F32 => Dtype::F32,
            Precision::F64 => Dtype::F64,
        }
    }

    fn of<T: Element>() -> Self {
        if std::mem::size_of::<T>() == 4 {
            Precision::F32
        } else {
            Precision::F64
        }
    }
}

const OPTIMIZER_PREFIX: &str = "optimizer.";
const STEPS_KEY: &str = "optimizer_steps";
const RNG_PREFIX: &str = "rng.";

fn to_bytes<T: Element>(t: &Tensor<T>, p: Precision) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.numel() * 8);
    for v in t.data() {
        let v = v.to_f64().unwrap_or(f64::NAN);
        match p {
            Precision::F16 => out.extend_from_slice(&half::f16::from_f64(v).to_le_bytes()),
            Precision::BF16 => out.extend_from_slice(&half::bf16::from_f64(v).to_le_bytes()),
            Precision::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            Precision::F64 => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    out
}

/// Decodes a tensor stored as `dtype`; `None` for a dtype it cannot read.
fn decode<T: Element>(dtype: Dtype, bytes: &[u8], shape: &[usize]) -> Option<Tensor<T>> {
    fn read<T: Element, const N: usize>(b: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<T> {
        b.chunks_exact(N)
            .map(|c| T::lit(f(c.try_into().expect("chunks of N bytes"))))
            .collect()
    }
    let data: Vec<T> = match dtype {
        Dtype::F64 => read(bytes, f64::from_le_bytes),
        Dtype::F32 if Precision::of::<T>() == Precision::F32 => bytes
            .chunks_exact(4)
            .map(|c| T::from(f32::from_le_bytes(c.try_into().unwrap())).unwrap())
            .collect(),
        Dtype::F32 => read(bytes, |c| f32::from_le_bytes(c) as f64),
        Dtype::F16 => read(bytes, |c| half::f16::from_le_bytes(c).to_f64()),
        Dtype::BF16 => read(bytes, |c| half::bf16::from_le_bytes(c).to_f64()),
        Dtype::I64 => read(bytes, |c| i64::from_le_bytes(c) as f64),
        Dtype::I32 => read(bytes, |c| i32::from_le_bytes(c) as f64),
        _ => return None,
    };
    Some(Tensor::from_vec(data, shape))
}

/// Writes `bytes` next to `path` and renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    crate::files::write_atomically(path, bytes).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A random stream's position as text: seed, stream and word position.
fn rng_to_text(rng: &ChaCha8Rng) -> String {
    let seed: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
    format!("{seed}:{}:{}", rng.get_stream(), rng.get_word_pos())
}

fn rng_from_text(text: &str) -> Option<ChaCha8Rng> {
    let mut parts = text.split(':');
    let hex = parts.next()?;
    let stream: u64 = parts.next()?.parse().ok()?;
    let pos: u128 = parts.next()?.parse().ok()?;
    if hex.len() != 64 || parts.next().is_some() {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(stream);
    rng.set_word_pos(pos);
    Some(rng)
}

/// One tensor of a checkpoint, before decoding.
struct Source<'a> {
    name: &'a str,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: &'a [u8],
}

/// A tensor of the model a checkpoint holds: a parameter or a buffer.
#[derive(Clone, Copy)]
enum Target {
    Param(super::ParamId),
    Buffer(super::BufferId),
}

/// What a load will do: the tensors to assign, or every problem.
struct Plan<T: Element> {
    values: Vec<(Target, Tensor<T>)>,
    report: LoadReport,
}

impl<T: Element> ParamStore<T> {
    /// Every parameter and buffer by name, as PyTorch's `state_dict()`.
    ///
    /// ```
    /// use tapegrad::nn::{Activation, LoadOptions, Mlp, ParamStore};
    /// let mut a = ParamStore::<f64>::new();
    /// Mlp::new(&mut a, "mlp", &[2, 3, 1], Activation::Tanh, 1);
    /// let state = a.state_dict();
    /// assert_eq!(state.len(), 4);
    /// let mut b = ParamStore::<f64>::new();
    /// Mlp::new(&mut b, "mlp", &[2, 3, 1], Activation::Tanh, 2);
    /// b.load_state_dict(&state, &LoadOptions::new())?;
    /// assert_eq!(b.state_dict(), state);
    /// # Ok::<(), tapegrad::nn::CheckpointError>(())
    /// ```
    pub fn state_dict(&self) -> StateDict<T> {
        let mut state = StateDict::new();
        self.for_each_tensor(|_, name, value| {
            state.insert(name.to_string(), value.clone());
        });
        state
    }

    /// Calls `f` with every parameter and buffer, its name and its value
    /// (borrowed: saving and matching copy nothing), parameters first,
    /// each in the order they were added.
    fn for_each_tensor(&self, mut f: impl FnMut(Target, &str, &Tensor<T>)) {
        for (id, name, value) in self.iter() {
            f(Target::Param(id), name, value);
        }
        for (id, name) in self.buffer_names() {
            f(Target::Buffer(id), name, &self.buffer(id));
        }
    }

    /// Loads tensors by name from a state dict. Nothing changes on error.
    pub fn load_state_dict(
        &mut self,
        state: &StateDict<T>,
        options: &LoadOptions,
    ) -> Result<LoadReport, CheckpointError> {
        let sources: Vec<Source<'_>> = state
            .iter()
            .map(|(name, t)| Source {
                name,
                dtype: Precision::of::<T>().dtype(),
                shape: t.shape().to_vec(),
                bytes: &[],
            })
            .collect();
        let path = PathBuf::from("<state dict>");
        let plan = self.plan(&path, &sources, options, |s| Some(state[s.name].clone()))?;
        Ok(self.apply(plan))
    }

    /// Saves every parameter and buffer under its name, and the positions
    /// of the random streams.
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
        self.save_impl(path.as_ref(), None, Precision::of::<T>())
    }

    /// Saves in another precision (f16 or bf16 to halve a file; f64).
    pub fn save_as(
        &self,
        path: impl AsRef<Path>,
        precision: Precision,
    ) -> Result<(), CheckpointError> {
        self.save_impl(path.as_ref(), None, precision)
    }

    /// Saves the parameters and the optimizer's state (its per-parameter
    /// tensors and step count).
    pub fn save_with_optimizer(
        &self,
        path: impl AsRef<Path>,
        opt: &dyn Optimizer<T>,
    ) -> Result<(), CheckpointError> {
        self.save_impl(path.as_ref(), Some(opt), Precision::of::<T>())
    }

    fn save_impl(
        &self,
        path: &Path,
        opt: Option<&dyn Optimizer<T>>,
        precision: Precision,
    ) -> Result<(), CheckpointError> {
        let mut entries: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        self.for_each_tensor(|_, name, value| {
            let bytes = to_bytes(value, precision);
            entries.push((name.to_string(), value.shape().to_vec(), bytes));
        });
        let mut metadata = HashMap::from([("format".to_string(), "tapegrad".to_string())]);
        for s in self.streams.values() {
            metadata.insert(
                format!("{RNG_PREFIX}{}", s.name),
                rng_to_text(&s.rng.borrow()),
            );
        }
        if let Some(opt) = opt {
            for (slot_name, slot) in opt.slots() {
                for (id, t) in slot.iter() {
                    let name = format!("{OPTIMIZER_PREFIX}{slot_name}.{}", self.name(id));
                    entries.push((name, t.shape().to_vec(), to_bytes(t, precision)));
                }
            }
            metadata.insert(STEPS_KEY.to_string(), opt.steps().to_string());
        }
        let views: Vec<(String, TensorView<'_>)> = entries
            .iter()
            .map(|(n, shape, bytes)| {
                let view = TensorView::new(precision.dtype(), shape.clone(), bytes);
                (n.clone(), view.expect("sizes match"))
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

    /// Loads every parameter and buffer by name, strictly: every tensor of
    /// the model must be in the file with the same shape and dtype, and the
    /// file may hold nothing else but optimizer state. Nothing changes on
    /// error, and the error lists every mismatch.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        self.load_impl(path.as_ref(), None, &LoadOptions::new())
            .map(|_| ())
    }

    /// Loads with options: non-strict, renamed, converted.
    ///
    /// ```
    /// use tapegrad::nn::{Activation, LoadOptions, Mlp, ParamStore, Precision};
    /// let mut small = ParamStore::<f32>::new();
    /// Mlp::new(&mut small, "net", &[3, 4], Activation::Tanh, 1);
    /// let path = std::env::temp_dir().join(format!("tapegrad-doc-opts-{}.safetensors", std::process::id()));
    /// small.save_as(&path, Precision::F16)?;
    /// let mut big = ParamStore::<f32>::new();
    /// Mlp::new(&mut big, "mlp", &[3, 4, 2], Activation::Tanh, 2);
    /// let opts = LoadOptions::new().strip_prefix("net.").add_prefix("mlp.").convert_dtype(true).strict(false);
    /// let report = big.load_with(&path, &opts)?;
    /// assert_eq!(report.missing, ["mlp.2.bias", "mlp.2.weight"]);
    /// # std::fs::remove_file(&path).unwrap();
    /// # Ok::<(), tapegrad::nn::CheckpointError>(())
    /// ```
    pub fn load_with(
        &mut self,
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<LoadReport, CheckpointError> {
        self.load_impl(path.as_ref(), None, options)
    }

    /// Loads the parameters and restores the optimizer's state from a file
    /// written by [`ParamStore::save_with_optimizer`].
    ///
    /// # Errors
    /// As [`ParamStore::load`], and [`CheckpointError::NoOptimizerState`]
    /// for a file without optimizer state.
    pub fn load_with_optimizer(
        &mut self,
        path: impl AsRef<Path>,
        opt: &mut dyn Optimizer<T>,
    ) -> Result<(), CheckpointError> {
        self.load_impl(path.as_ref(), Some(opt), &LoadOptions::new())
            .map(|_| ())
    }

    /// [`ParamStore::load_with_optimizer`] with options.
    pub fn load_with_optimizer_and(
        &mut self,
        path: impl AsRef<Path>,
        opt: &mut dyn Optimizer<T>,
        options: &LoadOptions,
    ) -> Result<LoadReport, CheckpointError> {
        self.load_impl(path.as_ref(), Some(opt), options)
    }

    fn load_impl(
        &mut self,
        path: &Path,
        opt: Option<&mut dyn Optimizer<T>>,
        options: &LoadOptions,
    ) -> Result<LoadReport, CheckpointError> {
        let p = || path.to_path_buf();
        let bytes =
            std::fs::read(path).map_err(|source| CheckpointError::Io { path: p(), source })?;
        let corrupt = |e: safetensors::SafeTensorError| CheckpointError::Corrupt {
            path: p(),
            message: e.to_string(),
        };
        let file = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
        let metadata = SafeTensors::read_metadata(&bytes)
            .map_err(corrupt)?
            .1
            .metadata()
            .clone()
            .unwrap_or_default();
        let sources: Vec<Source<'_>> = file
            .iter()
            .filter(|(name, _)| !name.starts_with(OPTIMIZER_PREFIX))
            .map(|(name, view)| Source {
                name,
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                bytes: view.data(),
            })
            .collect();
        let plan = self.plan(path, &sources, options, |s| {
            decode(s.dtype, s.bytes, &s.shape)
        })?;
        // The optimizer's state, checked before anything changes.
        let mut state = Vec::new();
        let steps = metadata.get(STEPS_KEY).and_then(|s| s.parse::<u64>().ok());
        if let Some(opt) = &opt {
            if steps.is_none() && !options.fresh_optimizer {
                return Err(CheckpointError::NoOptimizerState { path: p() });
            }
            let mut problems = Vec::new();
            for (slot_name, _) in opt.slots() {
                for (id, name, value) in self.iter() {
                    let key = format!("{OPTIMIZER_PREFIX}{slot_name}.{name}");
                    let Ok(view) = file.tensor(&key) else {
                        continue;
                    };
                    if view.shape() != value.shape() {
                        problems.push(Mismatch::Shape {
                            name: key,
                            expected: value.shape().to_vec(),
                            found: view.shape().to_vec(),
                        });
                    } else if let Some(t) = decode::<T>(view.dtype(), view.data(), value.shape()) {
                        state.push((slot_name, id, t));
                    }
                }
            }
            if !problems.is_empty() {
                return Err(CheckpointError::Mismatch {
                    path: p(),
                    problems,
                });
            }
        }
        let report = self.apply(plan);
        for s in self.streams.values() {
            let saved = metadata.get(&format!("{RNG_PREFIX}{}", s.name));
            if let Some(rng) = saved.and_then(|t| rng_from_text(t)) {
                *s.rng.borrow_mut() = rng;
            }
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
        Ok(report)
    }

    /// Matches `sources` to the model's tensors and decodes them, or lists
    /// every problem.
    fn plan<'a>(
        &self,
        path: &Path,
        sources: &'a [Source<'a>],
        options: &LoadOptions,
        decode: impl Fn(&Source<'a>) -> Option<Tensor<T>>,
    ) -> Result<Plan<T>, CheckpointError> {
        let mut problems = Vec::new();
        let mut report = LoadReport::default();
        let mut values = Vec::new();
        let by_name: HashMap<String, &Source<'_>> =
            sources.iter().map(|s| (options.map(s.name), s)).collect();
        let ours = Precision::of::<T>().dtype();
        let mut model_tensors = Vec::new();
        self.for_each_tensor(|target, name, value| {
            model_tensors.push((target, name.to_string(), value.shape().to_vec()));
        });
        for (target, name, shape) in model_tensors {
            let name = name.as_str();
            let Some(s) = by_name.get(name) else {
                report.missing.push(name.to_string());
                continue;
            };
            let is_buffer = matches!(target, Target::Buffer(_));
            let integer_buffer = is_buffer && matches!(s.dtype, Dtype::I64 | Dtype::I32);
            if s.dtype != ours && !options.convert_dtype && !integer_buffer {
                problems.push(Mismatch::Dtype {
                    name: name.to_string(),
                    expected: format!("{ours:?}"),
                    found: format!("{:?}", s.dtype),
                });
            } else if s.shape != shape {
                problems.push(Mismatch::Shape {
                    name: name.to_string(),
                    expected: shape,
                    found: s.shape.clone(),
                });
            } else {
                match decode(s) {
                    Some(t) => values.push((target, t)),
                    None => problems.push(Mismatch::Dtype {
                        name: name.to_string(),
                        expected: format!("{ours:?}"),
                        found: format!("{:?} (not a number type tapegrad reads)", s.dtype),
                    }),
                }
            }
        }
        let mut unexpected: Vec<String> = by_name
            .keys()
            .filter(|n| self.id(n).is_none() && self.buffer_id(n).is_none())
            .cloned()
            .collect();
        unexpected.sort();
        report.unexpected = unexpected;
        report.missing.sort();
        if options.strict {
            problems.extend(report.missing.iter().cloned().map(Mismatch::Missing));
            problems.extend(report.unexpected.iter().cloned().map(Mismatch::Unexpected));
        }
        if problems.is_empty() {
            Ok(Plan { values, report })
        } else {
            Err(CheckpointError::Mismatch {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    fn apply(&mut self, plan: Plan<T>) -> LoadReport {
        for (target, v) in plan.values {
            match target {
                Target::Param(id) => *self.value_mut(id) = v,
                Target::Buffer(id) => self.set_buffer(id, v),
            }
        }
        plan.report
    }
}
