//! One answer's noise under a shaped joint law (the plateau or the staircase), scale-free,
//! for accuracy models: a report's predictions and simulations, in floating point, never a
//! release. The plain law's answers have a closed form of their own (`unit_tail`).

use super::plateau::PlateauShape;
use super::staircase::StaircaseShape;

/// One answer's law in units where its standard deviation is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnswerShape {
    /// An answer of the plateau law (`JointLaplaceMechanism::plateau`).
    Plateau(PlateauShape),
    /// An answer of the staircase law (`JointLaplaceMechanism::staircase`), each lattice
    /// value spread over its cell.
    Staircase(StaircaseShape),
}

/// One component of an answer's law as a mixture: with probability `weight`,
/// `z = (shift + scale·G)·U`, `U` uniform on `[−1, 1]` and `G ~ Gamma(gamma_shape, 1)`
/// (`G = 0` for a shape of 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Component {
    /// The component's probability.
    pub weight: f64,
    /// The half-width that does not grow with `G`.
    pub shift: f64,
    /// The factor of `G`.
    pub scale: f64,
    /// `G`'s shape: a sum of that many standard exponentials.
    pub gamma_shape: usize,
}

impl AnswerShape {
    /// `P(|z| > x)`, `x` in standard deviations.
    #[must_use]
    pub fn tail(&self, x: f64) -> f64 {
        match self {
            Self::Plateau(shape) => shape.tail(x),
            Self::Staircase(shape) => shape.tail(x),
        }
    }

    /// The `x` (in standard deviations) with `P(|z| > x) = alpha`.
    #[must_use]
    pub fn quantile(&self, alpha: f64) -> f64 {
        super::staircase::quantile(|x| self.tail(x), alpha)
    }

    /// The law as a mixture, for draws in a simulation: the component at cumulative
    /// probability `u ∈ [0, 1)` (a uniform `u` picks one by its weight).
    #[must_use]
    pub fn component(&self, u: f64) -> Component {
        match self {
            Self::Plateau(shape) => shape.component(u),
            Self::Staircase(shape) => shape.component(u),
        }
    }
}
