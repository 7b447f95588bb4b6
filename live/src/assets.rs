//! The page and everything it loads, compiled into the binary: the live view works with
//! no network at all. uPlot (MIT, its licence served beside it) draws the charts.

pub const INDEX_HTML: &str = include_str!("../assets/index.html");

/// Content type and body of an asset under `/assets/`.
pub fn named(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "live.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../assets/live.js"),
        ),
        "live.css" => (
            "text/css; charset=utf-8",
            include_str!("../assets/live.css"),
        ),
        "uPlot.iife.min.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../assets/uPlot.iife.min.js"),
        ),
        "uPlot.min.css" => (
            "text/css; charset=utf-8",
            include_str!("../assets/uPlot.min.css"),
        ),
        "uPlot.LICENSE" => (
            "text/plain; charset=utf-8",
            include_str!("../assets/uPlot.LICENSE"),
        ),
        _ => return None,
    })
}
