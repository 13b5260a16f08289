//! The performance issue's workloads, shared by the criterion benches and
//! the comparison script's Rust side. Each has its check values.
#![allow(dead_code)]

#[path = "../../examples/common/cnn.rs"]
pub mod cnn;

use tapegrad::nn::{cross_entropy, Activation, Adam, Mlp, Module, Optimizer, ParamStore};
use tapegrad::tensor::Conv2dGeom;
use tapegrad::{Element, Tape, Tensor, Var, VarRange};

/// W1: y ← tanh(y·w_i + b_i), N steps from x = 0.5; returns
/// (loss, Σ dloss/dw, Σ dloss/db, dloss/dx), for checks.
pub fn w1(tape: &Tape<f64>, n: usize) -> (f64, f64, f64, f64) {
    w1_run(tape, n, sums)
}

/// W1 as the timings run it: records, walks back, and hands `read` the
/// loss, dloss/dw and dloss/db as slices (lent from the gradient slots,
/// no copy) and dloss/dx. Every engine of the side-by-side ends with the
/// gradients as arrays (JAX returns them, the by-hand loop writes them);
/// what is done with them ([`sums`] for a check, [`keep`] in a timing) is
/// the caller's.
pub fn w1_run<R>(
    tape: &Tape<f64>,
    n: usize,
    read: impl FnOnce(f64, &[f64], &[f64], f64) -> R,
) -> R {
    let (x, ws, bs, y) = record_w1(tape, n);
    let g = y.backward();
    read(y.item(), &g.items(&ws), &g.items(&bs), g.item(x))
}

/// W1's check values: (loss, Σ dw, Σ db, dx).
pub fn sums(loss: f64, dw: &[f64], db: &[f64], dx: f64) -> (f64, f64, f64, f64) {
    (loss, dw.iter().sum(), db.iter().sum(), dx)
}

/// W1's results kept from the optimiser, not read (a timing's `read`).
pub fn keep(loss: f64, dw: &[f64], db: &[f64], dx: f64) -> f64 {
    std::hint::black_box((dw, db, dx));
    loss
}

/// Records W1 on `tape` (reset first): the start x, the coefficients as
/// two ranges of leaves (as JAX takes two arrays: one handle each,
/// gradients read back as slices), and the output.
#[allow(clippy::type_complexity)]
fn record_w1(
    tape: &Tape<f64>,
    n: usize,
) -> (
    Var<'_, f64>,
    VarRange<'_, f64>,
    VarRange<'_, f64>,
    Var<'_, f64>,
) {
    tape.reset();
    let x = tape.var(0.5);
    let ws = tape.vars((0..n).map(w1_w));
    let bs = tape.vars((0..n).map(w1_b));
    let mut y = x;
    for i in 0..n {
        y = (y * ws.get(i) + bs.get(i)).tanh();
    }
    (x, ws, bs, y)
}

/// W1's coefficients: w[i] = 0.5 + 0.001·(i mod 100), b[i] = 0.01·(i mod 7).
pub fn w1_w(i: usize) -> f64 {
    0.5 + 0.001 * (i % 100) as f64
}

/// See [`w1_w`].
pub fn w1_b(i: usize) -> f64 {
    0.01 * (i % 7) as f64
}

/// W1 written out by hand with no tape: the forward chain keeping each
/// `y`, then the chain rule backwards in one loop, writing dloss/dw and
/// dloss/db. Not an engine: the floor that any engine calling the
/// system's `tanh` starts from (the forward is one latency chain through
/// `tanh`, which no tape shortens). Returns [`sums`], for checks.
pub fn w1_by_hand(n: usize, scratch: &mut ByHand) -> (f64, f64, f64, f64) {
    // Scaling by exactly 1 changes no bit.
    w1_by_hand_run(n, 1.0, scratch, sums)
}

/// The by-hand loops' arrays: each `y`, and the gradients of w and b.
#[derive(Default)]
pub struct ByHand {
    ys: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
}

/// Runs `f` with subnormals flushed to zero if `flush` (as XLA runs; see
/// [`tapegrad::flush_subnormals`]), else as it is.
pub fn flushed_if<R>(flush: bool, f: impl FnOnce() -> R) -> R {
    if flush {
        tapegrad::flush_subnormals(f)
    } else {
        f()
    }
}

/// W1r: W1 recorded once, then replayed: each replay gives the leaves new
/// values (w scaled by `1 + 0.001·k`, the same b), re-runs the recorded
/// forward in place ([`Tape::replay`]) and the backward pass.
pub struct W1r<'t> {
    tape: &'t Tape<f64>,
    x: Var<'t, f64>,
    ws: VarRange<'t, f64>,
    bs: VarRange<'t, f64>,
    y: Var<'t, f64>,
}

impl<'t> W1r<'t> {
    /// Records W1 of `n` steps on `tape` (reset first).
    pub fn record(tape: &'t Tape<f64>, n: usize) -> Self {
        let (x, ws, bs, y) = record_w1(tape, n);
        W1r { tape, x, ws, bs, y }
    }

    /// Replay `k`: (loss, Σ dloss/dw, Σ dloss/db, dloss/dx), for checks.
    pub fn replay(&mut self, k: usize) -> (f64, f64, f64, f64) {
        self.replay_run(k, sums)
    }

    /// Replay `k`, handing `read` what [`w1_run`] hands it.
    pub fn replay_run<R>(
        &mut self,
        k: usize,
        read: impl FnOnce(f64, &[f64], &[f64], f64) -> R,
    ) -> R {
        // New values computed in place, as the by-hand loop computes them.
        let scale = 1.0 + 0.001 * k as f64;
        self.tape.update_values(&self.ws, |i, _| w1_w(i) * scale);
        self.tape.update_values(&self.bs, |i, _| w1_b(i));
        self.tape.replay().expect("W1 is a scalar program");
        let g = self.y.backward();
        read(
            self.y.item(),
            &g.items(&self.ws),
            &g.items(&self.bs),
            g.item(self.x),
        )
    }
}

/// [`w1_by_hand`] with every w scaled by `scale` (W1r's replay by hand).
pub fn w1_by_hand_scaled(n: usize, scale: f64, scratch: &mut ByHand) -> (f64, f64, f64, f64) {
    w1_by_hand_run(n, scale, scratch, sums)
}

/// [`w1_by_hand_scaled`], handing `read` what [`w1_run`] hands it.
pub fn w1_by_hand_run<R>(
    n: usize,
    scale: f64,
    s: &mut ByHand,
    read: impl FnOnce(f64, &[f64], &[f64], f64) -> R,
) -> R {
    s.ys.clear();
    let mut y = 0.5;
    s.ys.push(y);
    for i in 0..n {
        y = (y * (w1_w(i) * scale) + w1_b(i)).tanh();
        s.ys.push(y);
    }
    s.dw.resize(n, 0.0);
    s.db.resize(n, 0.0);
    let mut g = 1.0;
    for i in (0..n).rev() {
        let gz = g * (1.0 - s.ys[i + 1] * s.ys[i + 1]);
        s.dw[i] = gz * s.ys[i];
        s.db[i] = gz;
        g = gz * (w1_w(i) * scale);
    }
    read(y, &s.dw, &s.db, g)
}

pub const W1_LOSS: f64 = 0.07579308632142281;
pub const W1_SUM_DW: f64 = 0.15017698835915508;
pub const W1_SUM_DB: f64 = 2.455959717018217;

/// W1b data: 64 points x_k = (cos(0.1k), sin(0.3k)), t_k = sin(x_k0)·cos(x_k1).
pub fn w1b_data() -> (Vec<[f64; 2]>, Vec<f64>) {
    let xs: Vec<[f64; 2]> = (0..64)
        .map(|k| [(0.1 * k as f64).cos(), (0.3 * k as f64).sin()])
        .collect();
    let ts = xs.iter().map(|x| x[0].sin() * x[1].cos()).collect();
    (xs, ts)
}

/// W1b parameters in declaration order (layer by layer, neuron by neuron,
/// weights then bias): the j-th is 0.1·sin(j). Layers 2→16→16→1.
pub fn w1b_params() -> Vec<f64> {
    let n = 16 * 3 + 16 * 17 + 17;
    (0..n).map(|j| 0.1 * (j as f64).sin()).collect()
}

pub const W1B_LOSS_0: f64 = 0.24622122656182957;
pub const W1B_LOSS_1: f64 = 0.24602261731626796;
pub const W1B_LOSS_100: f64 = 0.17565676951073736;

/// One W1b step with every weight its own scalar node; returns the loss
/// before the update.
pub fn w1b_scalar_step(tape: &Tape<f64>, p: &mut [f64], xs: &[[f64; 2]], ts: &[f64]) -> f64 {
    tape.reset();
    let vars = tape.vars(p.iter().copied());
    let loss = w1b_scalar_loss(tape, &vars, xs, ts);
    let g = loss.backward();
    w1b_update(p, &g.items(&vars));
    loss.item()
}

/// W1b's forward on scalar nodes: the mean squared error over the data.
fn w1b_scalar_loss<'t>(
    tape: &'t Tape<f64>,
    vars: &VarRange<'t, f64>,
    xs: &[[f64; 2]],
    ts: &[f64],
) -> Var<'t, f64> {
    let mut loss = tape.constant(0.0);
    for (x, &t) in xs.iter().zip(ts) {
        let mut k = 0;
        let input = [tape.constant(x[0]), tape.constant(x[1])];
        let h1 = scalar_layer(vars, &mut k, &input, 16, true);
        let h2 = scalar_layer(vars, &mut k, &h1, 16, true);
        let y = scalar_layer(vars, &mut k, &h2, 1, false)[0];
        loss = loss + (y - t).square();
    }
    loss / 64.0
}

/// W1b's plain gradient step.
fn w1b_update(p: &mut [f64], grads: &[f64]) {
    for (w, d) in p.iter_mut().zip(grads) {
        *w -= 0.05 * d;
    }
}

/// W1b on scalar nodes recorded once and replayed each step: new
/// parameter values ([`Tape::set_values`]), the forward re-run in place
/// ([`Tape::replay`]) and the backward pass. Bit for bit the losses of
/// [`w1b_scalar_step`] (the network has no data-dependent branch).
pub struct W1bReplayed<'t> {
    tape: &'t Tape<f64>,
    vars: VarRange<'t, f64>,
    loss: Var<'t, f64>,
    first: bool,
}

impl<'t> W1bReplayed<'t> {
    /// Records W1b's forward at parameters `p` on `tape` (reset first).
    pub fn record(tape: &'t Tape<f64>, p: &[f64], xs: &[[f64; 2]], ts: &[f64]) -> Self {
        tape.reset();
        let vars = tape.vars(p.iter().copied());
        let loss = w1b_scalar_loss(tape, &vars, xs, ts);
        W1bReplayed {
            tape,
            vars,
            loss,
            first: true,
        }
    }

    /// One step from parameters `p`; returns the loss before the update.
    pub fn step(&mut self, p: &mut [f64]) -> f64 {
        if !std::mem::take(&mut self.first) {
            self.tape.set_values(&self.vars, p);
            self.tape.replay().expect("W1b is a scalar program");
        }
        let g = self.loss.backward();
        w1b_update(p, &g.items(&self.vars));
        self.loss.item()
    }
}

/// One layer of scalar neurons reading parameters from `vars` at `k`.
fn scalar_layer<'t>(
    vars: &VarRange<'t, f64>,
    k: &mut usize,
    inputs: &[Var<'t, f64>],
    outs: usize,
    act: bool,
) -> Vec<Var<'t, f64>> {
    (0..outs)
        .map(|_| {
            let mut s = vars.get(*k + inputs.len());
            for (i, inp) in inputs.iter().enumerate() {
                s = s + vars.get(*k + i) * *inp;
            }
            *k += inputs.len() + 1;
            if act {
                s.tanh()
            } else {
                s
            }
        })
        .collect()
}

/// W1b in tensor mode: the same network with matrices.
pub struct W1bTensor {
    pub params: Vec<Tensor<f64>>,
    pub x: Tensor<f64>,
    pub t: Tensor<f64>,
}

impl W1bTensor {
    pub fn new() -> Self {
        let flat = w1b_params();
        let (xs, ts) = w1b_data();
        // Scalar order per layer: neuron by neuron, its weights then its
        // bias. Rebuild (out, in) weights and (out,) biases from it.
        let mut k = 0;
        let mut params = vec![];
        for (fan_in, fan_out) in [(2, 16), (16, 16), (16, 1)] {
            let mut w = vec![0.0; fan_out * fan_in];
            let mut b = vec![0.0; fan_out];
            for o in 0..fan_out {
                w[o * fan_in..(o + 1) * fan_in].copy_from_slice(&flat[k..k + fan_in]);
                b[o] = flat[k + fan_in];
                k += fan_in + 1;
            }
            params.push(Tensor::from_vec(w, [fan_out, fan_in]));
            params.push(Tensor::from_vec(b, [fan_out]));
        }
        W1bTensor {
            params,
            x: Tensor::from_vec(xs.iter().flatten().copied().collect(), [64, 2]),
            t: Tensor::from_vec(ts, [64, 1]),
        }
    }

    pub fn step(&mut self, tape: &Tape<f64>) -> f64 {
        tape.reset();
        let p: Vec<Var<'_, f64>> = self.params.iter().map(|t| tape.var(t.clone())).collect();
        let x = tape.constant(self.x.clone());
        let h1 = (x.matmul_t(p[0], false, true) + p[1]).tanh();
        let h2 = (h1.matmul_t(p[2], false, true) + p[3]).tanh();
        let y = h2.matmul_t(p[4], false, true) + p[5];
        let loss = (y - tape.constant(self.t.clone())).square().mean();
        let g = loss.backward();
        for (param, v) in self.params.iter_mut().zip(&p) {
            for (w, d) in param.data_mut().iter_mut().zip(g[*v].data()) {
                *w -= 0.05 * d;
            }
        }
        loss.item()
    }
}

/// W2: MLP 784 → H → H → 10 (ReLU), mean softmax cross-entropy, Adam.
pub struct W2 {
    pub params: ParamStore<f32>,
    pub model: Mlp<f32>,
    pub opt: Adam<f32>,
    pub x: Tensor<f32>,
    pub labels: Vec<usize>,
}

impl W2 {
    pub fn new(hidden: usize, batch: usize) -> Self {
        let mut params = ParamStore::new();
        let model = Mlp::new(
            &mut params,
            "mlp",
            &[784, hidden, hidden, 10],
            Activation::Relu,
            42,
        );
        let x = Tensor::rand_uniform([batch, 784], 0.0, 1.0, 7);
        let labels = (0..batch).map(|i| (i * 7 + 3) % 10).collect();
        W2 {
            params,
            model,
            opt: Adam::new(1e-3),
            x,
            labels,
        }
    }

    /// Weights in the model (for the GFLOP/s figure: 6·B·weights per step).
    pub fn weights(&self) -> usize {
        self.params.num_elements()
    }

    pub fn step(&mut self, tape: &Tape<f32>) -> f32 {
        tape.reset();
        let loss = cross_entropy(
            self.model
                .forward(&self.params, tape.constant(self.x.clone())),
            &self.labels,
        );
        self.opt.step(&mut self.params, &loss.backward());
        loss.item()
    }
}

/// W3: the extended Rosenbrock function Σ 100(x_{i+1} - x_i²)² + (1 - x_i)².
pub fn rosenbrock(x: Var<'_, f64>) -> Var<'_, f64> {
    let n = x.shape()[0];
    let (a, b) = (x.narrow(0, 0, n - 1), x.narrow(0, 1, n - 1));
    ((b - a.square()).square() * 100.0 + (a - 1.0).square()).sum()
}

/// W3's point: -1.2 at even positions, 1 at odd ones, n = 100.
pub fn w3_start() -> Tensor<f64> {
    Tensor::from_fn([100], |i| if i[0] % 2 == 0 { -1.2 } else { 1.0 })
}

/// W4: tanh(W x + b) with its fixed 100 × 100 weights, bias and point.
pub struct W4 {
    pub w: Tensor<f64>,
    pub b: Tensor<f64>,
    pub x: Tensor<f64>,
}

impl W4 {
    pub fn new() -> Self {
        W4 {
            w: Tensor::from_fn([100, 100], |i| ((i[0] + 2 * i[1]) as f64).sin() / 10.0),
            b: Tensor::from_fn([100, 1], |i| (i[0] as f64).cos() / 10.0),
            x: Tensor::from_fn([100, 1], |i| (i[0] as f64).sin() / 2.0),
        }
    }

    pub fn layer<'t>(&self, x: Var<'t, f64>) -> Var<'t, f64> {
        let t = x.tape();
        (t.constant(self.w.clone()).matmul(x) + t.constant(self.b.clone())).tanh()
    }
}

/// W6: one 3×3 convolution with padding 1, forward and both gradients:
/// `loss = Σ conv2d(x, w) · u` with `x` `(B, C, H, W)`, `w` `(O, C, 3, 3)`.
/// Values from closed forms of the flat index (the comparison script
/// builds the same arrays): x_i = sin(0.01·i), w_j = 0.1·cos(0.7·j),
/// u_k = cos(0.003·k).
pub struct W6<T: Element = f32> {
    pub x: Tensor<T>,
    pub w: Tensor<T>,
    pub u: Tensor<T>,
}

/// W6a, W6b and W6c: name, batch, channels in and out, image side.
pub const W6_CASES: [(&str, usize, usize, usize, usize); 3] = [
    ("W6a conv", 32, 1, 32, 28),
    ("W6b conv", 32, 32, 64, 14),
    ("W6c conv", 2, 3, 16, 320),
];

impl<T: Element> W6<T> {
    pub fn new(b: usize, c: usize, o: usize, side: usize) -> Self {
        let flat = |shape: [usize; 4], f: fn(f64) -> f64| {
            let n: usize = shape.iter().product();
            Tensor::from_vec((0..n).map(|i| T::lit(f(i as f64))).collect(), shape)
        };
        W6 {
            x: flat([b, c, side, side], |i| (0.01 * i).sin()),
            w: flat([o, c, 3, 3], |j| 0.1 * (0.7 * j).cos()),
            u: flat([b, o, side, side], |k| (0.003 * k).cos()),
        }
    }

    /// Multiply-adds of the forward and of each gradient.
    pub fn macs(&self) -> usize {
        let (xs, ws) = (self.x.shape(), self.w.shape());
        xs[0] * ws[0] * xs[2] * xs[3] * xs[1] * 9
    }

    /// Returns (loss, Σ ∂loss/∂x, Σ ∂loss/∂w).
    pub fn step(&self, tape: &Tape<T>) -> (f64, f64, f64) {
        tape.reset();
        let x = tape.var(self.x.clone());
        let w = tape.var(self.w.clone());
        let same = Conv2dGeom {
            padding: [1, 1],
            ..Default::default()
        };
        let loss = (x.conv2d(w, same) * tape.constant(self.u.clone())).sum();
        let g = loss.backward();
        let f = |v: T| v.to_f64().unwrap();
        let sum = |t: &Tensor<T>| t.data().iter().map(|&v| f(v)).sum::<f64>();
        (f(loss.item()), sum(&g[x]), sum(&g[w]))
    }
}

/// W6's check values (loss, Σ ∂/∂x, Σ ∂/∂w): the same computation in f64,
/// by tapegrad and by PyTorch (`benches/compare/reference.py` asserts its
/// f64 run agrees to 1e-9). The f32 runs agree to [`W6_TOL`].
pub const W6_CHECKS: [(f64, f64, f64); 3] = [
    (2.667098155305722, 20.21454095644261, 12.606448443298191),
    (
        -207.28559525166628,
        -16327.516509093548,
        -115.74851435483606,
    ),
    (141.39077855929392, 13.910600939413651, 4316.306618667137),
];

/// Relative tolerance of W6's f32 check values (sums of many products in
/// f32, some with cancellation: PyTorch's f32 Σ dw of W6b is 2.8e-3 off).
pub const W6_TOL: f64 = 5e-3;

/// Asserts a W6 result against its check values.
pub fn check_w6(case: usize, got: (f64, f64, f64)) {
    let want = W6_CHECKS[case];
    for (what, g, w) in [
        ("loss", got.0, want.0),
        ("Σ dx", got.1, want.1),
        ("Σ dw", got.2, want.2),
    ] {
        assert!(
            (g - w).abs() <= W6_TOL * w.abs(),
            "{} {what}: {g} vs {w}",
            W6_CASES[case].0
        );
    }
}

/// W7: one training step of the MNIST CNN (`examples/mnist_cnn.rs`) at
/// batch 64: forward in training mode, cross-entropy, backward, Adam.
pub struct W7 {
    pub params: ParamStore<f32>,
    pub model: tapegrad::nn::Sequential<f32>,
    pub opt: Adam<f32>,
    pub x: Tensor<f32>,
    pub labels: Vec<usize>,
}

impl W7 {
    pub fn new() -> Self {
        let mut params = ParamStore::new();
        let model = cnn::mnist_cnn(&mut params, 42);
        let n = 64 * 28 * 28;
        let x = Tensor::from_vec(
            (0..n)
                .map(|i| (0.5 + 0.5 * (0.01 * i as f64).sin()) as f32)
                .collect(),
            [64, 1, 28, 28],
        );
        W7 {
            params,
            model,
            opt: Adam::new(1e-3),
            x,
            labels: (0..64).map(|i| (i * 7 + 3) % 10).collect(),
        }
    }

    pub fn step(&mut self, tape: &Tape<f32>) -> f32 {
        tape.reset();
        let logits = self
            .model
            .forward(&self.params, tape.constant(self.x.clone()));
        let loss = cross_entropy(logits, &self.labels);
        self.opt.step(&mut self.params, &loss.backward());
        loss.item()
    }
}

/// W7's first loss (before any update): the network's initial loss on its
/// fixed batch is near ln 10 (random labels, small initial logits).
pub fn check_w7(first: f32) {
    assert!(
        first.is_finite() && (first - 10f32.ln()).abs() < 0.5,
        "W7: initial loss {first}"
    );
}
