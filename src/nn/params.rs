//! [`ParamStore`]: the trainable tensors of a model, each with a name.

use crate::tape::{Gradients, Tape, Var};
use crate::tensor::{Element, Tensor};
use slotmap::{SecondaryMap, SlotMap};
use std::cell::RefCell;

slotmap::new_key_type! {
    /// A handle to one parameter in a [`ParamStore`]. Modules hold these,
    /// not tensors.
    pub struct ParamId;
}

struct Param<T: Element> {
    name: String,
    value: Tensor<T>,
    frozen: bool,
}

/// Where a parameter was put on a tape for the current step.
#[derive(Clone, Copy)]
struct Binding {
    tape_id: u64,
    epoch: u32,
    index: u32,
}

/// The parameters of a model: tensors with hierarchical names
/// (`"encoder.0.weight"`), kept outside any tape.
///
/// Each step, [`ParamStore::var`] puts a parameter on the step's tape (once
/// per tape and reset; a frozen parameter goes on as a constant), and
/// [`ParamStore::grad`] finds its gradient in the step's [`Gradients`].
///
/// ```
/// use tapegrad::nn::ParamStore;
/// use tapegrad::{Tape, Tensor};
///
/// let mut params = ParamStore::<f64>::new();
/// let w = params.add("w", Tensor::from_vec(vec![1.0, 2.0], [2]));
/// let tape = Tape::new();
/// let loss = params.var(&tape, w).square().sum();
/// let grads = loss.backward();
/// assert_eq!(params.grad(&grads, w).unwrap().data(), &[2.0, 4.0]);
/// ```
pub struct ParamStore<T: Element> {
    params: SlotMap<ParamId, Param<T>>,
    bindings: RefCell<SecondaryMap<ParamId, Binding>>,
}

impl<T: Element> Default for ParamStore<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> ParamStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        ParamStore {
            params: SlotMap::with_key(),
            bindings: RefCell::new(SecondaryMap::new()),
        }
    }

    /// Adds a parameter.
    ///
    /// # Panics
    /// If a parameter of that name exists already.
    #[track_caller]
    pub fn add(&mut self, name: impl Into<String>, value: Tensor<T>) -> ParamId {
        let name = name.into();
        assert!(
            self.id(&name).is_none(),
            "ParamStore::add: a parameter named `{name}` exists already"
        );
        self.params.insert(Param {
            name,
            value,
            frozen: false,
        })
    }

    /// The parameter called `name`.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.params
            .iter()
            .find(|(_, p)| p.name == name)
            .map(|(id, _)| id)
    }

    /// Its current value.
    pub fn value(&self, id: ParamId) -> &Tensor<T> {
        &self.params[id].value
    }

    /// Its current value, to change in place.
    pub fn value_mut(&mut self, id: ParamId) -> &mut Tensor<T> {
        &mut self.params[id].value
    }

    /// Its name.
    pub fn name(&self, id: ParamId) -> &str {
        &self.params[id].name
    }

    /// Every parameter in the order they were added: id, name, value.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &str, &Tensor<T>)> {
        self.params
            .iter()
            .map(|(id, p)| (id, p.name.as_str(), &p.value))
    }

    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalar weights.
    pub fn num_elements(&self) -> usize {
        self.params.values().map(|p| p.value.numel()).sum()
    }

    /// Stops a parameter from training: it goes on the tape as a constant,
    /// gets no gradient and no update.
    pub fn freeze(&mut self, id: ParamId) {
        self.params[id].frozen = true;
    }

    /// Lets a frozen parameter train again.
    pub fn unfreeze(&mut self, id: ParamId) {
        self.params[id].frozen = false;
    }

    /// Whether the parameter is frozen.
    pub fn is_frozen(&self, id: ParamId) -> bool {
        self.params[id].frozen
    }

    /// The parameter as a [`Var`] on `tape`: put there on first use after
    /// each reset, and the same node on every later use in that step.
    pub fn var<'t>(&self, tape: &'t Tape<T>, id: ParamId) -> Var<'t, T> {
        let p = &self.params[id];
        if let Some(b) = self.bindings.borrow().get(id) {
            if b.tape_id == tape.id() && b.epoch == tape.epoch() {
                return Var::from_parts(tape, b.index, b.epoch);
            }
        }
        let v = if p.frozen {
            tape.constant(p.value.clone())
        } else {
            tape.var(p.value.clone())
        };
        let binding = Binding {
            tape_id: tape.id(),
            epoch: tape.epoch(),
            index: v.index() as u32,
        };
        self.bindings.borrow_mut().insert(id, binding);
        v
    }

    /// The parameter's gradient in `grads`, if it was used on that tape in
    /// that step and is not frozen.
    pub fn grad<'g>(&self, grads: &'g Gradients<'_, T>, id: ParamId) -> Option<&'g Tensor<T>> {
        let b = *self.bindings.borrow().get(id)?;
        grads.get_node(b.tape_id, b.epoch, b.index as usize)
    }

    /// Mutable form of [`ParamStore::grad`].
    pub fn grad_mut<'g>(
        &self,
        grads: &'g mut Gradients<'_, T>,
        id: ParamId,
    ) -> Option<&'g mut Tensor<T>> {
        let b = *self.bindings.borrow().get(id)?;
        grads.get_node_mut(b.tape_id, b.epoch, b.index as usize)
    }

    /// Calls `f(id, value, gradient)` for every trainable parameter that has
    /// a gradient in `grads`: the loop every optimizer runs.
    pub fn update(
        &mut self,
        grads: &Gradients<'_, T>,
        mut f: impl FnMut(ParamId, &mut Tensor<T>, &Tensor<T>),
    ) {
        let bindings = self.bindings.borrow();
        for (id, p) in self.params.iter_mut() {
            if p.frozen {
                continue;
            }
            let Some(b) = bindings.get(id) else { continue };
            if let Some(g) = grads.get_node(b.tape_id, b.epoch, b.index as usize) {
                f(id, &mut p.value, g);
            }
        }
    }
}

impl<T: Element> std::fmt::Debug for ParamStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (_, name, value) in self.iter() {
            m.entry(&name, &value.shape());
        }
        m.finish()
    }
}
