//! A JSON-lines event formatter: one object per event with `timestamp`, `level`,
//! `target`, `message` and the event's fields at the top level.
//!
//! tracing-subscriber's own JSON formatter goes through serde with an `io::Write` to
//! `fmt::Write` adaptor that re-validates UTF-8 on each of the ~70 small writes of an
//! access-log line; under load that was a fifth of the server's instructions (callgrind).
//! This writes straight into the line buffer.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, std::time::SystemTime::now())?;
        write!(writer, "\",\"level\":\"{}\",\"target\":", metadata.level())?;
        write_json_str(&mut writer, metadata.target())?;
        let mut fields = FieldWriter {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

struct FieldWriter<'w, W: Write> {
    out: &'w mut W,
    result: fmt::Result,
}

impl<W: Write> FieldWriter<'_, W> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_char(',')?;
                write_json_str(self.out, field.name())?;
                self.out.write_char(':')?;
                value(self.out)
            })();
        }
    }
}

impl<W: Write> Visit for FieldWriter<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| write_json_str(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity.
        self.field(field, |out| {
            if value.is_finite() {
                write!(out, "{value}")
            } else {
                out.write_str("null")
            }
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Formatted straight through an escaping writer: no String per field.
        self.field(field, |out| {
            out.write_char('"')?;
            write!(JsonEscaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// Escapes what is written through it as the inside of a JSON string.
struct JsonEscaped<'w, W: Write>(&'w mut W);

impl<W: Write> Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_json_str_inner(self.0, text)
    }
}

/// RFC 3339 UTC with microseconds, `2026-11-29T17:04:05.123456Z`. The date and time to
/// the second are formatted once per second per thread: a line is written per request,
/// and chrono's formatting (and its String) was a visible share of the access log.
fn write_timestamp(out: &mut impl Write, at: std::time::SystemTime) -> fmt::Result {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (secs, micros) = (since_epoch.as_secs(), since_epoch.subsec_micros());
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let whole = chrono::DateTime::<chrono::Utc>::from_timestamp(
                i64::try_from(secs).unwrap_or(i64::MAX),
                0,
            )
            .unwrap_or_default();
            cached.1 = whole.format("%Y-%m-%dT%H:%M:%S").to_string();
            cached.0 = secs;
        }
        write!(out, "{}.{micros:06}Z", cached.1)
    })
}

/// Writes `text` as a JSON string literal.
fn write_json_str(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    write_json_str_inner(out, text)?;
    out.write_char('"')
}

/// Writes `text` escaped for the inside of a JSON string. Scans bytes: every character
/// that needs an escape is ASCII, so runs of anything else are copied whole.
fn write_json_str_inner(out: &mut impl Write, text: &str) -> fmt::Result {
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.write_str(&text[start..i])?;
        if escaped.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(escaped)?;
        }
        start = i + 1;
    }
    out.write_str(&text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_796_000_645_000_007);
        let mut out = String::new();
        write_timestamp(&mut out, at).unwrap();
        let again = at + std::time::Duration::from_micros(5);
        out.push(' ');
        write_timestamp(&mut out, again).unwrap();
        assert_eq!(
            out,
            "2026-11-30T01:04:05.000007Z 2026-11-30T01:04:05.000012Z"
        );
    }

    #[test]
    fn escapes_like_json() {
        let mut out = String::new();
        write_json_str(&mut out, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn events_are_one_json_object_per_line() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "access", method = "GET", status = 200u16, latency_ms = 1.5, ok = true, odd = ?("x\"y"), "request");
            tracing::warn!(count = -3i64, "second \"line\"");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["target"], "access");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "request");
        assert_eq!(
            (lines[0]["status"].as_u64(), lines[0]["latency_ms"].as_f64()),
            (Some(200), Some(1.5))
        );
        assert_eq!(lines[0]["ok"], true);
        assert_eq!(lines[0]["odd"], "\"x\\\"y\"");
        assert_eq!(lines[1]["count"], -3);
        assert_eq!(lines[1]["message"], "second \"line\"");
        let timestamp = lines[1]["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
        assert_eq!(timestamp.len(), "2026-11-29T17:04:05.123456Z".len());
    }
}
