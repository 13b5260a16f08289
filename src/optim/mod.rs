//! The chapter's classical solvers on top of the engine: the user writes
//! only the function; gradients, Jacobians and Hessians come from the tape.
//!
//! | order | solver | needs |
//! |---|---|---|
//! | 1 | [`Method::GradientDescent`] | gradient |
//! | 1.5 | [`Method::Bfgs`], [`Method::Lbfgs`] (quasi-Newton) | gradient |
//! | 1.5 | [`Method::ConjugateGradient`] (Fletcher–Reeves, Polak–Ribière+) | gradient |
//! | 1.5 | [`LevenbergMarquardt`] (nonlinear least squares) | Jacobian of the residuals |
//! | 2 | [`Method::Newton`] (exact Hessian, made positive definite) | Hessian |
//! | 2 | [`InteriorPoint`] (constraints `g(x) <= 0`, `h(x) = 0`) | Hessian of the Lagrangian, Jacobians |
//!
//! ```
//! use tapegrad::optim::{Method, Minimizer, Problem};
//!
//! // Rosenbrock: 100 (y - x²)² + (1 - x)², minimum at (1, 1).
//! let problem = Problem::minimize(|v| {
//!     let (x, y) = (v.narrow(0, 0, 1), v.narrow(0, 1, 1));
//!     ((y - x.square()).square() * 100.0 + (x - 1.0).square()).sum()
//! });
//! let report = Minimizer::new(Method::Lbfgs).solve(&problem, &[-1.2, 1.0])?;
//! assert!((report.x[0] - 1.0).abs() < 1e-6 && (report.x[1] - 1.0).abs() < 1e-6);
//! println!("{report}");
//! # Ok::<(), tapegrad::optim::OptimError>(())
//! ```
//!
//! Dense linear algebra (Cholesky, LU, QR) comes from `nalgebra`.

mod directions;
mod interior_point;
mod least_squares;
mod line_search;
mod minimizer;
mod problem;

pub use interior_point::InteriorPoint;
pub use least_squares::LevenbergMarquardt;
pub use line_search::LineSearch;
pub use minimizer::{CgVariant, Method, Minimizer};
pub(crate) use problem::dot;
pub use problem::{
    Constrained, Counts, Func, Observer, OptimError, Problem, Progress, Report, Solver, Termination,
};
