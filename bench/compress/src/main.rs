//! Whole-buffer gzip on real text files: flate2 on miniz_oxide (leanserve's current
//! backend), zlib-rs (through its zlib C API), and libdeflate, at several levels.
//! Each compressor compresses every file in turn; rounds interleave the compressors and
//! the medians of their MB/s are reported with the compressed/original ratio.
//!
//! Usage: compress-bench DIR... ; files with a text extension, 1 KiB to 2 MiB, at most
//! 64 MB in all. The Rust toolchain's own documentation is a real documentation site:
//! `compress-bench "$(rustc --print sysroot)/share/doc/rust/html"`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

const EXTENSIONS: &[&str] = &[
    "html", "htm", "css", "js", "json", "txt", "md", "svg", "xml",
];
const ROUNDS: usize = 5;

fn collect(dir: &Path, out: &mut Vec<Vec<u8>>, total: &mut usize) {
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
                out.push(bytes);
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    assert!(!dirs.is_empty(), "usage: compress-bench DIR...");
    let (mut files, mut total) = (Vec::new(), 0);
    for dir in &dirs {
        collect(Path::new(dir), &mut files, &mut total);
    }
    assert!(!files.is_empty(), "no text files under {dirs:?}");
    type Run = Box<dyn FnMut(&[u8]) -> Vec<u8>>;
    let mut cases: Vec<(String, Run)> = Vec::new();
    for level in [1u32, 6, 9] {
        cases.push((
            format!("flate2 + miniz_oxide, level {level}"),
            Box::new(move |d| miniz(level, d)),
        ));
    }
    for level in [1i32, 6, 9] {
        cases.push((
            format!("zlib-rs, level {level}"),
            Box::new(move |d| zlib_rs(level, d)),
        ));
    }
    for level in [1i32, 6, 9, 12] {
        let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        cases.push((
            format!("libdeflate, level {level}"),
            Box::new(move |d| libdeflate(&mut c, d)),
        ));
    }
    let mut speeds = vec![Vec::new(); cases.len()];
    let mut ratios = vec![0.0; cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, run)) in cases.iter_mut().enumerate() {
            let started = Instant::now();
            let mut out = 0usize;
            for file in &files {
                out += run(file).len();
            }
            let seconds = started.elapsed().as_secs_f64();
            speeds[i].push(total as f64 / 1e6 / seconds);
            ratios[i] = out as f64 / total as f64;
        }
    }
    println!(
        "{} files, {:.1} MB of text, {ROUNDS} interleaved rounds (medians)\n",
        files.len(),
        total as f64 / 1e6
    );
    println!("| compressor | MB/s | compressed / original |");
    println!("|---|---|---|");
    for (i, (name, _)) in cases.iter().enumerate() {
        println!(
            "| {name} | {:.1} | {:.3} |",
            median(speeds[i].clone()),
            ratios[i]
        );
    }

    // Inflating level-6 gzip back, the original length known (as the cache knows it).
    let gzipped: Vec<(Vec<u8>, usize)> = files.iter().map(|f| (miniz(6, f), f.len())).collect();
    let mut flate2_speeds = Vec::new();
    let mut libdeflate_speeds = Vec::new();
    let mut decompressor = libdeflater::Decompressor::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for (gzip, len) in &gzipped {
            let mut out = Vec::with_capacity(*len);
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut out)
                .unwrap();
            assert_eq!(out.len(), *len);
        }
        flate2_speeds.push(total as f64 / 1e6 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        for (gzip, len) in &gzipped {
            let mut out = vec![0u8; *len];
            let n = decompressor.gzip_decompress(gzip, &mut out).unwrap();
            assert_eq!(n, *len);
        }
        libdeflate_speeds.push(total as f64 / 1e6 / started.elapsed().as_secs_f64());
    }
    println!("\n| inflater | MB/s of output |");
    println!("|---|---|");
    println!("| flate2 + miniz_oxide | {:.1} |", median(flate2_speeds));
    println!("| libdeflate | {:.1} |", median(libdeflate_speeds));
}
