//! The trace as one self-contained HTML page: the graph laid out left to
//! right, and the backward walk to step through node by node, with each
//! local derivative as the chapter writes it and the numbers plugged in,
//! the contributions summed at fan-out, and the chain-rule products along
//! every path to a leaf. CSS, script and SVG are inline: the page loads
//! nothing from the network.

mod json;
mod layout;

use super::render::{d, num_digits};
use super::{Local, Trace};
use crate::tensor::{Element, Tensor};
use json::Json;
use std::path::Path;

const PAGE: &str = include_str!("page.html");
const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// Tensors up to this many elements are shown in full.
const SHOWN_IN_FULL: usize = 16;
/// Labels longer than this are cut short in the boxes (the panel and the
/// box's tooltip show them whole).
const BOX_LABEL_CHARS: usize = 26;

/// Builds the HTML page of a [`Trace`]; from [`Trace::html`].
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let (x, w, b) = (tape.var(1.0).named("x"), tape.var(0.5).named("w"), tape.var(-0.2).named("b"));
/// let y = (w * x + b).tanh().named("y");
/// let page = y
///     .backward_traced()
///     .html()
///     .title("One neuron")
///     .note("learning rate", "0.1")
///     .render();
/// assert!(page.starts_with("<!DOCTYPE html>"));
/// assert!(page.contains("0.291313")); // y, at 6 significant digits
/// assert!(!page.contains("http://") && !page.contains("https://"));
/// ```
#[derive(Clone, Debug)]
pub struct HtmlPage<'a, T: Element> {
    trace: &'a Trace<T>,
    title: String,
    digits: usize,
    notes: Vec<(String, String)>,
}

impl<T: Element> Trace<T> {
    /// The page with its defaults (6 significant digits), as a string.
    pub fn to_html(&self) -> String {
        self.html().render()
    }

    /// A page to configure: title, digits, notes.
    pub fn html(&self) -> HtmlPage<'_, T> {
        HtmlPage {
            trace: self,
            title: format!("Backward pass from {}", self.output),
            digits: 6,
            notes: Vec::new(),
        }
    }
}

impl<T: Element> HtmlPage<'_, T> {
    /// The page's heading and window title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Significant digits of every number shown (1 to 17; default 6).
    pub fn digits(mut self, digits: usize) -> Self {
        self.digits = digits.clamp(1, 17);
        self
    }

    /// A line under the heading, for what the graph does not hold: a
    /// learning rate, an updated weight, a reference value.
    pub fn note(mut self, label: impl Into<String>, text: impl Into<String>) -> Self {
        self.notes.push((label.into(), text.into()));
        self
    }

    /// Writes the page to `path` (next to it first, then renamed into
    /// place, so a failed write leaves any old file whole).
    pub fn write(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        crate::files::write_atomically(path.as_ref(), self.render().as_bytes())
    }

    /// The page.
    pub fn render(&self) -> String {
        fill(
            PAGE,
            &[
                ("TITLE", &escape_html(&self.title)),
                ("STYLE", STYLE),
                ("SCRIPT", SCRIPT),
                ("DATA", &self.data().to_string()),
            ],
        )
    }

    fn num(&self, v: T) -> String {
        num_digits(v, self.digits)
    }

    /// A value as text: the number for one element, every element for a
    /// few (rows for a matrix), else shape, norm and range.
    fn value(&self, t: &Tensor<T>) -> String {
        let data = t.data();
        match t.numel() {
            1 => self.num(data[0]),
            n if n <= SHOWN_IN_FULL => {
                let row = |r: &[T]| {
                    r.iter()
                        .map(|v| self.num(*v))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                match t.shape() {
                    [_, c] => {
                        let rows: Vec<String> =
                            data.chunks(*c).map(|r| format!("[{}]", row(r))).collect();
                        format!("[{}]", rows.join(", "))
                    }
                    _ => format!("[{}]", row(data)),
                }
            }
            _ => {
                let f = |v: &T| v.to_f64().unwrap_or(f64::NAN);
                let norm = data.iter().map(|v| f(v) * f(v)).sum::<f64>().sqrt();
                let lo = data.iter().map(f).fold(f64::INFINITY, f64::min);
                let hi = data.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
                format!(
                    "{} elements, norm {}, from {} to {}",
                    t.numel(),
                    num_digits(norm, self.digits),
                    num_digits(lo, self.digits),
                    num_digits(hi, self.digits)
                )
            }
        }
    }

    fn local(&self, l: &Local<T>) -> String {
        match l {
            Local::Scalar(v) => self.num(*v),
            Local::Jacobian(j) => format!("Jacobian {}", self.value(j)),
            Local::Summary { shape, norm } => {
                format!("Jacobian {}×{}, norm {}", shape.0, shape.1, self.num(*norm))
            }
        }
    }

    /// Everything the script shows, computed here so that the page shows
    /// the trace's own numbers.
    fn data(&self) -> Json {
        let t = self.trace;
        let pos = |node: usize| t.graph.binary_search_by_key(&node, |g| g.node).ok();
        let inputs: Vec<Vec<usize>> = t
            .graph
            .iter()
            .map(|g| g.inputs.iter().filter_map(|&j| pos(j)).collect())
            .collect();
        let short = |label: &str| {
            if label.chars().count() > BOX_LABEL_CHARS {
                let cut: String = label.chars().take(BOX_LABEL_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                label.to_string()
            }
        };
        // The third line is the gradient the box shows once processed.
        let global_of = |node: usize| t.steps.iter().find(|s| s.node == node).map(|s| &s.global);
        let lines: Vec<[String; 3]> = t
            .graph
            .iter()
            .map(|g| {
                let grad = global_of(g.node).map_or(String::new(), |v| {
                    format!("∂{} = {}", d(&t.output), self.box_value(v))
                });
                [
                    short(&g.label),
                    format!("{} = {}", g.op, self.box_value(&g.value)),
                    grad,
                ]
            })
            .collect();
        // About 7.2 px per character at the page's 12-13 px fonts.
        let widths: Vec<f64> = lines
            .iter()
            .map(|l| {
                let chars = l.iter().map(|s| s.chars().count()).max().unwrap_or(0);
                (chars as f64 * 7.2 + 24.0).clamp(90.0, 260.0)
            })
            .collect();
        let (placed, (width, height)) = layout::layout(&inputs, &widths);
        let step_of = |node: usize| t.steps.iter().position(|s| s.node == node);
        let nodes = t
            .graph
            .iter()
            .zip(&placed)
            .zip(&lines)
            .map(|((g, p), line)| {
                Json::obj([
                    ("id", Json::from(g.node)),
                    ("label", Json::from(g.label.as_str())),
                    ("short", Json::from(line[0].as_str())),
                    ("line", Json::from(line[1].as_str())),
                    ("op", Json::from(g.op)),
                    ("value", Json::from(self.value(&g.value))),
                    ("shape", Json::from(format!("{:?}", g.value.shape()))),
                    ("inputs", Json::arr(g.inputs.iter().map(|&j| Json::from(j)))),
                    ("step", step_of(g.node).map_or(Json::Null, Json::from)),
                    ("x", Json::from(p.x)),
                    ("y", Json::from(p.y)),
                    ("w", Json::from(p.w)),
                    ("h", Json::from(p.h)),
                ])
            });
        let label_of = |node: usize| t.node(node).map_or(format!("%{node}"), |g| g.label.clone());
        let steps = t.steps.iter().map(|s| {
            let received = t.steps.iter().flat_map(|from| {
                from.inputs
                    .iter()
                    .filter(|i| i.node == s.node)
                    .map(move |i| (from, i))
            });
            let received = received.map(|(from, i)| {
                Json::obj([
                    ("from", Json::from(from.node)),
                    ("label", Json::from(from.label.as_str())),
                    ("amount", Json::from(self.value(&i.contribution))),
                ])
            });
            let ins = s.inputs.iter().enumerate().map(|(k, i)| {
                let (symbols, numbers) = t
                    .local_formula(s, k, self.digits)
                    .map_or((Json::Null, Json::Null), |(a, b)| (a.into(), b.into()));
                let scalar = i.local.scalar().filter(|_| s.global.numel() == 1);
                Json::obj([
                    ("node", Json::from(i.node)),
                    ("label", Json::from(i.label.as_str())),
                    (
                        "d",
                        Json::from(format!("∂{}/∂{}", d(&s.label), d(&i.label))),
                    ),
                    ("formula", symbols),
                    ("plugged", numbers),
                    ("local", Json::from(self.local(&i.local))),
                    (
                        "product",
                        scalar.map_or(Json::Null, |l| {
                            Json::from(format!("{} × {}", self.value(&s.global), self.num(l)))
                        }),
                    ),
                    ("passed", Json::from(self.value(&i.contribution))),
                ])
            });
            Json::obj([
                ("node", Json::from(s.node)),
                ("label", Json::from(s.label.as_str())),
                ("op", Json::from(s.op)),
                ("value", Json::from(self.value(&s.value))),
                ("shape", Json::from(format!("{:?}", s.value.shape()))),
                ("global", Json::from(self.value(&s.global))),
                ("boxGlobal", Json::from(self.box_value(&s.global))),
                ("received", Json::arr(received)),
                ("inputs", Json::arr(ins)),
            ])
        });
        let leaves = t
            .steps
            .iter()
            .filter(|s| s.op == "leaf")
            .map(|s| self.paths(s.node, &label_of));
        let notes = self.notes.iter().map(|(a, b)| {
            Json::obj([
                ("label", Json::from(a.as_str())),
                ("text", Json::from(b.as_str())),
            ])
        });
        Json::obj([
            ("title", Json::from(self.title.as_str())),
            ("output", Json::from(t.output.as_str())),
            ("d", Json::from(format!("∂{}", d(&t.output)))),
            ("width", Json::from(width)),
            ("height", Json::from(height)),
            ("nodes", Json::arr(nodes)),
            ("steps", Json::arr(steps)),
            ("leaves", Json::arr(leaves)),
            ("notes", Json::arr(notes)),
        ])
    }

    /// A value short enough for a box.
    fn box_value(&self, t: &Tensor<T>) -> String {
        if t.numel() == 1 {
            self.num(t.data()[0])
        } else {
            format!("{:?}", t.shape())
        }
    }

    /// One leaf's entry in the path view.
    fn paths(&self, leaf: usize, label_of: &dyn Fn(usize) -> String) -> Json {
        let t = self.trace;
        let step = t.steps.iter().find(|s| s.node == leaf);
        let global = step.map_or(String::new(), |s| self.value(&s.global));
        let mut entry = vec![
            ("node", Json::from(leaf)),
            ("label", Json::from(label_of(leaf))),
            ("gradient", Json::from(global)),
        ];
        match t.paths_to_node(leaf) {
            Some(p) => {
                let products = p.products();
                let paths = p.paths.iter().zip(products).map(|(path, product)| {
                    let links = path.iter().map(|(a, b, l)| {
                        Json::obj([
                            ("from", Json::from(a.as_str())),
                            ("to", Json::from(b.as_str())),
                            ("d", Json::from(format!("∂{}/∂{}", d(a), d(b)))),
                            ("local", Json::from(self.num(*l))),
                        ])
                    });
                    Json::obj([
                        ("links", Json::arr(links)),
                        ("product", Json::from(self.num(product))),
                    ])
                });
                let nodes = p
                    .nodes
                    .iter()
                    .map(|path| Json::arr(path.iter().map(|&n| Json::from(n))));
                entry.push(("paths", Json::arr(paths)));
                entry.push(("pathNodes", Json::arr(nodes)));
                entry.push(("total", Json::from(self.num(p.total()))));
            }
            None => entry.push((
                "why",
                Json::from(
                    "Path products are shown for scalar graphs with at most 256 paths; \
                     this leaf's paths pass through tensors or are too many.",
                ),
            )),
        }
        Json::obj(entry)
    }
}

/// The template with each `{{NAME}}` replaced, in one pass (so text that
/// happens to hold `{{…}}` is never taken for a slot).
fn fill(template: &str, slots: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + slots.iter().map(|s| s.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find("}}").expect("template slots are closed");
        let name = &after[..end];
        let (_, value) = slots
            .iter()
            .find(|s| s.0 == name)
            .expect("every template slot is filled");
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::layout::{any_overlap, layout};
    use crate::trace::expr::explain;
    use crate::trace::Trace;

    fn boxes_of(trace: &Trace<f64>) -> Vec<super::layout::Placed> {
        let pos = |n: usize| trace.graph.iter().position(|g| g.node == n);
        let inputs: Vec<Vec<usize>> = trace
            .graph
            .iter()
            .map(|g| g.inputs.iter().filter_map(|&j| pos(j)).collect())
            .collect();
        layout(&inputs, &vec![150.0; inputs.len()]).0
    }

    #[test]
    fn no_boxes_overlap_on_a_sixty_node_expression() {
        let e = explain(
            "tanh(sin(x*y + z)*cos(x - y) + exp(-z*z)*x/(1 + y*y)) + sigmoid(x*z - y) * (x + y + z)^2 \
             - log(1 + x*x) + atan(x*y*z - 1)/(2 + cos(z)) - sqrt(1 + (x - z)^2) * softplus(y - x*z) \
             + erf(x/2 + y/3) * x",
            &[("x", 0.7), ("y", -0.4), ("z", 1.3)],
        )
        .unwrap();
        assert!(e.trace.graph.len() >= 60, "{} nodes", e.trace.graph.len());
        assert!(!any_overlap(&boxes_of(&e.trace)));
    }

    #[test]
    fn no_boxes_overlap_on_the_chapters_network() {
        let tape = crate::Tape::<f64>::new();
        let x = [
            tape.constant(0.5).named("x_1"),
            tape.constant(-1.0).named("x_2"),
        ];
        let w1: Vec<Vec<_>> = (0..2)
            .map(|n| {
                (0..2)
                    .map(|m| tape.var(0.3 * (n + m) as f64 - 0.4))
                    .collect()
            })
            .collect();
        let w2 = [tape.var(1.5), tape.var(-0.7)];
        let a1: Vec<_> = (0..2)
            .map(|m| (w1[0][m] * x[0] + w1[1][m] * x[1]).relu())
            .collect();
        let y = (w2[0] * a1[0] + w2[1] * a1[1]) * 1.0;
        let j = (0.2 - y).square().named("J");
        let trace = j.backward_traced();
        assert!(trace.graph.len() >= 20, "{} nodes", trace.graph.len());
        assert!(!any_overlap(&boxes_of(&trace)));
    }

    #[test]
    fn the_page_names_each_local_derivative_with_its_numbers() {
        let e = explain("tanh(w*x + b)", &[("x", 1.0), ("w", 0.5), ("b", -0.2)]).unwrap();
        assert!(!any_overlap(&boxes_of(&e.trace)));
        let page = e.trace.to_html();
        // tanh's rule on its output, then with the output plugged in.
        assert!(page.contains(r#""formula":"1 - f²","plugged":"1 - 0.291313²""#));
        // mul's rule: ∂(w*x)/∂w = x, with x = 1.
        assert!(page.contains(r#""formula":"x","plugged":"1""#));
        let nine = e.trace.html().digits(9).render();
        assert!(nine.contains("0.291312612"));
    }

    #[test]
    fn tensors_show_their_shapes_and_large_ones_a_summary() {
        use crate::{Tape, Tensor};
        let tape = Tape::<f64>::new();
        let w = tape
            .var(Tensor::from_vec((0..6).map(f64::from).collect(), [2, 3]))
            .named("W");
        let x = tape
            .constant(Tensor::from_vec(vec![1.0; 30], [3, 10]))
            .named("X");
        let y = w.matmul(x).tanh().sum().named("s");
        let page = y.backward_traced().to_html();
        assert!(page.contains(r#""shape":"[2, 3]""#));
        // W in full, as rows; the 20-element product summarised.
        assert!(page.contains("[[0, 1, 2], [3, 4, 5]]"));
        assert!(page.contains("20 elements, norm"));
        // No path products through tensors: the page says why.
        assert!(page.contains("pass through tensors"));
    }
}
