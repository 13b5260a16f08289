//! [`ParamStore`]: the tensors of a model (trainable parameters and
//! non-trainable buffers), each with a name, and the model's train/eval
//! mode.

use crate::tape::{Bound, Gradients, Tape, Var};
use crate::tensor::{Element, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slotmap::{Key, SlotMap};
use std::cell::{Ref, RefCell, RefMut};
use std::sync::atomic::{AtomicU64, Ordering};

slotmap::new_key_type! {
    /// A handle to one parameter in a [`ParamStore`]. Modules
    /// hold these, not tensors.
    pub struct ParamId;

    /// A handle to one buffer in a [`ParamStore`]: a tensor of the model's
    /// state that is not trained (batch norm's running statistics).
    pub struct BufferId;

    /// A handle to one named random stream in a [`ParamStore`] (dropout's
    /// masks), saved in checkpoints so that a resumed run draws what the
    /// uninterrupted one would have.
    pub struct RngId;
}

/// A named buffer: changed by forwards (through `&ParamStore`), so kept in
/// a cell.
pub(crate) struct Buffer<T: Element> {
    pub(crate) name: String,
    pub(crate) value: RefCell<Tensor<T>>,
}

/// A named random stream.
pub(crate) struct Stream {
    pub(crate) name: String,
    pub(crate) rng: RefCell<ChaCha8Rng>,
}

struct Param<T: Element> {
    name: String,
    value: Tensor<T>,
    frozen: bool,
    /// Bumped by every change of `value`, so that a tape holding an older
    /// copy (one not reset since the last step) is given the new one.
    version: u64,
}

/// A parameter's identity across stores and tapes: its store and its id
/// there (what a tape binds and a [`crate::nn::GradSource`] looks up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamKey {
    store: u64,
    id: ParamId,
}

impl ParamKey {
    /// The key tapes bind it under.
    pub(crate) fn tape_key(self) -> (u64, u64) {
        (self.store, self.id.data().as_ffi())
    }

    /// The parameter's id in its store.
    pub fn id(self) -> ParamId {
        self.id
    }
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// The tensors of a model, with hierarchical names (`"encoder.0.weight"`),
/// kept outside any tape, and whether the model is training or being
/// evaluated.
///
/// Each step, [`ParamStore::var`] puts a parameter on the step's tape, and
/// the tape remembers which node it is (once per tape and reset; a frozen
/// parameter goes on as a constant). [`ParamStore::grad`] and
/// the optimizers find a parameter's gradient through the tape the
/// [`Gradients`] come from, so other forwards in between (a validation
/// pass on another tape, a `no_grad` peek) never hide it.
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
/// // A forward on another tape in between changes nothing.
/// let other = Tape::new();
/// let _ = other.no_grad(|| params.var(&other, w).sum().item());
/// assert_eq!(params.grad(&grads, w).unwrap().data(), &[2.0, 4.0]);
/// ```
pub struct ParamStore<T: Element> {
    id: u64,
    params: SlotMap<ParamId, Param<T>>,
    pub(crate) buffers: SlotMap<BufferId, Buffer<T>>,
    pub(crate) streams: SlotMap<RngId, Stream>,
    training: bool,
}

impl<T: Element> Default for ParamStore<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> ParamStore<T> {
    /// An empty store, in training mode.
    pub fn new() -> Self {
        ParamStore {
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            params: SlotMap::with_key(),
            buffers: SlotMap::with_key(),
            streams: SlotMap::with_key(),
            training: true,
        }
    }

    /// Adds a trainable parameter.
    ///
    /// # Panics
    /// If a parameter or buffer of that name exists already.
    #[track_caller]
    pub fn add(&mut self, name: impl Into<String>, value: Tensor<T>) -> ParamId {
        let name = name.into();
        self.assert_new_name(&name);
        self.params.insert(Param {
            name,
            value,
            frozen: false,
            version: 0,
        })
    }

    /// Adds a buffer: a tensor of the model's state that is not trained
    /// (batch norm's running statistics, counters), saved and loaded by
    /// name like a parameter. Layers may change it during a forward
    /// ([`ParamStore::set_buffer`] takes `&self`).
    ///
    /// ```
    /// use tapegrad::nn::ParamStore;
    /// use tapegrad::Tensor;
    /// let mut params = ParamStore::<f32>::new();
    /// let mean = params.add_buffer("bn.running_mean", Tensor::zeros([4]));
    /// params.set_buffer(mean, Tensor::ones([4]));
    /// assert_eq!(params.buffer(mean).data(), &[1.0; 4]);
    /// assert_eq!(params.num_elements(), 0); // buffers are not weights
    /// ```
    ///
    /// # Panics
    /// If a parameter or buffer of that name exists already.
    #[track_caller]
    pub fn add_buffer(&mut self, name: impl Into<String>, value: Tensor<T>) -> BufferId {
        let name = name.into();
        self.assert_new_name(&name);
        self.buffers.insert(Buffer {
            name,
            value: RefCell::new(value),
        })
    }

    #[track_caller]
    fn assert_new_name(&self, name: &str) {
        assert!(
            self.id(name).is_none() && self.buffer_id(name).is_none(),
            "ParamStore::add: a parameter or buffer named `{name}` exists already"
        );
    }

    /// The buffer called `name`.
    pub fn buffer_id(&self, name: &str) -> Option<BufferId> {
        self.buffers
            .iter()
            .find(|(_, b)| b.name == name)
            .map(|(id, _)| id)
    }

    /// A buffer's current value.
    ///
    /// # Panics
    /// If `id` is not a buffer of this store, or the buffer is being
    /// changed.
    #[track_caller]
    pub fn buffer(&self, id: BufferId) -> Ref<'_, Tensor<T>> {
        self.buffer_cell(id).borrow()
    }

    /// Replaces a buffer's value (through `&self`: layers do it in their
    /// forward).
    ///
    /// # Panics
    /// If `id` is not a buffer of this store, or the buffer is being read.
    #[track_caller]
    pub fn set_buffer(&self, id: BufferId, value: Tensor<T>) {
        *self.buffer_cell(id).borrow_mut() = value;
    }

    #[track_caller]
    fn buffer_cell(&self, id: BufferId) -> &RefCell<Tensor<T>> {
        match self.buffers.get(id) {
            Some(b) => &b.value,
            None => panic!(
                "ParamStore: {id:?} is not a buffer of this store: build the model with the store you run it with"
            ),
        }
    }

    /// A buffer's name.
    #[track_caller]
    pub fn buffer_name(&self, id: BufferId) -> &str {
        self.buffer_cell(id);
        &self.buffers[id].name
    }

    /// Every buffer in the order they were added: id and name.
    pub fn buffer_names(&self) -> impl Iterator<Item = (BufferId, &str)> {
        self.buffers.iter().map(|(id, b)| (id, b.name.as_str()))
    }

    /// The buffer as a constant on `tape` (buffers get no gradient).
    #[track_caller]
    pub fn buffer_var<'t>(&self, tape: &'t Tape<T>, id: BufferId) -> Var<'t, T> {
        tape.constant(self.buffer(id).clone())
    }

    /// Adds a random stream called `name`, seeded with `seed` (for layers
    /// that draw random numbers, like [`crate::nn::Dropout`]). Checkpoints
    /// save its position.
    ///
    /// # Panics
    /// If a stream of that name exists already.
    #[track_caller]
    pub fn add_rng(&mut self, name: impl Into<String>, seed: u64) -> RngId {
        let name = name.into();
        assert!(
            self.streams.values().all(|s| s.name != name),
            "ParamStore::add_rng: a random stream named `{name}` exists already"
        );
        self.streams.insert(Stream {
            name,
            rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)),
        })
    }

    /// The random stream `id`, to draw from.
    ///
    /// # Panics
    /// If `id` is not a stream of this store, or it is being drawn from
    /// already.
    #[track_caller]
    pub fn rng(&self, id: RngId) -> RefMut<'_, ChaCha8Rng> {
        match self.streams.get(id) {
            Some(s) => s.rng.borrow_mut(),
            None => panic!(
                "ParamStore::rng: {id:?} is not a random stream of this store: \
                 build the model with the store you run it with"
            ),
        }
    }

    /// The name of random stream `id` (`"?"` if it is not one of this
    /// store's), for messages.
    ///
    /// ```
    /// let mut params = tapegrad::nn::ParamStore::<f32>::new();
    /// let id = params.add_rng("drop", 1);
    /// assert_eq!(params.rng_name(id), "drop");
    /// ```
    pub fn rng_name(&self, id: RngId) -> &str {
        self.streams.get(id).map_or("?", |s| &s.name)
    }

    /// The parameter called `name`.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.params
            .iter()
            .find(|(_, p)| p.name == name)
            .map(|(id, _)| id)
    }

    /// The entry of `id`, or a panic that says the id is not from here.
    #[track_caller]
    fn param(&self, id: ParamId) -> &Param<T> {
        match self.params.get(id) {
            Some(p) => p,
            None => self.foreign(id),
        }
    }

    #[cold]
    #[track_caller]
    fn foreign(&self, id: ParamId) -> ! {
        panic!(
            "ParamStore: {id:?} is not a parameter of this store (it has {} parameters): \
             the id comes from another ParamStore; build the model with the store you train",
            self.len()
        )
    }

    /// Its current value.
    #[track_caller]
    pub fn value(&self, id: ParamId) -> &Tensor<T> {
        &self.param(id).value
    }

    /// Its current value, to change in place.
    #[track_caller]
    pub fn value_mut(&mut self, id: ParamId) -> &mut Tensor<T> {
        self.param(id);
        let p = &mut self.params[id];
        p.version += 1;
        &mut p.value
    }

    /// Its name.
    #[track_caller]
    pub fn name(&self, id: ParamId) -> &str {
        &self.param(id).name
    }

    /// Every parameter in the order they were added: id, name, value.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &str, &Tensor<T>)> {
        self.params
            .iter()
            .map(|(id, p)| (id, p.name.as_str(), &p.value))
    }

    /// The ids of every parameter an optimizer may train (not frozen), in
    /// the order they were added.
    pub fn trainable(&self) -> impl Iterator<Item = ParamId> + '_ {
        self.params
            .iter()
            .filter(|(_, p)| !p.frozen)
            .map(|(id, _)| id)
    }

    /// Number of parameters (tensors; buffers are counted by
    /// [`ParamStore::num_buffers`]).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True if there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Number of buffers.
    pub fn num_buffers(&self) -> usize {
        self.buffers.len()
    }

    /// Total number of scalar weights (buffers not counted).
    pub fn num_elements(&self) -> usize {
        self.params.values().map(|p| p.value.numel()).sum()
    }

    /// Stops a parameter from training: it goes on the tape as a constant,
    /// gets no gradient and no update.
    #[track_caller]
    pub fn freeze(&mut self, id: ParamId) {
        self.param(id);
        self.params[id].frozen = true;
    }

    /// Lets a frozen parameter train again.
    #[track_caller]
    pub fn unfreeze(&mut self, id: ParamId) {
        self.param(id);
        self.params[id].frozen = false;
    }

    /// Whether the parameter is frozen.
    #[track_caller]
    pub fn is_frozen(&self, id: ParamId) -> bool {
        self.param(id).frozen
    }

    /// Whether an optimizer trains `id`: a parameter that is not frozen.
    #[track_caller]
    pub fn is_trainable(&self, id: ParamId) -> bool {
        !self.param(id).frozen
    }

    /// Switches every module that uses this store to training mode
    /// (dropout on, batch statistics): the default.
    ///
    /// The mode lives here, not in each module, so no container can forget
    /// to pass it on to its children.
    ///
    /// ```
    /// use tapegrad::nn::{Dropout, Module, ParamStore};
    /// use tapegrad::{Tape, Tensor};
    /// let mut params = ParamStore::<f32>::new();
    /// let drop = Dropout::new(&mut params, "drop", 0.5, 1);
    /// let tape = Tape::new();
    /// params.eval();
    /// let y = drop.forward(&params, tape.constant(Tensor::ones([4])));
    /// assert_eq!(y.value().data(), &[1.0; 4]); // the identity in evaluation
    /// params.train();
    /// assert!(params.is_training());
    /// ```
    pub fn train(&mut self) {
        self.training = true;
    }

    /// Switches every module that uses this store to evaluation mode
    /// (dropout off, running statistics), as PyTorch's `model.eval()`.
    pub fn eval(&mut self) {
        self.training = false;
    }

    /// Sets the mode: `true` for training, `false` for evaluation.
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Whether modules run in training mode.
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Whether anything here behaves differently in training and
    /// evaluation: random streams (dropout) or buffers (running
    /// statistics).
    pub fn has_mode_dependent_state(&self) -> bool {
        !self.streams.is_empty() || !self.buffers.is_empty()
    }

    /// This store's identity (in [`ParamKey`]s).
    pub(crate) fn key_store(&self) -> u64 {
        self.id
    }

    /// The identity of `id` across stores and tapes.
    pub fn key(&self, id: ParamId) -> ParamKey {
        ParamKey { store: self.id, id }
    }

    /// Every trainable parameter with its key, its value to change.
    pub(crate) fn trainable_mut(
        &mut self,
    ) -> impl Iterator<Item = (ParamId, ParamKey, &mut Tensor<T>)> {
        let store = self.id;
        self.params
            .iter_mut()
            .filter(|(_, p)| !p.frozen)
            .map(move |(id, p)| {
                p.version += 1;
                (id, ParamKey { store, id }, &mut p.value)
            })
    }

    /// The parameter as a [`Var`] on `tape`: put there on first use after
    /// each reset, and the same node on every later use in that recording.
    /// A frozen parameter goes on as a constant.
    /// It is put on again (a new node) when the node would be wrong for
    /// this use: first put on inside [`Tape::no_grad`] and now used with
    /// recording on, or changed since (an optimizer step or a load on a
    /// tape that was not reset: the new value is used, never the stale
    /// copy; reset the tape each step to keep its memory flat).
    #[track_caller]
    pub fn var<'t>(&self, tape: &'t Tape<T>, id: ParamId) -> Var<'t, T> {
        let p = self.param(id);
        let key = self.key(id).tape_key();
        let trainable = !p.frozen;
        if let Some(b) = tape.bound(key) {
            let fits = b.requires_grad || !(trainable && tape.is_grad_enabled());
            if fits && b.version == p.version {
                return Var::from_parts(tape, b.index, tape.epoch());
            }
        }
        let v = if trainable {
            tape.var(p.value.clone())
        } else {
            tape.constant(p.value.clone())
        };
        let at = Bound {
            index: v.index() as u32,
            requires_grad: trainable && tape.is_grad_enabled(),
            version: p.version,
        };
        tape.bind(key, at);
        v
    }

    /// The parameter's gradient in `grads`: found through the tape `grads`
    /// come from. `None` if the parameter was not used on that tape before
    /// the output, or is frozen or a buffer there.
    ///
    /// # Panics
    /// If that tape was reset after `grads` were computed, or `id` is not
    /// from this store.
    #[track_caller]
    pub fn grad<'g>(&self, grads: &'g Gradients<'_, T>, id: ParamId) -> Option<&'g Tensor<T>> {
        self.param(id);
        grads.bound(self.key(id).tape_key())
    }

    /// Mutable form of [`ParamStore::grad`].
    #[track_caller]
    pub fn grad_mut<'g>(
        &self,
        grads: &'g mut Gradients<'_, T>,
        id: ParamId,
    ) -> Option<&'g mut Tensor<T>> {
        self.param(id);
        grads.bound_mut(self.key(id).tape_key())
    }

    /// Why no trainable parameter of this store has a gradient in `grads`:
    /// the message every "nothing to update" error gives.
    pub(crate) fn why_no_gradient(&self, grads: &Gradients<'_, T>) -> String {
        let tape = grads.tape();
        if self.is_empty() {
            return "this ParamStore is empty: the model was built with another store; \
                    pass the store the model was built with"
                .into();
        }
        if self.trainable().next().is_none() {
            return format!(
                "this ParamStore has no trainable parameter ({} tensors, all frozen); \
                 unfreeze the ones to train",
                self.len()
            );
        }
        let bound: Vec<Bound> = self
            .params
            .keys()
            .filter_map(|id| tape.bound(self.key(id).tape_key()))
            .collect();
        if bound.is_empty() {
            format!(
                "none of this ParamStore's parameters was used on tape #{} (the tape these \
                 gradients come from): the loss was computed with another ParamStore, or \
                 without the model; pass the store the model was built with",
                tape.id()
            )
        } else if bound.iter().all(|b| !b.requires_grad) {
            format!(
                "this ParamStore's parameters are on tape #{} only as constants: they are \
                 frozen, or the forward ran inside no_grad; record the loss with recording on",
                tape.id()
            )
        } else {
            format!(
                "this ParamStore's parameters were put on tape #{} after the output these \
                 gradients come from; call backward() on the loss computed from them",
                tape.id()
            )
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
