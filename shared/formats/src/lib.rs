//! Wire formats.
pub mod exposition;
