//! HdrHistogram interval logs (`.hlog`): the format other HdrHistogram tools
//! read (Java's HistogramLogProcessor, HdrHistogram_py, hdrhistogram-go):
//! header comments, `#[StartTime: ...]`, `#[BaseTime: ...]`, the CSV legend,
//! then one line per interval: start (seconds after BaseTime), length,
//! max (in milliseconds, `#[MaxValueDivisor: 1000.000]`), and the interval's
//! histogram, V2-compressed and base64-encoded. Values are microseconds.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use loadgen_common::histogram::LatencyHistogram;

use crate::model::IntervalLogs;

/// One interval of a log: when it ended (seconds after the common start), how
/// long it was, and its histogram.
pub struct LogInterval<'a> {
    pub end_s: f64,
    pub length_s: f64,
    pub histogram: &'a LatencyHistogram,
}

/// Write one interval log to `w`. `start` is the wall-clock common start.
pub fn write_log(w: &mut dyn Write, start: SystemTime, what: &str, intervals: &[LogInterval<'_>]) -> io::Result<()> {
    let epoch = start.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    writeln!(w, "#duroxide-pg load generator {}: {what}", loadgen_common::TOOL_VERSION)?;
    writeln!(w, "#Values are microseconds; Interval_Max is in milliseconds.")?;
    writeln!(w, "#[StartTime: {epoch:.3} (seconds since epoch)]")?;
    writeln!(w, "#[BaseTime: {epoch:.3} (seconds since epoch)]")?;
    writeln!(w, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")?;
    let mut serializer = V2DeflateSerializer::new();
    let mut out = Adapter(w);
    let mut log =
        IntervalLogWriterBuilder::new().with_max_value_divisor(1000.0).begin_log_with(&mut out, &mut serializer)?;
    for iv in intervals {
        let start_s = (iv.end_s - iv.length_s).max(0.0);
        log.write_histogram(
            &iv.histogram.to_hdr(),
            Duration::from_secs_f64(start_s),
            Duration::from_secs_f64(iv.length_s.max(0.0)),
            None,
        )
        .map_err(|e| io::Error::other(format!("{e:?}")))?;
    }
    Ok(())
}

/// `io::Write` over a `dyn Write` (the log writer wants a sized type).
struct Adapter<'a>(&'a mut dyn Write);

impl Write for Adapter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Write `<dir>/<run>-merged.hlog` and `<dir>/<run>-agent<i>.hlog`; returns
/// the paths written.
pub fn write_run_logs(dir: &Path, logs: &IntervalLogs) -> io::Result<Vec<PathBuf>> {
    let (run_id, start) = (&logs.run_id, logs.start);
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut one = |name: String, what: String, series: &[(f64, LatencyHistogram)]| -> io::Result<()> {
        let path = dir.join(name);
        let ends = std::iter::once(0.0).chain(series.iter().map(|(end, _)| *end));
        let refs: Vec<LogInterval<'_>> = series
            .iter()
            .zip(ends)
            .map(|((end, h), prev)| LogInterval { end_s: *end, length_s: end - prev, histogram: h })
            .collect();
        let mut f = io::BufWriter::new(std::fs::File::create(&path)?);
        write_log(&mut f, start, &what, &refs)?;
        f.flush()?;
        written.push(path);
        Ok(())
    };
    one(format!("{run_id}-merged.hlog"), format!("run {run_id}, all agents merged"), &logs.merged)?;
    for (i, series) in logs.agents.iter().enumerate() {
        one(format!("{run_id}-agent{i}.hlog"), format!("run {run_id}, agent {i}"), series)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    /// Standard base64 (the logs' alphabet), enough for a test.
    fn base64(text: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let digits: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(val).collect();
        let mut out = Vec::new();
        for chunk in digits.chunks(4) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, d)| acc | (u32::from(*d) << (18 - 6 * i)));
            out.extend(n.to_be_bytes()[1..chunk.len()].iter());
        }
        out
    }

    #[test]
    fn logs_read_back_with_the_same_counts_and_quantiles() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for us in [1_000, 2_000, 250_000] {
            a.record_us(us);
        }
        b.record_us(7_000_000);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut buf = Vec::new();
        let ivs = [
            LogInterval { end_s: 1.0, length_s: 1.0, histogram: &a },
            LogInterval { end_s: 2.0, length_s: 1.0, histogram: &b },
        ];
        write_log(&mut buf, start, "test", &ivs).expect("write");
        let text = String::from_utf8(buf.clone()).expect("utf8");
        assert!(text.contains("#[StartTime: 1800000000.000"), "{text}");
        assert!(text.contains("\"StartTimestamp\",\"Interval_Length\""), "{text}");
        let mut found = Vec::new();
        for entry in IntervalLogIterator::new(&buf) {
            if let Ok(LogEntry::Interval(h)) = entry {
                let bytes = base64(h.encoded_histogram());
                let hist: hdrhistogram::Histogram<u64> =
                    Deserializer::new().deserialize(&mut bytes.as_slice()).expect("histogram");
                found.push((h.start_timestamp(), h.max(), hist.len(), hist.value_at_quantile(0.99)));
            }
        }
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].2, 3);
        assert_eq!(found[1].2, 1);
        assert!((found[0].1 - 250.0).abs() < 1.0, "max in ms: {}", found[0].1);
        assert_eq!(found[0].3, a.to_hdr().value_at_quantile(0.99));
        assert_eq!(found[1].0, Duration::from_secs(1));
    }
}
