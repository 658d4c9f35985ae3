//! Drover's specification layer: the DAG and environment model, its validation with precise
//! `file:line:col` diagnostics, the task graph, templates and schedules. No IO happens here.

pub mod bytes;
pub mod dag;
pub mod dataset;
pub mod diagnostic;
pub mod duration;
pub mod environment;
pub mod graph;
pub mod numbers;
pub mod schedule;
pub mod suggest;
pub mod template;
pub mod template_shell;
pub mod yaml;
