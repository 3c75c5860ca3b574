//! That a real browser draws the report's charts: Debian's headless
//! Chromium opens the page, its PNG screenshot is decoded here, and the
//! pixels of the fixed chart colours are counted. These fail, not skip,
//! without Chromium. With `HTML_REPORT_SCREENSHOTS=<dir>` they also keep the
//! screenshots there (`html-report-run.png`, `html-report-sweep.png`) for a
//! person to look at.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::html_report::{html_of_run, html_of_sweep, run_report, sweep_report};

#[test]
fn run_report_charts_render_in_chromium() {
    let shot = screenshot(&html_of_run(&run_report("ab12cd34")), "run");
    for (colour, what) in [
        ([0x1f, 0x77, 0xb4], "merged throughput / p99"),
        ([0x94, 0x67, 0xbd], "spectrum"),
        ([0xff, 0x7f, 0x0e], "commits"),
    ] {
        let n = shot.count(colour);
        assert!(n > 300, "{what} line: only {n} pixels of {colour:02x?} in the screenshot");
    }
}

#[test]
fn sweep_report_charts_render_in_chromium() {
    let shot = screenshot(&html_of_sweep(&sweep_report(), &[run_report("step0")]), "sweep");
    let curve = shot.count([0x17, 0xbe, 0xcf]);
    assert!(curve > 300, "sweep curve: only {curve} pixels");
    let knee = shot.count([0xe3, 0x77, 0xc2]);
    assert!(knee > 50, "knee marker: only {knee} pixels");
}

/// An RGB(A) screenshot.
struct Image {
    channels: usize,
    pixels: Vec<u8>,
}

impl Image {
    /// Pixels within 2 per channel of `rgb`.
    fn count(&self, rgb: [u8; 3]) -> usize {
        let near = |a: u8, b: u8| a.abs_diff(b) <= 2;
        self.pixels.chunks_exact(self.channels).filter(|p| (0..3).all(|i| near(p[i], rgb[i]))).count()
    }
}

/// Take a screenshot of `html` with headless Chromium (killed after 60 s).
fn screenshot(html: &str, name: &str) -> Image {
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join(format!("{name}.html"));
    let png = dir.path().join(format!("{name}.png"));
    std::fs::write(&page, html).expect("write page");
    let log = std::fs::File::create(dir.path().join("chromium.log")).expect("log file");
    let spawned = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,6000",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => panic!("cannot run chromium ({e}): install it with `apt-get install chromium`"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took over 60 s: {}", read_log(dir.path()));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success() && png.exists(), "chromium failed ({status}): {}", read_log(dir.path()));
    if let Ok(keep) = std::env::var("HTML_REPORT_SCREENSHOTS") {
        std::fs::copy(&png, Path::new(&keep).join(format!("html-report-{name}.png"))).expect("keep screenshot");
    }
    decode_png(&std::fs::read(&png).expect("read screenshot"))
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("chromium.log")).unwrap_or_default()
}

/// Decode an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes).
fn decode_png(bytes: &[u8]) -> Image {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    let mut pos = 8;
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let data = &bytes[pos + 8..pos + 8 + len];
        match &bytes[pos + 4..pos + 8] {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes")) as usize;
                let (depth, colour, interlace) = (data[8], data[9], data[12]);
                assert!(depth == 8 && interlace == 0, "unexpected PNG depth {depth} / interlace {interlace}");
                channels = match colour {
                    2 => 3,
                    6 => 4,
                    other => panic!("unexpected PNG colour type {other}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    let raw = miniz_oxide::inflate::decompress_to_vec_zlib(&idat).expect("inflate PNG data");
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "PNG data size");
    let mut out = vec![0u8; height * stride];
    for y in 0..height {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels { out[y * stride + x - channels] } else { 0 };
            let b = if y > 0 { out[(y - 1) * stride + x] } else { 0 };
            let c = if x >= channels && y > 0 { out[(y - 1) * stride + x - channels] } else { 0 };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => paeth(a, b, c),
                other => panic!("bad PNG filter {other}"),
            };
            out[y * stride + x] = line[x].wrapping_add(predictor);
        }
    }
    Image { channels, pixels: out }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}
