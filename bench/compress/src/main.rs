//! Whole-buffer compression on real text files: which gzip implementation the file cache
//! uses, and which brotli and zstd levels it uses inline (on a cache miss, on the request's
//! thread) and for the stored copy (in the background).
//!
//! Usage: compress-bench DIR... ; files with a text extension, 1 KiB to 2 MiB, at most
//! 64 MB in all. The Rust toolchain's own documentation is a real documentation site:
//! `compress-bench "$(rustc --print sysroot)/share/doc/rust/html"`.
//!
//! Sections (`SECTIONS`, default all four):
//! - `ratio`: each compressor compresses every file in turn; rounds interleave the
//!   compressors and the medians of their MB/s are reported with the compressed/original
//!   ratio. The slow levels (brotli 11, zstd 19) compress every `SLOW_EVERY`-th file
//!   (default 4); every row also reports its ratio on that subset, so that they compare.
//! - `decode`: decompression of some of those outputs, the original length known.
//! - `perfile`: each file's own time for the fast levels (median over the rounds of the
//!   `ratio` section, which it needs), by size bucket, with a fit `fixed + per-KB` and the
//!   file size at which one compression takes 200 µs.
//! - `memory`: compressor state in RSS, each probe in a child process of its own.
//!
//! Other settings: `ROUNDS` (default 5); `GZIP_ALL=1` adds flate2 (miniz_oxide) and zlib-rs
//! at levels 1, 6 and 9 (the 2026-12-03 comparison); `SKIP_SLOW=1` leaves out brotli 9 and
//! 11, libdeflate 12 and zstd 19. Built with `--features jemalloc`, the bench allocates
//! through jemalloc as leanserve does (glibc malloc otherwise); brotli's cost per file with
//! lgwin 22 depends on the allocator.
//!
//! brotli: `brotli::enc::BrotliEncoderParams` with the quality, `size_hint` = the input's
//! length and `lgwin` either 22 (the encoder's default) or sized to the input,
//! clamp(ceil(log2(len)) + 1, 10, 22), or so sized with a floor of 17 (qualities up to 8);
//! one `compress_stream` call with
//! `BROTLI_OPERATION_FINISH` over the whole input into a buffer of the worst-case size (what
//! the C library's one-shot `BrotliEncoderCompress` does). zstd: one
//! `zstd::bulk::Compressor` per level, reused across files (`ZSTD_compress2`, which knows
//! the input's size).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// leanserve's allocator; its options (`leanserve::alloc::MALLOC_CONF`, less the profiling
/// ones) go in `_RJEM_MALLOC_CONF`.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const EXTENSIONS: &[&str] = &[
    "html", "htm", "css", "js", "json", "txt", "md", "svg", "xml",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn collect(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>, total: &mut usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            collect(&path, out, total);
        } else if meta.is_file()
            && (1024..=2 << 20).contains(&meta.len())
            && *total < 64 << 20
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e))
        {
            if let Ok(bytes) = std::fs::read(&path) {
                *total += bytes.len();
                out.push((path, bytes));
            }
        }
    }
}

fn miniz(level: u32, data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::new(level),
    );
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn zlib_rs(level: i32, data: &[u8]) -> Vec<u8> {
    use libz_rs_sys::*;
    let mut stream: z_stream = unsafe { std::mem::zeroed() };
    // windowBits 15 + 16: a gzip wrapper.
    let ret = unsafe {
        deflateInit2_(
            &mut stream,
            level,
            Z_DEFLATED,
            31,
            8,
            Z_DEFAULT_STRATEGY,
            zlibVersion(),
            std::mem::size_of::<z_stream>() as i32,
        )
    };
    assert_eq!(ret, Z_OK);
    let bound = unsafe { deflateBound(&mut stream, data.len() as _) } as usize;
    let mut out = vec![0u8; bound];
    stream.next_in = data.as_ptr();
    stream.avail_in = data.len() as _;
    stream.next_out = out.as_mut_ptr();
    stream.avail_out = bound as _;
    let ret = unsafe { deflate(&mut stream, Z_FINISH) };
    assert_eq!(ret, Z_STREAM_END);
    out.truncate(stream.total_out as usize);
    unsafe { deflateEnd(&mut stream) };
    out
}

fn libdeflate(compressor: &mut libdeflater::Compressor, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; compressor.gzip_compress_bound(data.len())];
    let n = compressor.gzip_compress(data, &mut out).unwrap();
    out.truncate(n);
    out
}

/// The window that holds the whole input: clamp(ceil(log2(len)) + 1, min, 22).
fn sized_lgwin(len: usize, min: i32) -> i32 {
    let ceil_log2 = usize::BITS - len.max(1).saturating_sub(1).leading_zeros();
    (ceil_log2 as i32 + 1).clamp(min, 22)
}

/// brotli's window: a fixed lgwin, or sized to the input with a floor (10 is brotli's own).
#[derive(Clone, Copy)]
enum Window {
    Fixed(i32),
    Sized(i32),
}

impl Window {
    fn lgwin(self, len: usize) -> i32 {
        match self {
            Window::Fixed(w) => w,
            Window::Sized(min) => sized_lgwin(len, min),
        }
    }
    fn parse(s: &str) -> Self {
        match s.strip_prefix("sized") {
            Some("") => Window::Sized(10),
            Some(min) => Window::Sized(min.trim_start_matches(">=").parse().unwrap()),
            None => Window::Fixed(s.parse().unwrap()),
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Window::Fixed(w) => write!(f, "{w}"),
            Window::Sized(10) => write!(f, "sized"),
            Window::Sized(min) => write!(f, "sized>={min}"),
        }
    }
}

/// Whole-buffer brotli.
fn brotli(quality: i32, window: Window, data: &[u8]) -> Vec<u8> {
    use brotli::enc::StandardAlloc;
    use brotli::enc::encode::{
        BrotliEncoderDestroyInstance, BrotliEncoderMaxCompressedSize, BrotliEncoderOperation,
        BrotliEncoderStateStruct,
    };
    let mut state = BrotliEncoderStateStruct::new(StandardAlloc::default());
    state.params = brotli::enc::BrotliEncoderParams {
        quality,
        lgwin: window.lgwin(data.len()),
        size_hint: data.len(),
        ..Default::default()
    };
    let mut out = vec![0u8; BrotliEncoderMaxCompressedSize(data.len()).max(64)];
    let (mut available_in, mut in_offset) = (data.len(), 0);
    let (mut available_out, mut out_offset) = (out.len(), 0);
    let mut total_out = Some(0);
    let ok = state.compress_stream(
        BrotliEncoderOperation::BROTLI_OPERATION_FINISH,
        &mut available_in,
        data,
        &mut in_offset,
        &mut available_out,
        &mut out,
        &mut out_offset,
        &mut total_out,
        &mut |_, _, _, _| (),
    );
    assert!(ok && state.is_finished(), "brotli did not finish");
    BrotliEncoderDestroyInstance(&mut state);
    out.truncate(out_offset);
    out
}

fn brotli_decode(data: &[u8], len: usize) -> Vec<u8> {
    use brotli::enc::StandardAlloc;
    let mut out = vec![0u8; len];
    let mut state = brotli::BrotliState::new(
        StandardAlloc::default(),
        StandardAlloc::default(),
        StandardAlloc::default(),
    );
    let (mut available_in, mut in_offset) = (data.len(), 0);
    let (mut available_out, mut out_offset, mut written) = (len, 0, 0);
    let result = brotli::BrotliDecompressStream(
        &mut available_in,
        &mut in_offset,
        data,
        &mut available_out,
        &mut out_offset,
        &mut out,
        &mut written,
        &mut state,
    );
    assert!(matches!(result, brotli::BrotliResult::ResultSuccess));
    assert_eq!(out_offset, len);
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// This process's user + system CPU seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from the state at field 3.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// VmRSS and VmHWM from /proc/self/status, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Section {
    name: &'static str,
    started: Instant,
    cpu: f64,
    load: String,
}

impl Section {
    fn start(name: &'static str) -> Self {
        Section {
            name,
            started: Instant::now(),
            cpu: cpu_seconds(),
            load: loadavg(),
        }
    }
    fn end(self) {
        let wall = self.started.elapsed().as_secs_f64();
        let cpu = if wall >= 2.0 && self.name != "memory" {
            format!(
                ", this process on a CPU {:.0}% of it",
                100.0 * (cpu_seconds() - self.cpu) / wall
            )
        } else {
            String::new()
        };
        println!(
            "\n({}: {wall:.0} s wall{cpu}; loadavg {} at the start, {} at the end)\n",
            self.name,
            self.load,
            loadavg()
        );
    }
}

type Run = Box<dyn FnMut(&[u8]) -> Vec<u8>>;

struct Case {
    name: String,
    run: Run,
    /// Compresses only every SLOW_EVERY-th file.
    slow: bool,
    /// Each file's time is reported (`perfile`).
    fast: bool,
    /// Its outputs are kept for the `decode` section.
    decode: Option<Codec>,
}

#[derive(Clone, Copy)]
enum Codec {
    Gzip,
    Brotli,
    Zstd,
}

const BUCKETS: &[(usize, usize, &str)] = &[
    (1 << 10, 4 << 10, "1–4 KiB"),
    (4 << 10, 16 << 10, "4–16 KiB"),
    (16 << 10, 64 << 10, "16–64 KiB"),
    (64 << 10, 256 << 10, "64–256 KiB"),
    (256 << 10, (2 << 20) + 1, "256 KiB–2 MiB"),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--probe") {
        return probe(&args[1..]);
    }
    let dirs = args;
    assert!(!dirs.is_empty(), "usage: compress-bench DIR...");
    let rounds = env_usize("ROUNDS", 5);
    let slow_every = env_usize("SLOW_EVERY", 4).max(1);
    let sections = std::env::var("SECTIONS").unwrap_or("ratio decode perfile memory".into());
    let skip_slow = std::env::var("SKIP_SLOW").is_ok_and(|v| v == "1");
    let (mut files, mut total) = (Vec::new(), 0);
    for dir in &dirs {
        collect(Path::new(dir), &mut files, &mut total);
    }
    assert!(!files.is_empty(), "no text files under {dirs:?}");
    let subset: Vec<usize> = (0..files.len()).step_by(slow_every).collect();
    let subset_total: usize = subset.iter().map(|&i| files[i].1.len()).sum();
    println!(
        "{} files, {:.1} MB of text; every {slow_every}th file: {} files, {:.1} MB; {rounds} interleaved rounds (medians)",
        files.len(),
        total as f64 / 1e6,
        subset.len(),
        subset_total as f64 / 1e6
    );

    if sections.contains("ratio") || sections.contains("decode") || sections.contains("perfile") {
        let mut cases: Vec<Case> = Vec::new();
        let case = |name: String, run: Run, slow, fast, decode| Case {
            name,
            run,
            slow,
            fast,
            decode,
        };
        if std::env::var("GZIP_ALL").is_ok_and(|v| v == "1") {
            for level in [1u32, 6, 9] {
                let name = format!("flate2 + miniz_oxide, level {level}");
                cases.push(case(
                    name,
                    Box::new(move |d| miniz(level, d)),
                    false,
                    false,
                    None,
                ));
            }
            for level in [1i32, 6, 9] {
                let name = format!("zlib-rs, level {level}");
                cases.push(case(
                    name,
                    Box::new(move |d| zlib_rs(level, d)),
                    false,
                    false,
                    None,
                ));
            }
        }
        for level in [1i32, 6, 9, 12] {
            if skip_slow && level == 12 {
                continue;
            }
            let mut c =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
            cases.push(case(
                format!("gzip (libdeflate) {level}"),
                Box::new(move |d| libdeflate(&mut c, d)),
                false,
                matches!(level, 1 | 6),
                matches!(level, 6 | 12).then_some(Codec::Gzip),
            ));
        }
        for quality in [1i32, 3, 4, 5, 6, 9, 11] {
            if skip_slow && quality >= 9 {
                continue;
            }
            // At qualities 5 to 8 an lgwin of 16 or less asks for hashers 40 to 42, which
            // this encoder lacks: it falls back to its default hasher (H6 with 2^15 buckets
            // of 256 entries). "sized>=17" keeps the sized window out of that range.
            let mut windows = vec![Window::Fixed(22), Window::Sized(10)];
            if quality <= 8 {
                windows.push(Window::Sized(17));
            }
            for window in windows {
                let sized = matches!(window, Window::Sized(_));
                cases.push(case(
                    format!("br {quality}, lgwin {window}"),
                    Box::new(move |d| brotli(quality, window, d)),
                    quality == 11,
                    quality <= 5,
                    (matches!(quality, 5 | 11) || (quality == 1 && sized)).then_some(Codec::Brotli),
                ));
            }
        }
        for level in [1i32, 3, 6, 12, 19] {
            if skip_slow && level == 19 {
                continue;
            }
            let mut c = zstd::bulk::Compressor::new(level).unwrap();
            cases.push(case(
                format!("zstd {level}"),
                Box::new(move |d| c.compress(d).unwrap()),
                level == 19,
                level <= 3,
                matches!(level, 3 | 19).then_some(Codec::Zstd),
            ));
        }

        let section = Section::start("ratio");
        let n = cases.len();
        let mut speeds = vec![Vec::new(); n];
        let mut sizes = vec![vec![0usize; files.len()]; n];
        // times[case][file]: microseconds, one per round.
        let mut times = vec![vec![Vec::new(); files.len()]; n];
        let mut kept: Vec<Vec<Option<Vec<u8>>>> = vec![Vec::new(); n];
        for round in 0..rounds {
            for (c, case) in cases.iter_mut().enumerate() {
                let indices: Vec<usize> = if case.slow {
                    subset.clone()
                } else {
                    (0..files.len()).collect()
                };
                let keep = round == rounds - 1 && case.decode.is_some();
                if keep {
                    kept[c] = vec![None; files.len()];
                }
                let (mut bytes, started) = (0usize, Instant::now());
                for &i in &indices {
                    let data = &files[i].1;
                    let t = Instant::now();
                    let out = (case.run)(data);
                    times[c][i].push(t.elapsed().as_secs_f64() * 1e6);
                    bytes += data.len();
                    sizes[c][i] = out.len();
                    if keep {
                        kept[c][i] = Some(out);
                    }
                }
                speeds[c].push(bytes as f64 / 1e6 / started.elapsed().as_secs_f64());
            }
            eprintln!(
                "round {} of {rounds} done, loadavg {}",
                round + 1,
                loadavg()
            );
        }
        if sections.contains("ratio") {
            println!(
                "\n| compressor | MB/s | compressed / original | on every {slow_every}th file | ms per MB saved |"
            );
            println!("|---|---|---|---|---|");
            for (c, case) in cases.iter().enumerate() {
                let sub: usize = subset.iter().map(|&i| sizes[c][i]).sum();
                let sub_ratio = sub as f64 / subset_total as f64;
                let speed = median(speeds[c].clone());
                // CPU time per MB of output the compression saves against identity.
                let per_saved = |ratio: f64| 1e3 / (speed * (1.0 - ratio));
                if case.slow {
                    println!(
                        "| {} | {speed:.2} (every {slow_every}th file) | – | {sub_ratio:.4} | {:.0} |",
                        case.name,
                        per_saved(sub_ratio)
                    );
                } else {
                    let ratio = sizes[c].iter().sum::<usize>() as f64 / total as f64;
                    println!(
                        "| {} | {speed:.1} | {ratio:.4} | {sub_ratio:.4} | {:.1} |",
                        case.name,
                        per_saved(ratio)
                    );
                }
            }
        }
        section.end();

        if sections.contains("perfile") {
            let section = Section::start("perfile");
            let bucket_of = |len: usize| BUCKETS.iter().position(|b| (b.0..b.1).contains(&len));
            let mut counts = vec![0; BUCKETS.len()];
            for (_, data) in &files {
                if let Some(b) = bucket_of(data.len()) {
                    counts[b] += 1;
                }
            }
            print!(
                "\nPer file, median over the rounds; each cell: median µs per KB (1,000 bytes) of input / median µs per file\n\n| compressor |"
            );
            for (b, bucket) in BUCKETS.iter().enumerate() {
                print!(" {} ({} files) |", bucket.2, counts[b]);
            }
            println!(" fit on files < 64 KiB: µs fixed + µs per KB | size at 200 µs: fit / bins |");
            println!("|---|{}---|---|", "---|".repeat(BUCKETS.len()));
            for (c, case) in cases.iter().enumerate() {
                if !case.fast {
                    continue;
                }
                let per_file: Vec<(usize, f64)> = files
                    .iter()
                    .enumerate()
                    .map(|(i, (_, d))| (d.len(), median(times[c][i].clone())))
                    .collect();
                print!("| {} |", case.name);
                for b in 0..BUCKETS.len() {
                    let here: Vec<&(usize, f64)> = per_file
                        .iter()
                        .filter(|(len, _)| bucket_of(*len) == Some(b))
                        .collect();
                    if here.is_empty() {
                        print!(" – |");
                        continue;
                    }
                    let per_kb = median(here.iter().map(|(l, t)| t / (*l as f64 / 1e3)).collect());
                    let us = median(here.iter().map(|(_, t)| *t).collect());
                    print!(" {per_kb:.2} / {us:.0} |");
                }
                // Least squares t = a + b * KB over the files under 64 KiB.
                let pts: Vec<(f64, f64)> = per_file
                    .iter()
                    .filter(|(l, _)| *l < 64 << 10)
                    .map(|(l, t)| (*l as f64 / 1e3, *t))
                    .collect();
                let m = pts.len() as f64;
                let (sx, sy) = pts.iter().fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1));
                let (mx, my) = (sx / m, sy / m);
                let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
                let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
                let slope = sxy / sxx;
                let fixed = my - slope * mx;
                // Without a model: files in bins a quarter of an octave wide; the first bin
                // whose median time passes 200 µs, interpolated from the bin before it.
                let bin = |len: usize| ((len as f64 / 1024.0).log2() * 4.0).floor() as i32;
                let mut bins: Vec<(i32, Vec<f64>, Vec<f64>)> = Vec::new();
                let mut sorted = per_file.clone();
                sorted.sort_by_key(|p| p.0);
                for (len, t) in sorted {
                    let b = bin(len);
                    if bins.last().is_none_or(|l| l.0 != b) {
                        bins.push((b, Vec::new(), Vec::new()));
                    }
                    let last = bins.last_mut().unwrap();
                    last.1.push(len as f64);
                    last.2.push(t);
                }
                let points: Vec<(f64, f64)> = bins
                    .into_iter()
                    .filter(|b| b.1.len() >= 3)
                    .map(|b| (median(b.1), median(b.2)))
                    .collect();
                let crossing = points.windows(2).find(|w| w[1].1 > 200.0).map(|w| {
                    let (a, b) = (w[0], w[1]);
                    let f = ((200.0 - a.1) / (b.1 - a.1)).clamp(0.0, 1.0);
                    (a.0 + f * (b.0 - a.0)) / 1e3
                });
                println!(
                    " {fixed:.1} + {slope:.3} | {:.0} KB / {} |",
                    (200.0 - fixed) / slope,
                    crossing.map_or("–".to_string(), |kb| format!("{kb:.0} KB"))
                );
            }
            section.end();
        }

        if sections.contains("decode") {
            let section = Section::start("decode");
            let mut decoders: Vec<(usize, Codec)> = Vec::new();
            for (c, case) in cases.iter().enumerate() {
                if let Some(codec) = case.decode {
                    decoders.push((c, codec));
                }
            }
            let mut zstd_decompressor = zstd::bulk::Decompressor::new().unwrap();
            let mut inflater = libdeflater::Decompressor::new();
            let mut speeds = vec![Vec::new(); decoders.len()];
            for _ in 0..rounds {
                for (d, &(c, codec)) in decoders.iter().enumerate() {
                    let (mut bytes, started) = (0usize, Instant::now());
                    for (i, compressed) in kept[c].iter().enumerate() {
                        let Some(compressed) = compressed else {
                            continue;
                        };
                        let len = files[i].1.len();
                        let out = match codec {
                            Codec::Gzip => {
                                let mut out = vec![0u8; len];
                                let n = inflater.gzip_decompress(compressed, &mut out).unwrap();
                                assert_eq!(n, len);
                                out
                            }
                            Codec::Brotli => brotli_decode(compressed, len),
                            Codec::Zstd => {
                                let mut out = Vec::with_capacity(len);
                                zstd_decompressor
                                    .decompress_to_buffer(&compressed[..], &mut out)
                                    .unwrap();
                                out
                            }
                        };
                        assert!(out == files[i].1, "{} does not round-trip", cases[c].name);
                        bytes += len;
                    }
                    speeds[d].push(bytes as f64 / 1e6 / started.elapsed().as_secs_f64());
                }
            }
            println!("\n| decoder (output of, length known) | MB/s of output |");
            println!("|---|---|");
            for (d, &(c, _)) in decoders.iter().enumerate() {
                let which = if cases[c].slow {
                    format!(" (every {slow_every}th file)")
                } else {
                    String::new()
                };
                println!(
                    "| {}{which} | {:.1} |",
                    cases[c].name,
                    median(speeds[d].clone())
                );
            }
            section.end();
        }
    }

    if sections.contains("memory") {
        let section = Section::start("memory");
        // The files closest to 100 KB and to 1 MB.
        let closest = |target: usize| {
            files
                .iter()
                .min_by_key(|(_, d)| d.len().abs_diff(target))
                .map(|(p, _)| p.clone())
                .unwrap()
        };
        let (tiny, small, large) = (closest(10_000), closest(100_000), closest(1_000_000));
        let exe = std::env::current_exe().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new(&exe)
                .arg("--probe")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let (tiny, small, large) = (
            tiny.to_str().unwrap(),
            small.to_str().unwrap(),
            large.to_str().unwrap(),
        );
        println!("\nFiles (each probe in a fresh process):");
        for f in [tiny, small, large] {
            let short = dirs
                .iter()
                .fold(f, |f, d| f.strip_prefix(d.as_str()).unwrap_or(f));
            println!("- {short}: {} bytes", std::fs::metadata(f).unwrap().len());
        }
        println!("| probe | RSS / peak growth |");
        println!("|---|---|");
        for level in ["1", "3", "6", "19"] {
            println!("{}", run(&["zstd", level, small, large]));
        }
        for quality in ["5", "11"] {
            for lgwin in ["22", "sized"] {
                for file in [tiny, small, large] {
                    println!("{}", run(&["brotli", quality, lgwin, file]));
                }
            }
        }
        println!("{}", run(&["brotli", "5", "sized>=17", tiny]));
        section.end();
    }
}

/// `--probe zstd LEVEL SMALL LARGE`: RSS growth of 10 reused compressors at LEVEL after each
/// compressed SMALL, then LARGE. `--probe brotli QUALITY LGWIN FILE`: peak RSS growth of
/// one compression of FILE.
fn probe(args: &[String]) {
    let kib = |k: u64| k as f64 / 1024.0;
    match args[0].as_str() {
        "zstd" => {
            let level: i32 = args[1].parse().unwrap();
            let small = std::fs::read(&args[2]).unwrap();
            let large = std::fs::read(&args[3]).unwrap();
            let (base, _) = rss_kib();
            let mut compressors: Vec<zstd::bulk::Compressor> = (0..10)
                .map(|_| zstd::bulk::Compressor::new(level).unwrap())
                .collect();
            let (created, _) = rss_kib();
            for c in &mut compressors {
                std::hint::black_box(c.compress(&small).unwrap());
            }
            let (after_small, _) = rss_kib();
            for c in &mut compressors {
                std::hint::black_box(c.compress(&large).unwrap());
            }
            let (after_large, _) = rss_kib();
            println!(
                "| 10 zstd {level} compressors: created / after a {} KB file each / then a {} KB file each | +{:.1} / +{:.1} / +{:.1} MiB ({:.2} / {:.2} MiB each after the two files) |",
                small.len() / 1000,
                large.len() / 1000,
                kib(created.saturating_sub(base)),
                kib(after_small.saturating_sub(base)),
                kib(after_large.saturating_sub(base)),
                kib(after_small.saturating_sub(base)) / 10.0,
                kib(after_large.saturating_sub(base)) / 10.0,
            );
        }
        "brotli" => {
            let quality: i32 = args[1].parse().unwrap();
            let window = Window::parse(&args[2]);
            let data = std::fs::read(&args[3]).unwrap();
            // Reset VmHWM to the current RSS.
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let (base, _) = rss_kib();
            let started = Instant::now();
            let out = brotli(quality, window, &data);
            let ms = started.elapsed().as_secs_f64() * 1e3;
            let (_, peak) = rss_kib();
            println!(
                "| one br {quality} (lgwin {window}: {}) compression of a {} KB file | peak +{:.1} MiB ({ms:.1} ms, ratio {:.3}) |",
                window.lgwin(data.len()),
                data.len() / 1000,
                kib(peak.saturating_sub(base)),
                out.len() as f64 / data.len() as f64
            );
        }
        other => panic!("unknown probe {other}"),
    }
}
