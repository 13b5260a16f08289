//! The chain rule made visible: the chapter's network traced step by step,
//! path products, the explain tool, and Graphviz output.

use tapegrad::trace::expr::{explain, parse};
use tapegrad::trace::{to_dot, Local};
use tapegrad::{Tape, Var};

/// The chapter's 2-layer regression network on one sample, every weight a
/// named scalar: z1_m = Σ_n w1_nm x_n, a1_m = ReLU(z1_m), z2 = Σ_m w2_m a1_m,
/// y = Identity(z2), J = (t - y)².
struct Chapter<'t> {
    x: [Var<'t, f64>; 2],
    w1: [[Var<'t, f64>; 2]; 2],
    w2: [Var<'t, f64>; 2],
    /// The products w1_nm·x_n and w2_m·a1_m, summed into z1_m and z2.
    p1: [[Var<'t, f64>; 2]; 2],
    p2: [Var<'t, f64>; 2],
    z1: [Var<'t, f64>; 2],
    a1: [Var<'t, f64>; 2],
    z2: Var<'t, f64>,
    y: Var<'t, f64>,
    e: Var<'t, f64>,
    j: Var<'t, f64>,
}

const X: [f64; 2] = [0.5, -1.0];
const W1: [[f64; 2]; 2] = [[0.8, -0.4], [0.3, 0.6]]; // W1[n][m]
const W2: [f64; 2] = [1.5, -0.7];
const T: f64 = 0.2;

fn chapter(tape: &Tape<f64>) -> Chapter<'_> {
    let x = [
        tape.constant(X[0]).named("x_1"),
        tape.constant(X[1]).named("x_2"),
    ];
    let w1 = [
        [
            tape.var(W1[0][0]).named("w1_11"),
            tape.var(W1[0][1]).named("w1_12"),
        ],
        [
            tape.var(W1[1][0]).named("w1_21"),
            tape.var(W1[1][1]).named("w1_22"),
        ],
    ];
    let w2 = [tape.var(W2[0]).named("w2_1"), tape.var(W2[1]).named("w2_2")];
    let p1 = [0, 1].map(|n| {
        [0, 1].map(|m| (w1[n][m] * x[n]).named(&format!("w1_{}{}*x_{}", n + 1, m + 1, n + 1)))
    });
    let z1 = [0, 1].map(|m| (p1[0][m] + p1[1][m]).named(&format!("z1_{}", m + 1)));
    let a1 = [0, 1].map(|m| z1[m].relu().named(&format!("a1_{}", m + 1)));
    let p2 = [0, 1].map(|m| (w2[m] * a1[m]).named(&format!("w2_{}*a1_{}", m + 1, m + 1)));
    let z2 = (p2[0] + p2[1]).named("z2");
    let y = (z2 * 1.0).named("y");
    let e = (T - y).named("e");
    let j = e.square().named("J");
    Chapter {
        x,
        w1,
        w2,
        p1,
        p2,
        z1,
        a1,
        z2,
        y,
        e,
        j,
    }
}

#[test]
fn the_chapter_network_traced_number_for_number() {
    let tape = Tape::new();
    let c = chapter(&tape);
    let trace = c.j.backward_traced();
    // Hand computation.
    let z1: Vec<f64> = (0..2).map(|m| W1[0][m] * X[0] + W1[1][m] * X[1]).collect();
    let relu_d: Vec<f64> = z1
        .iter()
        .map(|&z| if z > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let a1: Vec<f64> = z1.iter().map(|&z| z.max(0.0)).collect();
    let y = W2[0] * a1[0] + W2[1] * a1[1];
    let dj_dy = -2.0 * (T - y);
    assert_eq!(c.y.item(), y);

    // Order: the loss first, then the output neuron, then the hidden ones.
    let order: Vec<&str> = trace.steps.iter().map(|s| s.label.as_str()).collect();
    let pos = |l: &str| {
        order
            .iter()
            .position(|o| *o == l)
            .unwrap_or_else(|| panic!("{l} not in {order:?}"))
    };
    assert_eq!(order[0], "J");
    assert!(pos("J") < pos("e") && pos("e") < pos("y") && pos("y") < pos("z2"));
    assert!(
        pos("z2") < pos("a1_1")
            && pos("a1_1") < pos("z1_1")
            && pos("z2") < pos("a1_2")
            && pos("a1_2") < pos("z1_2")
    );

    let global = |v: Var<'_, f64>| trace.step(v).unwrap().global.item();
    let local = |of: Var<'_, f64>, wrt: Var<'_, f64>| {
        let step = trace.step(of).unwrap();
        let input = step.inputs.iter().find(|i| i.node == wrt.index()).unwrap();
        match &input.local {
            Local::Scalar(v) => *v,
            other => panic!("expected a scalar, got {other:?}"),
        }
    };
    assert_eq!(global(c.j), 1.0);
    // J = e², e = t - y: dJ/de = 2e, de/dy = -1, so dJ/dy = -2(t - y).
    assert!((local(c.j, c.e) - 2.0 * (T - y)).abs() < 1e-15, "dJ/de");
    assert_eq!(local(c.e, c.y), -1.0, "de/dy");
    assert!((global(c.y) - dj_dy).abs() < 1e-15, "dJ/dy = -2(t - y)");
    assert_eq!(local(c.y, c.z2), 1.0, "dy/dz2 = Identity' = 1");
    for m in 0..2 {
        // z2 = Σ_m w2_m a1_m: through the sum (1) and the product (w2_m).
        let dz2_da1 = local(c.z2, c.p2[m]) * local(c.p2[m], c.a1[m]);
        assert_eq!(dz2_da1, W2[m], "dz2/da1_m = w2_m");
        assert_eq!(
            local(c.a1[m], c.z1[m]),
            relu_d[m],
            "da1_m/dz1_m = ReLU'(z1_m)"
        );
        assert!((global(c.w2[m]) - dj_dy * a1[m]).abs() < 1e-15);
        for (n, &x_n) in X.iter().enumerate() {
            let dz1_dw1 = local(c.z1[m], c.p1[n][m]) * local(c.p1[n][m], c.w1[n][m]);
            assert_eq!(dz1_dw1, x_n, "dz1_m/dw1_nm = x_n");
            // dJ/dw1_nm = dJ/dy · dy/dz2 · dz2/da1_m · da1_m/dz1_m · dz1_m/dw1_nm
            let want = dj_dy * 1.0 * W2[m] * relu_d[m] * x_n;
            assert!(
                (global(c.w1[n][m]) - want).abs() < 1e-15,
                "w1_{}{}",
                n + 1,
                m + 1
            );
        }
    }
    let _ = c.x;
    let shown = trace.to_string();
    assert!(shown.contains("[1] J = "), "{shown}");
    let md = trace.to_markdown();
    assert!(md.contains("$\\frac{\\partial J}{\\partial e} = "), "{md}");
    assert!(md.contains("$w1_{11}$"), "{md}");
}

#[test]
fn path_products_sum_to_the_gradient() {
    let tape = Tape::new();
    let c = chapter(&tape);
    let trace = c.j.backward_traced();
    let p = trace.paths_to(c.w1[0][0]).unwrap();
    assert_eq!(p.paths.len(), 1);
    assert_eq!(
        p.paths[0].len(),
        8,
        "J←e←y←z2←(w2_1·a1_1)←a1_1←z1_1←(w1_11·x_1)←w1_11"
    );
    assert!((p.total() - p.gradient).abs() < 1e-15);
    // A leaf reached along several paths: x in x·x + sin(x)·x.
    let tape = Tape::<f64>::new();
    let x = tape.var(0.7).named("x");
    let f = (x * x + x.sin() * x).named("f");
    let trace = f.backward_traced();
    let p = trace.paths_to(x).unwrap();
    assert_eq!(p.paths.len(), 4);
    assert!((p.total() - f.backward()[x].item()).abs() < 1e-15);
    assert!(
        trace.step(x).unwrap().received == 4,
        "x receives four contributions"
    );
    let shown = p.to_string();
    assert!(
        shown.starts_with("df/dx as a sum over 4 path(s)"),
        "{shown}"
    );
}

#[test]
fn tensor_nodes_show_small_jacobians_and_summarise_large_ones() {
    let tape = Tape::<f64>::new();
    let x = tape
        .var(tapegrad::Tensor::from_vec(vec![1.0, 2.0], [2]))
        .named("x");
    let y = x.softmax(0).named("p");
    let j = (y * tape.constant(tapegrad::Tensor::from_vec(vec![1.0, 0.0], [2])))
        .sum()
        .named("J");
    let trace = j.backward_traced();
    let softmax_step = trace.step(y).unwrap();
    match &softmax_step.inputs[0].local {
        Local::Jacobian(m) => {
            let p = y.value();
            let (p0, p1) = (p.data()[0], p.data()[1]);
            assert_eq!(m.shape(), &[2, 2]);
            assert!(
                (m.get(&[0, 0]) - p0 * (1.0 - p0)).abs() < 1e-15
                    && (m.get(&[0, 1]) + p0 * p1).abs() < 1e-15
            );
        }
        other => panic!("{other:?}"),
    }
    let big = tape.var(tapegrad::Tensor::ones([10, 10]));
    let s = big.tanh().sum();
    let t = s.backward_traced();
    assert!(matches!(
        t.steps[1].inputs[0].local,
        Local::Summary {
            shape: (100, 100),
            ..
        }
    ));
}

fn snapshot(name: &str, actual: &str) {
    let path = format!("{}/tests/snapshots/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {path}; run with UPDATE_SNAPSHOTS=1"));
    assert_eq!(
        actual, expected,
        "explain output changed; review and update with UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn explain_output_snapshots() {
    let e = explain("tanh(w*x + b)", &[("x", 1.0), ("w", 0.5), ("b", -0.2)]).unwrap();
    assert!((e.gradient("w").unwrap() - 0.9151369618266293).abs() < 1e-15);
    snapshot("explain_neuron.txt", &e.to_string());
    let e = explain(
        "sigmoid(a*b) + a^2 - relu(-b)/2",
        &[("a", 0.3), ("b", -2.0)],
    )
    .unwrap();
    snapshot("explain_two_paths.txt", &e.to_string());
    let e = explain(
        "exp(log(x)) * sqrt(abs(y)) + leaky_relu(x - y) * cos(sin(x))",
        &[("x", 1.5), ("y", -4.0)],
    )
    .unwrap();
    let (x, y) = (1.5f64, -4.0f64);
    let want_dx =
        y.abs().sqrt() + (x - y) * 0.0 + ((x - y) * (-(x.sin()).sin() * x.cos())) + x.sin().cos();
    assert!(
        (e.gradient("x").unwrap() - want_dx).abs() < 1e-12,
        "{} vs {want_dx}",
        e.gradient("x").unwrap()
    );
    snapshot("explain_functions.txt", &e.to_string());
}

/// Every function the language names is the engine's op: its explained
/// derivative matches a central difference of the explained value.
#[test]
fn every_function_explains_with_the_right_derivative() {
    for f in tapegrad::trace::expr::FUNCTIONS {
        let src = format!("{f}(x)");
        let at = |x: f64| explain(&src, &[("x", x)]).unwrap();
        let (x, h) = (0.3, 1e-6);
        let value = |x: f64| at(x).forward.last().unwrap().1;
        let fd = (value(x + h) - value(x - h)) / (2.0 * h);
        let g = at(x).gradient("x").unwrap();
        assert!(
            (g - fd).abs() < 1e-7,
            "{f}: explained {g}, finite difference {fd}"
        );
    }
}

#[test]
fn parse_errors_point_at_the_column() {
    let cases = [
        ("tanh(w*x + b", "expected `)` (column 13)\n  tanh(w*x + b\n              ^"),
        ("w * * x", "expected a number, a variable, a function or `(`, found `*` (column 5)\n  w * * x\n      ^"),
        ("foo(x)", "unknown function `foo` (known: exp, log, sqrt, abs, sin, cos, tanh, sigmoid, relu, leaky_relu, atan, asin, acos, sinh, cosh, asinh, log1p, expm1, erf, softplus, silu, elu) (column 1)\n  foo(x)\n  ^"),
        ("x + 2)", "unmatched `)` (column 6)\n  x + 2)\n       ^"),
        ("x $ y", "unexpected character `$` (column 3)\n  x $ y\n    ^"),
        ("tanh x", "expected `(` after the function `tanh` (column 6)\n  tanh x\n       ^"),
    ];
    for (src, want) in cases {
        assert_eq!(parse(src).unwrap_err().to_string(), want, "{src}");
    }
    let e = explain("w * q", &[("w", 1.0)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown variable `q`: give it a value, as in q=1.5 (column 5)\n  w * q\n      ^"
    );
}

#[test]
fn dot_output_is_valid_graphviz() {
    let tape = Tape::new();
    let c = chapter(&tape);
    let grads = c.j.backward();
    let dot = to_dot(c.j, Some(&grads));
    // Structure: one digraph, balanced braces, every edge between declared nodes.
    assert!(dot.starts_with("digraph tapegrad {") && dot.trim_end().ends_with('}'));
    let declared: Vec<&str> = dot
        .lines()
        .filter(|l| l.contains("[shape="))
        .map(|l| l.trim().split(' ').next().unwrap())
        .collect();
    for edge in dot.lines().filter(|l| l.contains("->")) {
        let (a, b) = edge
            .trim()
            .trim_end_matches(';')
            .split_once(" -> ")
            .unwrap();
        assert!(
            declared.contains(&a) && declared.contains(&b),
            "edge {edge} uses an undeclared node"
        );
    }
    assert!(dot.contains("{ w1_11 | value 0.8 | grad "), "{dot}");
    // With Graphviz installed, `dot` itself must accept it.
    if let Ok(mut child) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "dot rejected the graph: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
