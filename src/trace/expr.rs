//! A small expression language for explaining the chain rule on one's own
//! formula: numbers, variables, `+ - * / ^`, parentheses and the functions
//! `exp log sqrt abs sin cos tanh sigmoid relu leaky_relu`.
//!
//! ```
//! use tapegrad::trace::expr::explain;
//! let e = explain("tanh(w*x + b)", &[("x", 1.0), ("w", 0.5), ("b", -0.2)]).unwrap();
//! assert!((e.gradient("w").unwrap() - 0.9151369618266293).abs() < 1e-12);
//! println!("{e}");
//! ```

use super::{render::num, to_dot, Trace};
use crate::tape::{Tape, Var};
use std::fmt;

/// A parse error, pointing at a column of the expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The expression.
    pub source: String,
    /// 0-based character position of the problem.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (column {})\n  {}\n  {}^",
            self.message,
            self.column + 1,
            self.source,
            " ".repeat(self.column)
        )
    }
}

impl std::error::Error for ParseError {}

/// The functions the language knows.
pub const FUNCTIONS: [&str; 22] = [
    "exp",
    "log",
    "sqrt",
    "abs",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "leaky_relu",
    "atan",
    "asin",
    "acos",
    "sinh",
    "cosh",
    "asinh",
    "log1p",
    "expm1",
    "erf",
    "softplus",
    "silu",
    "elu",
];

/// A parsed expression; `text` is its source, used to name its node.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number.
    Num(f64),
    /// A variable.
    Var(String, usize),
    /// `-e`.
    Neg(Box<Expr>, String),
    /// `a op b` for `+ - * / ^`.
    Bin(char, Box<Expr>, Box<Expr>, String),
    /// `f(e)`.
    Call(String, Box<Expr>, String),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Sym(char),
    End,
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |column: usize, message: String| ParseError {
        source: src.to_string(),
        column,
        message,
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mark = i;
                i += 1;
                if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                    i += 1;
                }
                if i < chars.len() && chars[i].is_ascii_digit() {
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    i = mark;
                }
            }
            let text: String = chars[start..i].iter().collect();
            let v = text
                .parse::<f64>()
                .map_err(|_| err(start, format!("`{text}` is not a number")))?;
            out.push((Tok::Num(v), start));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), start));
        } else if "+-*/^()".contains(c) {
            out.push((Tok::Sym(c), i));
            i += 1;
        } else {
            return Err(err(i, format!("unexpected character `{c}`")));
        }
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

/// Parses an expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        src,
        toks: tokenize(src)?,
        pos: 0,
    };
    let e = p.expr()?;
    match p.peek() {
        Tok::End => Ok(e),
        Tok::Sym(')') => Err(p.error("unmatched `)`")),
        _ => Err(p.error("expected an operator or the end of the expression")),
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn column(&self) -> usize {
        self.toks[self.pos].1
    }
    fn error(&self, message: &str) -> ParseError {
        ParseError {
            source: self.src.to_string(),
            column: self.column(),
            message: message.to_string(),
        }
    }
    fn text(&self, from: usize) -> String {
        let start = self.toks[from].1;
        let end = self.toks[self.pos - 1].1
            + match &self.toks[self.pos - 1].0 {
                Tok::Ident(s) => s.chars().count(),
                Tok::Num(_) => self
                    .src
                    .chars()
                    .skip(self.toks[self.pos - 1].1)
                    .take_while(|c| c.is_ascii_digit() || ".eE+-".contains(*c))
                    .count(),
                _ => 1,
            };
        self.src
            .chars()
            .skip(start)
            .take(end - start)
            .collect::<String>()
            .trim()
            .to_string()
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let from = self.pos;
        let mut left = self.term()?;
        while let Tok::Sym(op @ ('+' | '-')) = *self.peek() {
            self.pos += 1;
            let right = self.term()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right), self.text(from));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let from = self.pos;
        let mut left = self.unary()?;
        while let Tok::Sym(op @ ('*' | '/')) = *self.peek() {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right), self.text(from));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let from = self.pos;
        if *self.peek() == Tok::Sym('-') {
            self.pos += 1;
            let e = self.unary()?;
            return Ok(Expr::Neg(Box::new(e), self.text(from)));
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, ParseError> {
        let from = self.pos;
        let base = self.atom()?;
        if *self.peek() == Tok::Sym('^') {
            self.pos += 1;
            let exponent = self.unary()?;
            return Ok(Expr::Bin(
                '^',
                Box::new(base),
                Box::new(exponent),
                self.text(from),
            ));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        let from = self.pos;
        match self.peek().clone() {
            Tok::Num(v) => {
                self.pos += 1;
                Ok(Expr::Num(v))
            }
            Tok::Ident(name) => {
                let column = self.column();
                self.pos += 1;
                if *self.peek() != Tok::Sym('(') {
                    if FUNCTIONS.contains(&name.as_str()) {
                        return Err(
                            self.error(&format!("expected `(` after the function `{name}`"))
                        );
                    }
                    return Ok(Expr::Var(name, column));
                }
                if !FUNCTIONS.contains(&name.as_str()) {
                    let mut e = self.error(&format!(
                        "unknown function `{name}` (known: {})",
                        FUNCTIONS.join(", ")
                    ));
                    e.column = column;
                    return Err(e);
                }
                self.pos += 1;
                let arg = self.expr()?;
                if *self.peek() != Tok::Sym(')') {
                    return Err(self.error("expected `)`"));
                }
                self.pos += 1;
                Ok(Expr::Call(name, Box::new(arg), self.text(from)))
            }
            Tok::Sym('(') => {
                self.pos += 1;
                let e = self.expr()?;
                if *self.peek() != Tok::Sym(')') {
                    return Err(self.error("expected `)`"));
                }
                self.pos += 1;
                Ok(e)
            }
            Tok::End => Err(self.error("unexpected end of the expression")),
            Tok::Sym(c) => Err(self.error(&format!(
                "expected a number, a variable, a function or `(`, found `{c}`"
            ))),
        }
    }
}

/// Records `e` on `tape` with the variables bound in `vars`; each op node
/// is named by its source text.
pub fn build<'t>(
    e: &Expr,
    tape: &'t Tape<f64>,
    vars: &[(String, Var<'t, f64>)],
    src: &str,
) -> Result<Var<'t, f64>, ParseError> {
    let unknown = |name: &str, column: usize| ParseError {
        source: src.to_string(),
        column,
        message: format!("unknown variable `{name}`: give it a value, as in {name}=1.5"),
    };
    Ok(match e {
        Expr::Num(v) => tape.constant(*v),
        Expr::Var(name, column) => vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| unknown(name, *column))?,
        Expr::Neg(a, text) => (-build(a, tape, vars, src)?).named(text),
        Expr::Bin(op, a, b, text) => {
            let x = build(a, tape, vars, src)?;
            let v = match (op, &**b) {
                ('^', Expr::Num(p)) => x.powf(*p),
                _ => {
                    let y = build(b, tape, vars, src)?;
                    match op {
                        '+' => x + y,
                        '-' => x - y,
                        '*' => x * y,
                        '/' => x / y,
                        _ => x.pow(y),
                    }
                }
            };
            v.named(text)
        }
        Expr::Call(f, a, text) => {
            let x = build(a, tape, vars, src)?;
            let v = match f.as_str() {
                "exp" => x.exp(),
                "log" => x.ln(),
                "sqrt" => x.sqrt(),
                "abs" => x.abs(),
                "sin" => x.sin(),
                "cos" => x.cos(),
                "tanh" => x.tanh(),
                "sigmoid" => x.sigmoid(),
                "relu" => x.relu(),
                "leaky_relu" => x.leaky_relu(),
                "atan" => x.atan(),
                "asin" => x.asin(),
                "acos" => x.acos(),
                "sinh" => x.sinh(),
                "cosh" => x.cosh(),
                "asinh" => x.asinh(),
                "log1p" => x.log1p(),
                "expm1" => x.expm1(),
                "erf" => x.erf(),
                "softplus" => x.softplus(),
                "silu" => x.silu(),
                "elu" => x.elu(),
                other => unreachable!("the parser admits only FUNCTIONS, not {other}"),
            };
            v.named(text)
        }
    })
}

/// Everything `explain` shows: the forward values, the backward trace, the
/// gradient of every variable, and a Graphviz picture.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The expression.
    pub source: String,
    /// Each node's label and value, in the order they were computed.
    pub forward: Vec<(String, f64)>,
    /// The backward walk.
    pub trace: Trace<f64>,
    /// `(variable, gradient)` in the order the variables were given.
    pub gradients: Vec<(String, f64)>,
    /// Graphviz DOT source of the graph with values and gradients.
    pub dot: String,
}

impl Explanation {
    /// The gradient of one variable.
    pub fn gradient(&self, name: &str) -> Option<f64> {
        self.gradients
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, g)| *g)
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "f = {}\n\nforward pass (in the order computed):",
            self.source
        )?;
        for (label, v) in &self.forward {
            writeln!(f, "  {label} = {}", num(*v))?;
        }
        writeln!(f, "\n{}", self.trace)?;
        writeln!(f, "gradients:")?;
        for (name, g) in &self.gradients {
            writeln!(
                f,
                "  d{}/d{} = {}",
                super::render::d(&self.trace.output),
                super::render::d(name),
                num(*g)
            )?;
        }
        Ok(())
    }
}

/// Parses `src`, records it with the given variable values, runs the
/// traced backward pass and collects what a learner wants to see.
pub fn explain(src: &str, bindings: &[(&str, f64)]) -> Result<Explanation, ParseError> {
    let e = parse(src)?;
    let tape = Tape::<f64>::new();
    let vars: Vec<(String, Var<'_, f64>)> = bindings
        .iter()
        .map(|(n, v)| (n.to_string(), tape.var(*v).named(n)))
        .collect();
    let out = build(&e, &tape, &vars, src)?;
    // The output is called f, so derivatives read df/dw.
    let out = out.named("f");
    let forward = (0..=out.index())
        .filter_map(|i| {
            let v = crate::Var::from_parts(&tape, i as u32, tape.epoch());
            (v.op_name() != "constant").then(|| (v.label(), v.item()))
        })
        .collect();
    let trace = out.backward_traced();
    let grads = out.backward_unchecked(crate::Tensor::scalar(1.0));
    let gradients = vars
        .iter()
        .map(|(n, v)| (n.clone(), grads[*v].item()))
        .collect();
    let dot = to_dot(out, Some(&grads));
    Ok(Explanation {
        source: src.to_string(),
        forward,
        trace,
        gradients,
        dot,
    })
}
