//! Learning-rate schedules: the learning rate as a function of the step
//! count. Attach one to an optimizer ([`super::Optimizer::with_schedule`])
//! and every step advances it; [`Schedule::lr`] evaluates it anywhere.

/// A learning-rate schedule; [`Schedule::lr`] gives the rate at a step.
///
/// ```
/// use tapegrad::nn::Schedule;
/// let s = Schedule::Warmup { steps: 10, then: Box::new(Schedule::Cosine { total: 100, min_lr: 0.0 }) };
/// assert_eq!(s.lr(1e-3, 0), 1e-4);
/// assert_eq!(s.lr(1e-3, 10), 1e-3);
/// assert!(s.lr(1e-3, 110) < 1e-12);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiplied by `gamma` every `every` steps.
    Step {
        /// Steps between drops.
        every: u64,
        /// Factor per drop.
        gamma: f64,
    },
    /// Multiplied by `gamma` every step.
    Exponential {
        /// Factor per step.
        gamma: f64,
    },
    /// Cosine annealing from the base rate to `min_lr` over `total` steps,
    /// then `min_lr`.
    Cosine {
        /// Length of the decay.
        total: u64,
        /// Final rate.
        min_lr: f64,
    },
    /// Rises linearly from `base/steps` to the base rate over `steps`
    /// steps, then follows `then` (counting from the end of the warm-up).
    Warmup {
        /// Length of the warm-up.
        steps: u64,
        /// The schedule after it.
        then: Box<Schedule>,
    },
}

impl Schedule {
    /// The learning rate at `step` (counted from 0) for base rate `base`.
    pub fn lr(&self, base: f64, step: u64) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => {
                base * gamma.powi((step / (*every).max(1)).min(i32::MAX as u64) as i32)
            }
            Schedule::Exponential { gamma } => base * gamma.powi(step.min(i32::MAX as u64) as i32),
            Schedule::Cosine { total, min_lr } => {
                if step >= *total {
                    *min_lr
                } else {
                    let t = step as f64 / *total as f64;
                    min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
                }
            }
            Schedule::Warmup { steps, then } => {
                if step < *steps {
                    base * (step + 1) as f64 / *steps as f64
                } else {
                    then.lr(base, step - steps)
                }
            }
        }
    }
}
