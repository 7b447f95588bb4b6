//! aimate-reports: the `RunRecord` and `SloSpec` contracts, grading, and the HTML, Markdown,
//! JSON and JUnit renderers.
//!
//! Not built yet: see the reports issue.
