//! Graphviz pictures of a recorded computation, in the style of
//! micrograd's `draw_dot`: a box per value (name, value, gradient) and an
//! oval per op. Render with `dot -Tsvg graph.dot -o graph.svg`.

use super::render::value;
use crate::tape::{Gradients, Var};
use crate::tensor::Element;
use std::fmt::Write;

/// Escapes text for a Graphviz record label.
fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '{' | '}' | '|' | '<' | '>' | '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

/// The DOT source of every node up to `output`, with gradients when given.
///
/// ```
/// use tapegrad::{trace::to_dot, Tape};
/// let tape = Tape::<f64>::new();
/// let (a, b) = (tape.var(2.0).named("a"), tape.var(-3.0).named("b"));
/// let c = (a * b).named("c");
/// let grads = c.backward();
/// let dot = to_dot(c, Some(&grads));
/// assert!(dot.starts_with("digraph"));
/// assert!(dot.contains("{ a | value 2 | grad -3 }"));
/// ```
pub fn to_dot<T: Element>(output: Var<'_, T>, grads: Option<&Gradients<'_, T>>) -> String {
    let tape = output.tape();
    let root = output.index();
    let arena = tape.arena.borrow();
    let mut out =
        String::from("digraph tapegrad {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for i in 0..=root {
        let name = tape.label_of(i);
        let grad = grads
            .and_then(|g| g.get_node(tape.id(), tape.epoch(), i))
            .map(|g| format!(" | grad {}", escape(&value(g))))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  n{i} [shape=record, label=\"{{ {} | value {}{grad} }}\"];",
            escape(&name),
            escape(&value(&arena.value(i)))
        );
        if !arena.is_leaf(i) {
            let op = tape.op_name(&arena.op(i));
            let _ = writeln!(out, "  op{i} [shape=ellipse, label=\"{}\"];", escape(op));
            let _ = writeln!(out, "  op{i} -> n{i};");
            for &j in arena.inputs(i) {
                let _ = writeln!(out, "  n{j} -> op{i};");
            }
        }
    }
    out.push_str("}\n");
    out
}
