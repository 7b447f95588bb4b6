//! A latency histogram in microseconds that serializes to compact, lossless text: HDR
//! V2 + DEFLATE, base64. Two histograms with the same settings add exactly, so merging
//! records from several load generators loses nothing.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::de::Error as _;
use serde::{
    Deserialize, Deserializer as SerdeDeserializer, Serialize, Serializer as SerdeSerializer,
};

/// Highest latency recorded exactly: 10 minutes. Longer samples are clamped to it
/// (and counted as such by the caller) rather than dropped.
pub const MAX_MICROS: u64 = 600_000_000;
/// Three significant digits: 0.1% relative error at every magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;

#[derive(Clone, PartialEq)]
pub struct LatencyHistogram(hdrhistogram::Histogram<u64>);

#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("cannot create histogram: {0}")]
    Create(#[from] hdrhistogram::CreationError),
    #[error("cannot merge histograms: {0}")]
    Merge(#[from] hdrhistogram::AdditionError),
}

impl LatencyHistogram {
    pub fn new() -> Self {
        // Bounds are constants that hdrhistogram accepts; `new_with_bounds` only fails
        // on invalid bounds, so this cannot panic (covered by every test).
        match hdrhistogram::Histogram::new_with_bounds(1, MAX_MICROS, SIGNIFICANT_DIGITS) {
            Ok(histogram) => Self(histogram),
            Err(_) => unreachable!("constant histogram bounds are valid"),
        }
    }

    /// Records one sample, clamped into the histogram's range.
    pub fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    /// Records `count` samples of the same value.
    pub fn record_n(&mut self, micros: u64, count: u64) {
        let _ = self.0.record_n(micros.clamp(1, MAX_MICROS), count);
    }

    pub fn add(&mut self, other: &LatencyHistogram) -> Result<(), HistogramError> {
        Ok(self.0.add(&other.0)?)
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at `quantile` (0.0–1.0) in microseconds; `None` when empty.
    pub fn quantile_micros(&self, quantile: f64) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.value_at_quantile(quantile))
    }

    pub fn max_micros(&self) -> Option<u64> {
        (!self.0.is_empty()).then(|| self.0.max())
    }

    pub fn mean_micros(&self) -> Option<f64> {
        (!self.0.is_empty()).then(|| self.0.mean())
    }

    pub fn inner(&self) -> &hdrhistogram::Histogram<u64> {
        &self.0
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("p50_us", &self.quantile_micros(0.5))
            .field("p99_us", &self.quantile_micros(0.99))
            .finish()
    }
}

impl Serialize for LatencyHistogram {
    fn serialize<S: SerdeSerializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .map_err(|e| serde::ser::Error::custom(format!("histogram encoding failed: {e:?}")))?;
        serializer.serialize_str(&STANDARD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for LatencyHistogram {
    fn deserialize<D: SerdeDeserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(|e| D::Error::custom(format!("histogram is not base64: {e}")))?;
        let histogram: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| D::Error::custom(format!("histogram does not decode: {e:?}")))?;
        // Re-home into our bounds so that any two decoded histograms add exactly.
        let mut ours = Self::new();
        ours.0
            .add(&histogram)
            .map_err(|e| D::Error::custom(format!("histogram out of range: {e:?}")))?;
        Ok(ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_losslessly_through_json() {
        let mut histogram = LatencyHistogram::new();
        for micros in [150, 151, 900, 12_000, 12_000, 2_500_000] {
            histogram.record(micros);
        }
        let json = serde_json::to_string(&histogram).unwrap();
        let back: LatencyHistogram = serde_json::from_str(&json).unwrap();
        assert_eq!(back, histogram);
        assert_eq!(back.count(), 6);
        assert_eq!(back.quantile_micros(1.0), histogram.quantile_micros(1.0));
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (
            LatencyHistogram::new(),
            LatencyHistogram::new(),
            LatencyHistogram::new(),
        );
        for i in 0..10_000u64 {
            let micros = 100 + (i * 7919) % 50_000;
            if i % 3 == 0 {
                a.record(micros)
            } else {
                b.record(micros)
            }
            all.record(micros);
        }
        a.add(&b).unwrap();
        assert_eq!(a, all);
        for q in [0.5, 0.95, 0.99, 0.999] {
            assert_eq!(a.quantile_micros(q), all.quantile_micros(q));
        }
    }

    #[test]
    fn out_of_range_samples_are_clamped_not_lost() {
        let mut histogram = LatencyHistogram::new();
        histogram.record(0);
        histogram.record(MAX_MICROS * 10);
        assert_eq!(histogram.count(), 2);
        assert!(histogram.max_micros().unwrap() >= MAX_MICROS);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(serde_json::from_str::<LatencyHistogram>("\"not base64!\"").is_err());
        assert!(serde_json::from_str::<LatencyHistogram>("\"aGVsbG8=\"").is_err());
    }
}
