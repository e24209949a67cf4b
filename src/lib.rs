//! edgessl: on-device non-contrastive self-supervised pretraining (BYOL, SimSiam, DirectPred,
//! DirectCopy) of compact image encoders, generic over burn backends.
//!
//! The pipeline: frames ([`data`]) → augment → encoder/heads ([`model`]) → method ([`ssl`])
//! → step ([`train`]) → checkpoint ([`checkpoint`]) → export ([`export`]).

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod eval;
pub mod export;
pub mod memory;
pub mod model;
pub mod monitor;
pub mod ops;
pub mod plot;
pub mod profile;
pub mod run;
pub mod runtime;
pub mod ssl;
pub mod step_profile;
pub mod theory;
pub mod train;
