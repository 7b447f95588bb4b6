//! Renderers: each turns a graded report (and the record it grades) into one format.
//! They share no output types; each keeps its own.

pub mod charts;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod summary;
