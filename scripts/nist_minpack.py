"""MINPACK's lmder (through SciPy's least_squares(method="lm"), with
Jacobians from JAX) on the 27 NIST StRD problems from both starts, at the
tolerances tapegrad's LevenbergMarquardt uses by default (f_tol = x_tol =
1e-14; g_tol 1e-15, the smallest SciPy accepts). Prints a Markdown table:
problem, start, correct digits (worst parameter), residual evaluations,
Jacobian evaluations, status. Used for docs/solvers.md.

    target/compare-venv/bin/python scripts/nist_minpack.py
"""
import json, math, os, sys

import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpy as np
from scipy.optimize import least_squares

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "nist-strd")

def lanczos(b, x):
    return b[0]*jnp.exp(-b[1]*x) + b[2]*jnp.exp(-b[3]*x) + b[4]*jnp.exp(-b[5]*x)

def gauss(b, x):
    return (b[0]*jnp.exp(-b[1]*x) + b[2]*jnp.exp(-((x-b[3])/b[4])**2)
            + b[5]*jnp.exp(-((x-b[6])/b[7])**2))

def rational_cubic(b, x):
    return (b[0] + b[1]*x + b[2]*x**2 + b[3]*x**3) / (1 + b[4]*x + b[5]*x**2 + b[6]*x**3)

def enso(b, x):
    w = 2*jnp.pi*x
    return (b[0] + b[1]*jnp.cos(w/12) + b[2]*jnp.sin(w/12) + b[4]*jnp.cos(w/b[3])
            + b[5]*jnp.sin(w/b[3]) + b[7]*jnp.cos(w/b[6]) + b[8]*jnp.sin(w/b[6]))

MODELS = {
    "Misra1a": lambda b, x: b[0]*(1 - jnp.exp(-b[1]*x)),
    "Chwirut2": lambda b, x: jnp.exp(-b[0]*x)/(b[1] + b[2]*x),
    "Chwirut1": lambda b, x: jnp.exp(-b[0]*x)/(b[1] + b[2]*x),
    "Lanczos3": lanczos, "Gauss1": gauss, "Gauss2": gauss,
    "DanWood": lambda b, x: b[0]*x**b[1],
    "Misra1b": lambda b, x: b[0]*(1 - (1 + b[1]*x/2)**-2),
    "Kirby2": lambda b, x: (b[0] + b[1]*x + b[2]*x**2)/(1 + b[3]*x + b[4]*x**2),
    "Hahn1": rational_cubic,
    "Nelson": lambda b, x: b[0] - b[1]*x[0]*jnp.exp(-b[2]*x[1]),
    "MGH17": lambda b, x: b[0] + b[1]*jnp.exp(-x*b[3]) + b[2]*jnp.exp(-x*b[4]),
    "Lanczos1": lanczos, "Lanczos2": lanczos, "Gauss3": gauss,
    "Misra1c": lambda b, x: b[0]*(1 - (1 + 2*b[1]*x)**-0.5),
    "Misra1d": lambda b, x: b[0]*b[1]*x/(1 + b[1]*x),
    "Roszman1": lambda b, x: b[0] - b[1]*x - jnp.arctan(b[2]/(x - b[3]))/jnp.pi,
    "ENSO": enso,
    "MGH09": lambda b, x: b[0]*(x**2 + x*b[1])/(x**2 + x*b[2] + b[3]),
    "Thurber": rational_cubic,
    "BoxBOD": lambda b, x: b[0]*(1 - jnp.exp(-b[1]*x)),
    "Rat42": lambda b, x: b[0]/(1 + jnp.exp(b[1] - b[2]*x)),
    "MGH10": lambda b, x: b[0]*jnp.exp(b[1]/(x + b[2])),
    "Eckerle4": lambda b, x: (b[0]/b[1])*jnp.exp(-0.5*((x - b[2])/b[1])**2),
    "Rat43": lambda b, x: b[0]/(1 + jnp.exp(b[1] - b[2]*x))**(1/b[3]),
    "Bennett5": lambda b, x: b[0]*(b[1] + x)**(-1/b[2]),
}

def digits(got, want):
    rel = abs((got - want)/want)
    return 15.0 if rel == 0 else min(15.0, -math.log10(rel))

print("| problem | start | digits (worst parameter) | digits (RSS) | residual evaluations | Jacobians | status |")
print("|---|---|---|---|---|---|---|")
total = 0
for name, model in MODELS.items():
    d = json.load(open(os.path.join(DATA, name + ".json")))
    if "x" in d:
        x = jnp.array(d["x"])
    else:
        x = jnp.array([d["x1"], d["x2"]])
    y = np.array(d["y"])
    if name == "Nelson":
        y = np.log(y)
    y = jnp.array(y)
    fun = jax.jit(lambda b: model(b, x) - y)
    jac = jax.jit(jax.jacfwd(lambda b: model(b, x) - y))
    for k in (1, 2):
        r = least_squares(lambda b: np.asarray(fun(jnp.array(b))), np.array(d["start%d" % k], float),
                          jac=lambda b: np.asarray(jac(jnp.array(b))), method="lm",
                          ftol=1e-14, xtol=1e-14, gtol=1e-15, max_nfev=100000)
        worst = min(digits(g, w) for g, w in zip(r.x, d["certified"]["params"]))
        rss = 2*r.cost
        rd = 15.0 if abs(rss - d["certified"]["rss"]) < 1e-20 else digits(rss, d["certified"]["rss"])
        total += r.nfev
        print(f"| {name} | {k} | {worst:.1f} | {rd:.1f} | {r.nfev} | {r.njev} | {r.status} |")
print(f"\ntotal residual evaluations: {total}", file=sys.stderr)
