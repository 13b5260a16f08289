//! Renderings of a [`Trace`]: a plain-text table (`Display`), Markdown with
//! LaTeX, and the chain-rule product along each path to one leaf.

use super::{Local, Trace};
use crate::tape::Var;
use crate::tensor::{Element, Tensor};
use std::fmt;

/// A number with up to six significant digits and no trailing zeros.
pub(crate) fn num<T: Element>(v: T) -> String {
    num_digits(v, 6)
}

/// A number with up to `digits` significant digits and no trailing zeros.
pub(crate) fn num_digits<T: Element>(v: T, digits: usize) -> String {
    let digits = digits.clamp(1, 17) as i32;
    let v = v.to_f64().unwrap_or(f64::NAN);
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-4..digits).contains(&magnitude) {
        let p = (digits - 1) as usize;
        return format!("{v:.p$e}");
    }
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A value: the number for one element, the elements for a few, else a
/// summary.
pub(crate) fn value<T: Element>(t: &Tensor<T>) -> String {
    match t.numel() {
        1 => num(t.data()[0]),
        n if n <= 6 => format!(
            "[{}]",
            t.data()
                .iter()
                .map(|v| num(*v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => {
            let norm = t
                .data()
                .iter()
                .fold(0.0, |s, v| s + v.to_f64().unwrap().powi(2))
                .sqrt();
            format!("<{:?}, norm {}>", t.shape(), num(norm))
        }
    }
}

/// A label as it appears after `d` in a derivative: `w`, or `(w*x + b)`.
pub(crate) fn d(label: &str) -> String {
    if label
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '%')
    {
        label.to_string()
    } else {
        format!("({label})")
    }
}

fn local<T: Element>(l: &Local<T>) -> String {
    match l {
        Local::Scalar(v) => num(*v),
        Local::Jacobian(j) => {
            let rows: Vec<String> = j
                .data()
                .chunks(j.shape()[1])
                .map(|r| r.iter().map(|v| num(*v)).collect::<Vec<_>>().join(" "))
                .collect();
            format!("Jacobian [{}]", rows.join("; "))
        }
        Local::Summary { shape, norm } => {
            format!("Jacobian {}×{}, norm {}", shape.0, shape.1, num(*norm))
        }
    }
}

impl<T: Element> fmt::Display for Trace<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let out = &d(&self.output);
        writeln!(f, "backward pass from {out}: each node's global derivative d{out}/d(node), then what it passes to each input")?;
        writeln!(
            f,
            "(passed back = global x local; a node used several times sums what it receives)"
        )?;
        for (n, s) in self.steps.iter().enumerate() {
            let summed = if s.received > 1 {
                format!("  (sum of {} contributions)", s.received)
            } else {
                String::new()
            };
            writeln!(
                f,
                "\n[{}] {} = {}   op {}   d{out}/d{} = {}{summed}",
                n + 1,
                s.label,
                value(&s.value),
                s.op,
                d(&s.label),
                value(&s.global)
            )?;
            for i in &s.inputs {
                // For scalars, show the chain rule's multiplication itself.
                let passed = match (&i.local, s.global.numel()) {
                    (Local::Scalar(l), 1) => format!(
                        "{} x {} = {}",
                        value(&s.global),
                        num(*l),
                        value(&i.contribution)
                    ),
                    _ => value(&i.contribution),
                };
                writeln!(
                    f,
                    "      -> {:<10} local d{}/d{} = {:<10}  passes back {passed}",
                    i.label,
                    d(&s.label),
                    d(&i.label),
                    local(&i.local)
                )?;
            }
        }
        Ok(())
    }
}

/// LaTeX for a label: `w1_12` becomes `w1_{12}`, `%7` becomes `v_{7}`.
fn tex(label: &str) -> String {
    if let Some(i) = label.strip_prefix('%') {
        return format!("v_{{{i}}}");
    }
    match label.split_once('_') {
        Some((base, sub)) => format!("{base}_{{{sub}}}"),
        None => label.to_string(),
    }
}

impl<T: Element> Trace<T> {
    /// The trace as a Markdown table with LaTeX derivatives, for notes and
    /// slides.
    pub fn to_markdown(&self) -> String {
        let j = tex(&self.output);
        let mut md = String::new();
        md += &format!("| step | node | op | value | $\\partial {j}/\\partial \\text{{node}}$ | input | local derivative | passed back |\n");
        md += "|---|---|---|---|---|---|---|---|\n";
        for (n, s) in self.steps.iter().enumerate() {
            let node = tex(&s.label);
            let head = format!(
                "| {} | ${node}$ | {} | {} | {} ",
                n + 1,
                s.op,
                value(&s.value),
                value(&s.global)
            );
            if s.inputs.is_empty() {
                md += &format!("{head}| | | |\n");
            }
            for (k, i) in s.inputs.iter().enumerate() {
                let lead = if k == 0 {
                    head.clone()
                } else {
                    "| | | | | ".to_string()
                };
                md += &format!(
                    "{lead}| ${}$ | $\\frac{{\\partial {node}}}{{\\partial {}}} = {}$ | {} |\n",
                    tex(&i.label),
                    tex(&i.label),
                    local(&i.local),
                    value(&i.contribution)
                );
            }
        }
        md
    }

    /// For a leaf `v`, the chain-rule product along every path from the
    /// output down to it; the products sum to `v`'s gradient. Available
    /// when every node on those paths is a scalar.
    pub fn paths_to(&self, v: Var<'_, T>) -> Option<PathProducts<T>> {
        self.paths_to_node(v.index())
    }

    /// [`Trace::paths_to`] by tape position.
    pub(crate) fn paths_to_node(&self, target: usize) -> Option<PathProducts<T>> {
        let mut paths = Vec::new();
        let mut nodes = Vec::new();
        let first = self.steps.first()?.node;
        let mut stack: Vec<(usize, Vec<Link<T>>, Vec<usize>)> = vec![(first, vec![], vec![first])];
        while let Some((node, path, visited)) = stack.pop() {
            if paths.len() > MAX_PATHS {
                return None;
            }
            if node == target {
                paths.push(path);
                nodes.push(visited);
                continue;
            }
            let step = self.steps.iter().find(|s| s.node == node)?;
            for i in step.inputs.iter().rev() {
                let l = i.local.scalar()?;
                let mut p = path.clone();
                p.push((step.label.clone(), i.label.clone(), l));
                let mut on = visited.clone();
                on.push(i.node);
                stack.push((i.node, p, on));
            }
        }
        let leaf = self.steps.iter().find(|s| s.node == target)?;
        Some(PathProducts {
            output: self.output.clone(),
            leaf: leaf.label.clone(),
            paths,
            gradient: leaf.global.item(),
            nodes,
        })
    }
}

/// One link of a path: (node, input, local derivative).
pub type Link<T> = (String, String, T);

/// Paths are enumerated up to this many (their number can grow
/// exponentially with the depth of a graph).
const MAX_PATHS: usize = 256;

/// The chain rule written out along each path to one leaf, from
/// [`Trace::paths_to`].
#[derive(Clone, Debug, PartialEq)]
pub struct PathProducts<T: Element> {
    /// The output's label.
    pub output: String,
    /// The leaf's label.
    pub leaf: String,
    /// Each path as (node, input, local derivative) links, output first.
    pub paths: Vec<Vec<Link<T>>>,
    /// The leaf's gradient from the backward walk.
    pub gradient: T,
    /// Each path's nodes by tape position, output first.
    pub(crate) nodes: Vec<Vec<usize>>,
}

impl<T: Element> PathProducts<T> {
    /// The product of the local derivatives along each path.
    pub fn products(&self) -> Vec<T> {
        self.paths
            .iter()
            .map(|p| p.iter().fold(T::one(), |acc, l| acc * l.2))
            .collect()
    }

    /// The sum of the products (equal to the gradient up to rounding).
    pub fn total(&self) -> T {
        self.products().into_iter().fold(T::zero(), |a, b| a + b)
    }
}

impl<T: Element> fmt::Display for PathProducts<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (j, w) = (&d(&self.output), &d(&self.leaf));
        writeln!(
            f,
            "d{j}/d{w} as a sum over {} path(s) of products of local derivatives:",
            self.paths.len()
        )?;
        for (path, product) in self.paths.iter().zip(self.products()) {
            let symbols: Vec<String> = path
                .iter()
                .map(|(a, b, _)| format!("d{}/d{}", d(a), d(b)))
                .collect();
            let numbers: Vec<String> = path
                .iter()
                .map(|(_, _, l)| format!("({})", num(*l)))
                .collect();
            writeln!(
                f,
                "  d{j}/d{w} <- {} = {} = {}",
                symbols.join(" * "),
                numbers.join(""),
                num(product)
            )?;
        }
        write!(
            f,
            "  sum = {}   (the backward walk gave d{j}/d{w} = {})",
            num(self.total()),
            num(self.gradient)
        )
    }
}
