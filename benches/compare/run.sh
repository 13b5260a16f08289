#!/usr/bin/env bash
# Side-by-side timing of the performance issue's workloads: tapegrad,
# PyTorch (eager; torch.func for W3/W4) and JAX (jit), on this machine,
# with the same number of threads, alternating engines over ROUNDS rounds.
# Not part of CI. Prints one line per workload: medians and ratios. The
# "W1 by hand" line is not an engine: W1 as two plain Rust loops with no
# tape, the floor the system's tanh sets (docs/performance.md). W1r is W1
# recorded once and replayed with new w (JAX: the jitted W1 called with
# new arguments); "W1r flushed" runs it with subnormals flushed to zero,
# as XLA's CPU backend always does. "W1b scalar replayed" is W1b's scalar
# network recorded once and replayed each step (tapegrad only; JAX's W1b
# is jitted once anyway).
#
#   benches/compare/run.sh            # PyTorch and JAX
#   ENGINES=jax benches/compare/run.sh
#   FEATURES=blas OPENBLAS_CORETYPE=SkylakeX benches/compare/run.sh
#                                     # tapegrad with OpenBLAS (see src/tensor/blas.rs)
#   THREADS=1 benches/compare/run.sh  # every engine on one thread (default 2)
#
# PyTorch from PyPI is a large download (it brings CUDA libraries even on
# a CPU-only machine); ENGINES=jax skips it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${ROUNDS:-3}"
ENGINES="${ENGINES:-torch jax}"
VENV="${VENV:-target/compare-venv}"
THREADS="${THREADS:-2}"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
export TAPEGRAD_THREADS=$THREADS COMPARE_THREADS=$THREADS
multi=$([ "$THREADS" -gt 1 ] && echo true || echo false)
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=$multi intra_op_parallelism_threads=$THREADS"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    pkgs="numpy"
    for e in $ENGINES; do pkgs="$pkgs $([ "$e" = torch ] && echo torch || echo jax)"; done
    "$VENV/bin/pip" install --quiet $pkgs
fi
cargo build --release --example workload_times ${FEATURES:+--features "$FEATURES"} >/dev/null

out=$(mktemp)
engine_args=""
for e in $ENGINES; do engine_args="$engine_args --engine=$e"; done
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    ./target/release/examples/workload_times | sed 's/^{/{"engine": "tapegrad", /' >>"$out"
    "$VENV/bin/python" benches/compare/reference.py $engine_args >>"$out"
done
"$VENV/bin/python" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["workload"], r["engine"]), []).append(r["ms"])
med = {k: statistics.median(v) for k, v in by.items()}
for (w, e), ms in sorted(med.items()):
    if e == "numpy":
        print(f"{w:<14} numpy {ms:.3f} ms = {2 * 1024**3 / (ms * 1e6):.1f} GFLOP/s (the f32 GEMM roofline)")
workloads = sorted({w for w, e in med if e == "tapegrad"})
print(f"{'workload':<14} {'tapegrad ms':>12} {'pytorch ms':>11} {'jax ms':>9} {'tg/pt':>7} {'tg/jax':>7}")
for w in workloads:
    t, p, j = med.get((w, "tapegrad")), med.get((w, "pytorch")), med.get((w, "jax"))
    f = lambda v: f"{v:.4f}" if v is not None else "-"
    r = lambda a, b: f"{a / b:.2f}" if a is not None and b else "-"
    print(f"{w:<14} {f(t):>12} {f(p):>11} {f(j):>9} {r(t, p):>7} {r(t, j):>7}")
PY
rm -f "$out"
