//! Explains the chain rule on your own expression: records it, prints the
//! forward values, every backward step (local derivative, global
//! derivative, what is passed back) and each variable's gradient.
//!
//! ```text
//! cargo run --example explain -- "tanh(w*x + b)" x=1 w=0.5 b=-0.2
//! cargo run --example explain -- "sigmoid(a*b) + a^2" a=0.3 b=-2 --dot graph.dot
//! dot -Tsvg graph.dot -o graph.svg      # with Graphviz installed
//! cargo run --example explain -- "tanh(w*x + b)" x=1 w=0.5 b=-0.2 --html neuron.html
//! ```
//!
//! `--html FILE` writes one self-contained page (no network) to open in a
//! browser and step through the backward pass node by node.

use tapegrad::trace::expr::{explain, FUNCTIONS};

fn usage_text() -> String {
    format!(
        "usage: explain \"EXPRESSION\" name=value ... [--dot FILE] [--html FILE] [--paths VARIABLE]\n\n\
         EXPRESSION uses numbers, variables, + - * / ^, parentheses and the functions\n  {}",
        FUNCTIONS.join(" ")
    )
}

fn usage() -> ! {
    eprintln!("{}", usage_text());
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", usage_text());
        return;
    }
    let Some(expr) = args.first().filter(|a| !a.starts_with("--")) else {
        usage()
    };
    let (mut bindings, mut dot, mut html, mut paths) = (Vec::new(), None, None, None);
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--dot" => dot = Some(rest.next().unwrap_or_else(|| usage()).clone()),
            "--html" => html = Some(rest.next().unwrap_or_else(|| usage()).clone()),
            "--paths" => paths = Some(rest.next().unwrap_or_else(|| usage()).clone()),
            flag if flag.starts_with("--") => {
                eprintln!("unknown option {flag}");
                usage()
            }
            _ => match a
                .split_once('=')
                .map(|(n, v)| (n.to_string(), v.parse::<f64>()))
            {
                Some((n, Ok(v))) => bindings.push((n, v)),
                _ => {
                    eprintln!("`{a}` is not name=number");
                    usage()
                }
            },
        }
    }
    let refs: Vec<(&str, f64)> = bindings.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let e = match explain(expr, &refs) {
        Ok(e) => e,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    };
    println!("{e}");
    if let Some(name) = paths {
        // Re-record to reach the leaf's handle; the numbers are the same.
        let tape = tapegrad::Tape::<f64>::new();
        let vars: Vec<(String, tapegrad::Var<f64>)> = refs
            .iter()
            .map(|(n, v)| (n.to_string(), tape.var(*v).named(n)))
            .collect();
        let parsed = tapegrad::trace::expr::parse(expr).expect("parsed above");
        let out = tapegrad::trace::expr::build(&parsed, &tape, &vars, expr)
            .expect("built above")
            .named("f");
        match vars.iter().find(|(n, _)| *n == name) {
            Some((_, leaf)) => match out.backward_traced().paths_to(*leaf) {
                Some(p) => println!("{p}"),
                None => println!("no path products for `{name}`"),
            },
            None => eprintln!("--paths: no variable `{name}`"),
        }
    }
    if let Some(path) = html {
        let page = e.trace.html().title(format!("f = {expr}"));
        match page.write(&path) {
            Ok(()) => println!("interactive page written to {path} (open it in a browser)"),
            Err(err) => {
                eprintln!("cannot write {path}: {err}");
                std::process::exit(1);
            }
        }
    }
    if let Some(path) = dot {
        match std::fs::write(&path, &e.dot) {
            Ok(()) => println!("graph written to {path} (render: dot -Tsvg {path} -o graph.svg)"),
            Err(err) => eprintln!("cannot write {path}: {err}"),
        }
    }
}
