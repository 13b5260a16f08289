"""The performance issue's workloads in PyTorch (eager, and torch.func for
W3/W4) and JAX (under jit). Prints one JSON object per workload and engine:
{"engine", "workload", "ms"} with the median of repeated runs. Run through
run.sh, which sets the thread count and alternates with tapegrad."""
import json
import math
import os
import sys
import time

QUICK = "--quick" in sys.argv
ENGINES = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--engine=")] or ["torch", "jax"]


def median_ms(f, runs):
    times = []
    for _ in range(3 if QUICK else runs):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def emit(engine, workload, ms, **extra):
    print(json.dumps({"engine": engine, "workload": workload, "ms": round(ms, 5), **extra}), flush=True)


W1_N = 100_000
W1_W = [0.5 + 0.001 * (i % 100) for i in range(W1_N)]
W1_B = [0.01 * (i % 7) for i in range(W1_N)]
W1B_XS = [(math.cos(0.1 * k), math.sin(0.3 * k)) for k in range(64)]
W1B_TS = [math.sin(x0) * math.cos(x1) for x0, x1 in W1B_XS]
W1B_P = [0.1 * math.sin(j) for j in range(16 * 3 + 16 * 17 + 17)]


def w1b_layers():
    """(W (out, in), b (out,)) per layer from the flat declaration order."""
    k, out = 0, []
    for fan_in, fan_out in [(2, 16), (16, 16), (16, 1)]:
        w, b = [], []
        for _ in range(fan_out):
            w.append(W1B_P[k:k + fan_in])
            b.append(W1B_P[k + fan_in])
            k += fan_in + 1
        out.append((w, b))
    return out


def run_torch():
    import torch
    import torch.func as tf
    torch.set_num_threads(int(os.environ.get("COMPARE_THREADS", "2")))
    f64 = torch.float64

    def w1():
        x = torch.tensor(0.5, dtype=f64, requires_grad=True)
        w = [torch.tensor(v, dtype=f64, requires_grad=True) for v in W1_W]
        b = [torch.tensor(v, dtype=f64, requires_grad=True) for v in W1_B]
        y = x
        for i in range(W1_N):
            y = torch.tanh(y * w[i] + b[i])
        y.backward()
        return y.item()
    emit("pytorch", "W1", median_ms(w1, 3), ns_per_op_node=None)

    layers = [(torch.tensor(w, dtype=f64, requires_grad=True), torch.tensor(b, dtype=f64, requires_grad=True)) for w, b in w1b_layers()]
    X = torch.tensor(W1B_XS, dtype=f64)
    T = torch.tensor(W1B_TS, dtype=f64).reshape(64, 1)

    def w1b_tensor():
        h = X
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if i < 2:
                h = torch.tanh(h)
        loss = ((h - T) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for w, b in layers:
                w -= 0.05 * w.grad
                b -= 0.05 * b.grad
                w.grad = None
                b.grad = None
    emit("pytorch", "W1b tensor", median_ms(w1b_tensor, 200))

    torch.manual_seed(0)
    for name, hidden, batch in [("W2 small", 64, 32), ("W2 medium", 256, 128), ("W2 large", 1024, 512)]:
        model = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.rand(batch, 784)
        y = torch.randint(0, 10, (batch,))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        for _ in range(10):
            step()
        emit("pytorch", name, median_ms(step, 50))

    run_torch_cnn(torch)

    def rosen(x):
        return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
    x0 = torch.tensor([-1.2 if i % 2 == 0 else 1.0 for i in range(100)], dtype=f64)
    ones = torch.ones(100, dtype=f64)
    hess = tf.hessian(rosen)
    emit("pytorch", "W3 hessian", median_ms(lambda: hess(x0), 50))
    emit("pytorch", "W3 hvp", median_ms(lambda: tf.jvp(tf.grad(rosen), (x0,), (ones,)), 200))
    i = torch.arange(100, dtype=f64)
    W = torch.sin(i[:, None] + 2 * i[None, :]) / 10
    bb = torch.cos(i) / 10
    xx = torch.sin(i) / 2
    jac = tf.jacrev(lambda x: torch.tanh(W @ x + bb))
    emit("pytorch", "W4 jacobian", median_ms(lambda: jac(xx), 50))


# W6: name, batch, channels in and out, image side; check values (loss,
# sum dx, sum dw) as in benches/common/workloads.rs (W6_CHECKS).
W6_CASES = [("W6a conv", 32, 1, 32, 28), ("W6b conv", 32, 32, 64, 14), ("W6c conv", 2, 3, 16, 320)]
W6_CHECKS = [
    (2.667098155305722, 20.21454095644261, 12.606448443298191),
    (-207.28559525166628, -16327.516509093548, -115.74851435483606),
    (141.39077855929392, 13.910600939413651, 4316.306618667137),
]


def run_torch_cnn(torch):
    F = torch.nn.functional

    def flat(shape, f, dtype):
        n = math.prod(shape)
        return f(torch.arange(n, dtype=torch.float64)).to(dtype).reshape(shape)

    for (name, b, c, o, side), want in zip(W6_CASES, W6_CHECKS):
        for dtype in (torch.float64, torch.float32):
            x = flat((b, c, side, side), lambda i: torch.sin(0.01 * i), dtype).requires_grad_()
            w = flat((o, c, 3, 3), lambda j: 0.1 * torch.cos(0.7 * j), dtype).requires_grad_()
            u = flat((b, o, side, side), lambda k: torch.cos(0.003 * k), dtype)

            def step():
                x.grad = w.grad = None
                loss = (F.conv2d(x, w, padding=1) * u).sum()
                loss.backward()
                return loss

            loss = step()
            got = (loss.item(), x.grad.double().sum().item(), w.grad.double().sum().item())
            tol = 1e-9 if dtype == torch.float64 else 5e-3
            for g, v in zip(got, want):
                assert abs(g - v) <= tol * abs(v), (name, dtype, got, want)
        emit("pytorch", name, median_ms(step, 30))

    # W7: the MNIST CNN of examples/common/cnn.rs, one Adam step at batch 64.
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(1), nn.Linear(64 * 3 * 3, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (0.5 + 0.5 * torch.sin(0.01 * torch.arange(64 * 784, dtype=torch.float64))).float().reshape(64, 1, 28, 28)
    y = torch.tensor([(i * 7 + 3) % 10 for i in range(64)])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    first = step()
    assert abs(first - math.log(10)) < 0.5, first
    emit("pytorch", "W7 cnn step", median_ms(step, 30))


def run_jax():
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    w = jnp.array(W1_W)
    b = jnp.array(W1_B)

    @jax.jit
    def w1(x, w, b):
        def loss(x, w, b):
            def body(y, wb):
                return jnp.tanh(y * wb[0] + wb[1]), None
            y, _ = jax.lax.scan(body, x, (w, b))
            return y
        return jax.grad(loss, argnums=(0, 1, 2))(x, w, b)
    jax.block_until_ready(w1(0.5, w, b))
    emit("jax", "W1", median_ms(lambda: jax.block_until_ready(w1(0.5, w, b)), 20))

    # W1r: the traced and compiled W1 called with new arguments, w scaled
    # by 1 + 0.001 k for k = 1..100 (tapegrad replays its recording).
    scaled = [w * (1.0 + 0.001 * k) for k in range(1, 101)]
    jax.block_until_ready(scaled)

    def w1r():
        for wk in scaled:
            jax.block_until_ready(w1(0.5, wk, b))
    emit("jax", "W1r", median_ms(w1r, 5) / 100)

    layers = [(jnp.array(w_), jnp.array(b_)) for w_, b_ in w1b_layers()]
    X = jnp.array(W1B_XS)
    T = jnp.array(W1B_TS).reshape(64, 1)

    @jax.jit
    def w1b_step(layers):
        def loss(layers):
            h = X
            for i, (w_, b_) in enumerate(layers):
                h = h @ w_.T + b_
                if i < 2:
                    h = jnp.tanh(h)
            return ((h - T) ** 2).mean()
        g = jax.grad(loss)(layers)
        return jax.tree_util.tree_map(lambda p, d: p - 0.05 * d, layers, g)
    state = {"p": w1b_step(layers)}

    def w1b():
        state["p"] = jax.block_until_ready(w1b_step(state["p"]))
    emit("jax", "W1b tensor", median_ms(w1b, 200))

    key = jax.random.PRNGKey(0)
    for name, hidden, batch in [("W2 small", 64, 32), ("W2 medium", 256, 128), ("W2 large", 1024, 512)]:
        sizes = [784, hidden, hidden, 10]
        keys = jax.random.split(key, 8)
        params = [(jax.random.uniform(keys[2 * i], (sizes[i + 1], sizes[i]), jnp.float32, -0.05, 0.05), jnp.zeros(sizes[i + 1], jnp.float32)) for i in range(3)]
        m = jax.tree_util.tree_map(jnp.zeros_like, params)
        v = jax.tree_util.tree_map(jnp.zeros_like, params)
        x = jax.random.uniform(keys[6], (batch, 784), jnp.float32)
        y = jax.random.randint(keys[7], (batch,), 0, 10)

        @jax.jit
        def step(params, m, v, t):
            def loss(params):
                h = x
                for i, (w_, b_) in enumerate(params):
                    h = h @ w_.T + b_
                    if i < 2:
                        h = jax.nn.relu(h)
                logp = jax.nn.log_softmax(h)
                return -jnp.mean(logp[jnp.arange(batch), y])
            g = jax.grad(loss)(params)
            m = jax.tree_util.tree_map(lambda a, b_: 0.9 * a + 0.1 * b_, m, g)
            v = jax.tree_util.tree_map(lambda a, b_: 0.999 * a + 0.001 * b_ * b_, v, g)
            mh = jax.tree_util.tree_map(lambda a: a / (1 - 0.9 ** t), m)
            vh = jax.tree_util.tree_map(lambda a: a / (1 - 0.999 ** t), v)
            params = jax.tree_util.tree_map(lambda p, a, b_: p - 1e-3 * a / (jnp.sqrt(b_) + 1e-8), params, mh, vh)
            return params, m, v
        st = {"s": (params, m, v), "t": 1.0}

        def run():
            st["s"] = jax.block_until_ready(step(*st["s"], st["t"]))
            st["t"] += 1.0
        for _ in range(10):
            run()
        emit("jax", name, median_ms(run, 50))

    def rosen(x):
        return jnp.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    x0 = jnp.array([-1.2 if i % 2 == 0 else 1.0 for i in range(100)])
    ones = jnp.ones(100)
    hess = jax.jit(jax.hessian(rosen))
    hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(rosen), (x,), (v,))[1])
    jax.block_until_ready(hess(x0))
    jax.block_until_ready(hvp(x0, ones))
    emit("jax", "W3 hessian", median_ms(lambda: jax.block_until_ready(hess(x0)), 200))
    emit("jax", "W3 hvp", median_ms(lambda: jax.block_until_ready(hvp(x0, ones)), 2000))
    i = jnp.arange(100.0)
    W = jnp.sin(i[:, None] + 2 * i[None, :]) / 10
    bb = jnp.cos(i) / 10
    xx = jnp.sin(i) / 2
    jac = jax.jit(jax.jacrev(lambda x: jnp.tanh(W @ x + bb)))
    jax.block_until_ready(jac(xx))
    emit("jax", "W4 jacobian", median_ms(lambda: jax.block_until_ready(jac(xx)), 200))


def gemm_peak():
    import numpy as np
    a = np.random.rand(1024, 1024).astype(np.float32)
    b = np.random.rand(1024, 1024).astype(np.float32)
    a @ b
    ms = median_ms(lambda: a @ b, 20)
    emit("numpy", "f32 GEMM 1024", ms, gflops=round(2 * 1024 ** 3 / (ms * 1e6), 1))


if __name__ == "__main__":
    gemm_peak()
    if "torch" in ENGINES:
        run_torch()
    if "jax" in ENGINES:
        run_jax()
