//! Charts: a small line-chart layer over plotters (PNG or SVG) and the training-log figures
//! behind `edgessl plot`. The theory simulator's figures reuse [`chart`].

pub mod chart;
pub mod font;
pub mod training;

pub use chart::{Figure, ImageFormat, LineChart, Series};
pub use training::plot_training_log;
