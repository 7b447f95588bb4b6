//! The HTML report's charts, drawn with plotters into SVG strings. Each chart is one
//! function from the record to an SVG; none reads the network or the system's fonts.

use std::sync::Once;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::fleet::{self, InstancePoint, Round};
use crate::record::{Event, EventKind, RunRecord, outcome_is_error};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 320;
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// plotters lays text out with real font metrics; DejaVu Sans comes with the binary.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// A line series: name and (x seconds, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed-looking (thin) as a reference, e.g. an SLO threshold.
    pub reference: bool,
}

fn bounds(series: &[Series]) -> (f64, f64, f64) {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_max, mut x_min) = (1.0_f64, 0.0_f64, f64::MAX);
    for (x, y) in points {
        x_max = x_max.max(*x);
        x_min = x_min.min(*x);
        y_max = y_max.max(*y);
    }
    (
        if x_min == f64::MAX { 0.0 } else { x_min },
        x_max,
        if y_max <= 0.0 { 1.0 } else { y_max * 1.1 },
    )
}

/// How a chart's axes read.
pub struct Axes<'a> {
    pub x: &'a str,
    pub y: &'a str,
    /// Latencies span decades: a log scale keeps a 3 ms line and a 500 ms SLO readable
    /// on one chart.
    pub log_y: bool,
    /// x is a percentile as log10(1 / (1 − q)), labelled P90, P99…
    pub percentile_x: bool,
}

const RUN_TIME: &str = "time since the run started (s)";

/// A line chart, with event spans shaded behind the lines.
pub fn line_chart(
    title: &str,
    axes: &Axes<'_>,
    series: &[Series],
    events: &[Event],
) -> Result<String, String> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (x_min, x_max, y_max) = bounds(series);
        let y_min = if axes.log_y {
            let smallest = series
                .iter()
                .flat_map(|s| s.points.iter())
                .map(|(_, y)| *y)
                .filter(|y| *y > 0.0)
                .fold(f64::MAX, f64::min);
            if smallest == f64::MAX {
                0.01
            } else {
                smallest / 2.0
            }
        } else {
            0.0
        };
        let plot = Plot {
            title,
            axes,
            series,
            events,
            x: (x_min, x_max),
            y: (y_min, y_max),
        };
        if axes.log_y {
            // Labelled at 1, 2 and 5 of each decade only, at exactly those values
            // (plotters' own ticks crowd near a decade's top, and 10 came twice).
            let y = (y_min..y_max)
                .log_scale()
                .with_key_points(one_two_five(y_min, y_max));
            plot.draw(&root, x_min..x_max, y)?;
        } else {
            plot.draw(&root, x_min..x_max, y_min..y_max)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// One chart's content, drawn on whichever kind of y axis it has.
struct Plot<'a> {
    title: &'a str,
    axes: &'a Axes<'a>,
    series: &'a [Series],
    events: &'a [Event],
    x: (f64, f64),
    y: (f64, f64),
}

impl Plot<'_> {
    fn draw<'b, Y>(
        &self,
        root: &DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
        x: std::ops::Range<f64>,
        y: Y,
    ) -> Result<(), String>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 18))
            .margin(12)
            // Room for the last x label, centred on the right edge.
            .margin_right(28)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x, y)
            .map_err(|e| e.to_string())?;
        let percentile = |v: &f64| percentile_name(*v);
        let log = |v: &f64| log_label(*v);
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.axes.x)
            .y_desc(self.axes.y)
            .label_style(("sans-serif", 12));
        if self.axes.percentile_x {
            // Whole x are P90, P99, P99.9…: a few labels make plotters step by 1.
            mesh.x_labels(5).x_label_formatter(&percentile);
        }
        if self.axes.log_y {
            // The key points' grid lines stay faint, or they band near each decade.
            mesh.y_label_formatter(&log)
                .y_max_light_lines(0)
                .bold_line_style(BLACK.mix(0.06));
        }
        mesh.draw().map_err(|e| e.to_string())?;
        draw_content(&mut chart, self.series, self.events, self.x, self.y)
    }
}

/// 1, 2 and 5 times each power of ten between `low` and `high`.
fn one_two_five(low: f64, high: f64) -> Vec<f64> {
    if !(low > 0.0 && high > low) {
        return Vec::new();
    }
    let first = low.log10().floor() as i32;
    let last = high.log10().ceil() as i32;
    (first..=last)
        .flat_map(|exponent| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(exponent)))
        .filter(|v| (low..=high).contains(v))
        .collect()
}

/// `P90`, `P99.9` for a whole x = log10(1 / (1 − q)); nothing between them.
fn percentile_name(x: f64) -> String {
    if (x - x.round()).abs() > 1e-6 || x.round() < 1.0 {
        return String::new();
    }
    let q = 1.0 - 10f64.powf(-x.round());
    let percent = format!("{:.4}", q * 100.0);
    format!("P{}", percent.trim_end_matches('0').trim_end_matches('.'))
}

/// A log axis' label: `1`, `2`, `5` times a power of ten, written plainly (`0.5`,
/// `20`, `1000`); nothing for the ticks between them.
fn log_label(value: f64) -> String {
    if !(value.is_finite() && value > 0.0) {
        return String::new();
    }
    let decade = 10f64.powf(value.log10().floor());
    let mantissa = value / decade;
    let near = |m: f64| (mantissa - m).abs() < 1e-6 * m;
    if !(near(1.0) || near(2.0) || near(5.0)) {
        return String::new();
    }
    if value >= 1.0 {
        format!("{value:.0}")
    } else {
        // 0.5, 0.02: as many decimals as the decade needs.
        let decimals = (-value.log10().floor()) as usize;
        format!("{value:.decimals$}")
    }
}

/// Event spans, lines and the legend, on either kind of y axis.
fn draw_content<'a, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    series: &[Series],
    events: &[Event],
    (x_min, x_max): (f64, f64),
    (y_min, y_max): (f64, f64),
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64>,
{
    {
        for event in events {
            let start = event.t_ms as f64 / 1000.0;
            let end = event
                .end_ms
                .map_or(start + (x_max - x_min) / 200.0, |e| e as f64 / 1000.0);
            let shade = match event.kind {
                EventKind::Stage => RGBColor(120, 120, 120).mix(0.08),
                // Alerts on the same time axis as the faults that should cause them.
                EventKind::AlertFiring => RGBColor(255, 140, 0).mix(0.6),
                EventKind::AlertResolved => RGBColor(0, 150, 60).mix(0.5),
                _ => RGBColor(220, 0, 0).mix(0.15),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(start, y_min), (end, y_max)],
                    shade.filled(),
                )))
                .map_err(|e| e.to_string())?;
        }
        for (index, line) in series.iter().enumerate() {
            let color = if line.reference {
                RGBColor(200, 0, 0)
            } else {
                PALETTE[index % PALETTE.len()]
            };
            let width = if line.reference { 1 } else { 2 };
            // A NaN point is a gap: each run of real points is its own line segment.
            let segments: Vec<&[(f64, f64)]> = line
                .points
                .split(|(_, y)| y.is_nan())
                .filter(|segment| !segment.is_empty())
                .collect();
            for (index, segment) in segments.iter().enumerate() {
                let drawn = chart
                    .draw_series(LineSeries::new(
                        segment.iter().copied(),
                        color.stroke_width(width),
                    ))
                    .map_err(|e| e.to_string())?;
                if index == 0 {
                    drawn.label(line.name.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                }
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 12))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Latency percentiles per second, with each stage's P95 threshold drawn in.
pub fn latency_over_time(
    record: &RunRecord,
    thresholds_ms: &[(String, f64)],
) -> Result<String, String> {
    let mut series = Vec::new();
    for (q, name) in [(0.5, "P50"), (0.95, "P95"), (0.99, "P99")] {
        let points = record
            .stages
            .iter()
            .flat_map(|s| s.timeline.iter())
            .filter_map(|p| {
                Some((
                    p.t_ms as f64 / 1000.0,
                    p.latency_us.quantile_micros(q)? as f64 / 1000.0,
                ))
            })
            .collect();
        series.push(Series {
            name: name.into(),
            points,
            reference: false,
        });
    }
    for stage in &record.stages {
        if let Some((_, threshold)) = thresholds_ms.iter().find(|(name, _)| *name == stage.name) {
            let (from, to) = (
                stage.started_ms as f64 / 1000.0,
                stage.steady_end_ms as f64 / 1000.0,
            );
            series.push(Series {
                name: format!("SLO P95 < {threshold} ms (stage {})", stage.name),
                points: vec![(from, *threshold), (to, *threshold)],
                reference: true,
            });
        }
    }
    let axes = Axes {
        x: RUN_TIME,
        y: "milliseconds (log scale)",
        log_y: true,
        percentile_x: false,
    };
    line_chart(
        "Latency from the intended send time, per second",
        &axes,
        &series,
        &record.events,
    )
}

/// Requests sent per second against each stage's target rate.
pub fn rate_over_time(record: &RunRecord) -> Result<String, String> {
    let achieved = record
        .stages
        .iter()
        .flat_map(|s| s.timeline.iter())
        .map(|p| (p.t_ms as f64 / 1000.0, p.sent as f64))
        .collect();
    let target = record
        .stages
        .iter()
        .flat_map(|s| {
            [
                (s.started_ms as f64 / 1000.0, s.target_rps),
                (s.steady_end_ms as f64 / 1000.0, s.target_rps),
            ]
        })
        .collect();
    let series = [
        Series {
            name: "sent (per second)".into(),
            points: achieved,
            reference: false,
        },
        Series {
            name: "target".into(),
            points: target,
            reference: true,
        },
    ];
    let axes = Axes {
        x: RUN_TIME,
        y: "requests per second",
        log_y: false,
        percentile_x: false,
    };
    line_chart(
        "Target vs achieved request rate",
        &axes,
        &series,
        &record.events,
    )
}

/// Failed requests per second, one line per kind of failure.
pub fn errors_over_time(record: &RunRecord) -> Result<String, String> {
    let mut kinds: Vec<String> = record
        .stages
        .iter()
        .flat_map(|s| s.timeline.iter())
        .flat_map(|p| p.outcomes.keys())
        .filter(|k| outcome_is_error(k))
        .cloned()
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut series: Vec<Series> = kinds
        .iter()
        .map(|kind| Series {
            name: kind.clone(),
            points: record
                .stages
                .iter()
                .flat_map(|s| s.timeline.iter())
                .map(|p| {
                    (
                        p.t_ms as f64 / 1000.0,
                        p.outcomes.get(kind).copied().unwrap_or(0) as f64,
                    )
                })
                .collect(),
            reference: false,
        })
        .collect();
    if series.is_empty() {
        let points = record
            .stages
            .iter()
            .flat_map(|s| s.timeline.iter())
            .map(|p| (p.t_ms as f64 / 1000.0, 0.0))
            .collect();
        series.push(Series {
            name: "no errors".into(),
            points,
            reference: false,
        });
    }
    let axes = Axes {
        x: RUN_TIME,
        y: "requests per second",
        log_y: false,
        percentile_x: false,
    };
    line_chart("Errors per second by kind", &axes, &series, &record.events)
}

/// A gap in a line: the drawing breaks there (an instance down, nothing scraped).
const GAP: f64 = f64::NAN;

/// A point of a per-round figure, or a gap where the round has none.
fn point_or_gap(round: &Round, value: Option<f64>) -> (f64, f64) {
    (round.t_ms as f64 / 1000.0, value.unwrap_or(GAP))
}

/// Restarts and scrape gaps the rounds show, as events to mark on a chart.
fn instance_events(rounds: &[Round]) -> Vec<Event> {
    let mut events = Vec::new();
    for round in rounds {
        for (name, point) in &round.instances {
            let name = if name.is_empty() { "the target" } else { name };
            if point.restarted {
                events.push(Event {
                    t_ms: round.t_ms,
                    kind: EventKind::Restart,
                    detail: format!("{name} answered from a new process"),
                    end_ms: None,
                });
            }
        }
    }
    events
}

/// The server's own view, for the whole fleet: cache hit ratio, DB pool use and the
/// worst instance's memory, as percentages. Lines break where nothing was scraped; red
/// marks show restarts.
pub fn server_over_time(
    record: &RunRecord,
    memory_limit_bytes: Option<u64>,
) -> Result<String, String> {
    let rounds = fleet::rounds(&record.server);
    let several = rounds.iter().any(|r| r.instances.len() > 1);
    let hit_ratio = rounds
        .iter()
        .filter(|r| r.cache().is_none_or(|(h, m)| h + m > 0.0))
        .map(|r| point_or_gap(r, r.cache().map(|(h, m)| 100.0 * h / (h + m))))
        .collect();
    let pool = rounds
        .iter()
        .map(|r| point_or_gap(r, r.db_ratio().map(|ratio| 100.0 * ratio)))
        .collect();
    let fleet = if several { " (fleet)" } else { "" };
    let mut series = vec![
        Series {
            name: format!("cache hit ratio %{fleet}"),
            points: hit_ratio,
            reference: false,
        },
        Series {
            name: format!("DB pool in use %{fleet}"),
            points: pool,
            reference: false,
        },
    ];
    if let Some(limit) = memory_limit_bytes {
        let memory = rounds
            .iter()
            .map(|r| {
                point_or_gap(
                    r,
                    r.worst_memory().map(|(_, rss)| 100.0 * rss / limit as f64),
                )
            })
            .collect();
        series.push(Series {
            name: if several {
                "memory % of limit (worst instance)".into()
            } else {
                "memory % of limit".into()
            },
            points: memory,
            reference: false,
        });
    }
    let axes = Axes {
        x: RUN_TIME,
        y: "percent",
        log_y: false,
        percentile_x: false,
    };
    let mut events = record.events.clone();
    events.extend(instance_events(&rounds));
    line_chart(
        "Server: cache, database pool, memory",
        &axes,
        &series,
        &events,
    )
}

/// One line per instance of a per-instance figure (percent), for a fleet; `None` for a
/// run with a single instance (the fleet chart says it all).
pub fn by_instance(
    record: &RunRecord,
    title: &str,
    figure: impl Fn(&InstancePoint) -> Option<f64>,
) -> Option<Result<String, String>> {
    let rounds = fleet::rounds(&record.server);
    let names: std::collections::BTreeSet<&str> = rounds
        .iter()
        .flat_map(|r| r.instances.keys().map(String::as_str))
        .collect();
    if names.len() < 2 {
        return None;
    }
    let series: Vec<Series> = names
        .iter()
        .map(|name| Series {
            name: (*name).to_owned(),
            points: rounds
                .iter()
                .filter_map(|r| {
                    let point = r.instances.get(*name)?;
                    Some(point_or_gap(r, figure(point)))
                })
                .collect(),
            reference: false,
        })
        .collect();
    let axes = Axes {
        x: RUN_TIME,
        y: "percent",
        log_y: false,
        percentile_x: false,
    };
    let mut events = record.events.clone();
    events.extend(instance_events(&rounds));
    Some(line_chart(title, &axes, &series, &events))
}

/// The latency distribution of each stage: latency against percentile, the percentile
/// axis stretched (log of 1 / (1 − q)) so the tail is readable.
pub fn distribution(record: &RunRecord) -> Result<String, String> {
    const QUANTILES: [f64; 9] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999];
    let series: Vec<Series> = record
        .stages
        .iter()
        .filter_map(|stage| {
            let histogram = stage.all_routes_latency().ok()?;
            let mut points: Vec<(f64, f64)> = QUANTILES
                .iter()
                .filter_map(|q| {
                    Some((
                        (1.0 / (1.0 - q)).log10(),
                        histogram.quantile_micros(*q)? as f64 / 1000.0,
                    ))
                })
                .collect();
            // The slowest of n requests is the last rank, q = 1 − 1/n: the line ends
            // there, and the legend names it.
            let max_ms = histogram.max_micros().map(|us| us as f64 / 1000.0);
            let last_rank = (histogram.count() as f64).log10();
            if let Some(max_ms) = max_ms
                && points.last().is_none_or(|(x, _)| last_rank > *x)
            {
                points.push((last_rank, max_ms));
            }
            Some(Series {
                name: match max_ms {
                    Some(max) => format!("stage {} (max {max:.1} ms)", stage.name),
                    None => format!("stage {}", stage.name),
                },
                points,
                reference: false,
            })
        })
        .collect();
    let axes = Axes {
        x: "percentile (log scale of 1 / (1 − q)), from P50 at the left; each line ends at its slowest request",
        y: "milliseconds (log scale)",
        log_y: true,
        percentile_x: true,
    };
    line_chart(
        "Latency distribution per stage (steady window)",
        &axes,
        &series,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::{log_label, one_two_five, percentile_name};

    #[test]
    fn a_log_axis_is_labelled_once_at_each_one_two_and_five_in_range() {
        assert_eq!(
            one_two_five(0.3, 600.0),
            [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
        );
        assert!(one_two_five(0.0, 10.0).is_empty());
    }

    #[test]
    fn percentiles_are_named_as_people_say_them() {
        let names: Vec<String> = [1.0, 1.5, 2.0, 3.0, 4.0, 0.5]
            .into_iter()
            .map(percentile_name)
            .collect();
        assert_eq!(names, ["P90", "", "P99", "P99.9", "P99.99", ""]);
    }

    #[test]
    fn a_log_axis_labels_only_one_two_and_five() {
        let labelled: Vec<String> = [
            0.5, 0.6, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 20.0, 50.0, 70.0, 200.0,
            1000.0, 0.02, 0.05,
        ]
        .iter()
        .map(|v| log_label(*v))
        .collect();
        assert_eq!(
            labelled,
            [
                "0.5", "", "1", "2", "", "", "5", "", "", "", "10", "20", "50", "", "200", "1000",
                "0.02", "0.05"
            ]
        );
        // Ticks computed as 10^x come out a hair off: still labelled.
        assert_eq!(log_label(10f64.powf(2.0f64.log10() + 1.0)), "20");
        assert_eq!(log_label(0.0), "");
        assert_eq!(log_label(f64::NAN), "");
    }
}
