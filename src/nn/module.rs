//! The [`Module`] trait and [`Sequential`].

use super::{ParamId, ParamStore};
use crate::tape::Var;
use crate::tensor::Element;

/// A piece of a model: a forward function of one input, and the
/// parameters it owns (as ids into a [`ParamStore`]).
///
/// Training or evaluation mode is not a module's own state: it is read
/// from the store ([`ParamStore::is_training`]), so a container never has
/// to pass it on, and cannot forget to.
///
/// ```
/// use tapegrad::nn::{Module, ParamId, ParamStore};
/// use tapegrad::{Element, Tensor, Var};
///
/// /// y = a·x, with a learned scalar a.
/// struct Scale(ParamId);
/// impl<T: Element> Module<T> for Scale {
///     fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
///         x * params.var(x.tape(), self.0)
///     }
///     fn parameters(&self) -> Vec<ParamId> {
///         vec![self.0]
///     }
/// }
///
/// let mut params = ParamStore::<f64>::new();
/// let m = Scale(params.add("a", Tensor::scalar(3.0)));
/// let tape = tapegrad::Tape::new();
/// assert_eq!(m.forward(&params, tape.constant(2.0)).item(), 6.0);
/// ```
pub trait Module<T: Element> {
    /// Records the forward computation on `x`'s tape. Shape errors are
    /// reported at the caller's line (implementations should be
    /// `#[track_caller]` too).
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T>;

    /// The parameters this module owns (directly or through its children).
    fn parameters(&self) -> Vec<ParamId> {
        Vec::new()
    }
}

/// Modules applied one after another.
///
/// ```
/// use tapegrad::nn::{Activation, Linear, Module, ParamStore, Sequential};
/// use tapegrad::{Tape, Tensor};
///
/// let mut params = ParamStore::<f32>::new();
/// let model = Sequential::new()
///     .add(Linear::new(&mut params, "0", 4, 8, 1))
///     .add(Activation::Relu)
///     .add(Linear::new(&mut params, "2", 8, 2, 2));
/// let tape = Tape::new();
/// let y = model.forward(&params, tape.constant(Tensor::ones([5, 4])));
/// assert_eq!(y.shape().as_slice(), &[5, 2]);
/// assert_eq!(model.parameters().len(), 4);
/// ```
#[derive(Default)]
pub struct Sequential<T: Element> {
    layers: Vec<Box<dyn Module<T>>>,
}

impl<T: Element> Sequential<T> {
    /// No layers yet.
    pub fn new() -> Self {
        Sequential { layers: Vec::new() }
    }

    /// Appends a layer.
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Module<T> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a boxed layer.
    pub fn push(&mut self, layer: Box<dyn Module<T>>) {
        self.layers.push(layer);
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True if there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layers in order: to run part of the network, or to compare
    /// each layer's output with another tool's.
    ///
    /// ```
    /// use tapegrad::nn::{Activation, Linear, Module, ParamStore, Sequential};
    /// use tapegrad::{Tape, Tensor};
    /// let mut params = ParamStore::<f64>::new();
    /// let model = Sequential::new()
    ///     .add(Linear::new(&mut params, "0", 3, 4, 0))
    ///     .add(Activation::Relu);
    /// let tape = Tape::new();
    /// let mut h = tape.constant(Tensor::ones([2, 3]));
    /// for layer in model.layers() {
    ///     h = layer.forward(&params, h);
    ///     assert!(h.value().data().iter().all(|v| v.is_finite()));
    /// }
    /// assert_eq!(h.shape().as_slice(), &[2, 4]);
    /// ```
    pub fn layers(&self) -> &[Box<dyn Module<T>>] {
        &self.layers
    }
}

impl<T: Element> Module<T> for Sequential<T> {
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        // A loop, not a fold: a closure would end the `track_caller`
        // chain, and shape errors would point here instead of at the caller.
        let mut h = x;
        for layer in &self.layers {
            h = layer.forward(params, h);
        }
        h
    }

    fn parameters(&self) -> Vec<ParamId> {
        self.layers.iter().flat_map(|l| l.parameters()).collect()
    }
}
