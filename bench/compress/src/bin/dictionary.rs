//! Site dictionaries for RFC 9842 on a real documentation site: how small the pages a
//! dictionary did not see get (dcz at several zstd levels, dcb at brotli qualities)
//! against gzip 6 and brotli 11, and what one compression costs.
//!
//! Usage: dictionary DIR ; HTML files of DIR, shuffled by a fixed seed, `TRAIN` (2,000) of
//! them to build dictionaries of `SIZES` KiB (64,128,256), the next `TEST` (300) to
//! compress (so changing `TRAIN` changes the test pages too). Dictionaries: `trained`
//! (zstd's trainer, its header and entropy tables removed: raw content, as RFC 9842
//! needs) and `raw` (the training pages' bytes, cut). `LEVELS` (3,9,15,19): the zstd
//! levels of dcz; `QUALITIES` (5,9,11; empty for none): the brotli qualities of dcb;
//! `SAMPLE_CAP` (0: whole pages): each training page cut to that many bytes, as
//! leanserve cuts its samples at 32 KiB.

use std::path::{Path, PathBuf};
use std::time::Instant;

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push(path);
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn gzip6(data: &[u8]) -> usize {
    let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(6).unwrap());
    let mut out = vec![0; c.gzip_compress_bound(data.len())];
    c.gzip_compress(data, &mut out).unwrap()
}

fn brotli(quality: i32, dict: &[u8], data: &[u8]) -> Vec<u8> {
    use brotli::enc::encode::{BrotliEncoderOperation, BrotliEncoderStateStruct};
    use brotli::enc::StandardAlloc;
    let mut s = BrotliEncoderStateStruct::new(StandardAlloc::default());
    s.params.quality = quality;
    s.params.lgwin = 24;
    s.params.size_hint = data.len();
    if !dict.is_empty() {
        s.set_custom_dictionary(dict.len(), dict);
    }
    let mut out = vec![0u8; data.len() + 1024];
    let (mut ai, mut io, mut ao, mut oo) = (data.len(), 0usize, out.len(), 0usize);
    let mut total = None;
    loop {
        let ok = s.compress_stream(BrotliEncoderOperation::BROTLI_OPERATION_FINISH, &mut ai, data, &mut io, &mut ao, &mut out, &mut oo, &mut total, &mut |_, _, _, _| ());
        assert!(ok);
        if s.is_finished() { break; }
        if ao == 0 { out.resize(out.len() * 2, 0); ao = out.len() - oo; }
    }
    out.truncate(oo);
    out
}

fn brotli_decode(dict: &[u8], data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut r = brotli::Decompressor::new_with_custom_dict(data, 4096, dict.to_vec().into());
    r.read_to_end(&mut out).unwrap();
    out
}

fn main() {
    let dir = std::env::args().nth(1).expect("DIR");
    let mut files = Vec::new();
    collect(Path::new(&dir), &mut files);
    files.sort();
    // xorshift shuffle, fixed seed
    let mut x = 0x9e3779b97f4a7c15u64;
    for i in (1..files.len()).rev() {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        files.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let (train_n, test_n) = (env_usize("TRAIN", 2000), env_usize("TEST", 300));
    // SAMPLE_CAP: each training page cut to this many bytes (0: whole).
    let cap = env_usize("SAMPLE_CAP", 0);
    let train: Vec<Vec<u8>> = files[..train_n]
        .iter()
        .map(|p| {
            let mut page = std::fs::read(p).unwrap();
            if cap > 0 {
                page.truncate(cap);
            }
            page
        })
        .collect();
    println!("training bytes {}", train.iter().map(Vec::len).sum::<usize>());
    let test: Vec<Vec<u8>> = files[train_n..train_n + test_n].iter().map(|p| std::fs::read(p).unwrap()).collect();
    let sizes: Vec<usize> = std::env::var("SIZES").unwrap_or("64,128,256".into()).split(',').map(|s| s.parse::<usize>().unwrap() * 1024).collect();
    println!("{} html files; train {train_n}, test {test_n}; test median size {} B", files.len(), median(test.iter().map(|t| t.len() as f64).collect()));
    let g6: Vec<f64> = test.iter().map(|t| gzip6(t) as f64).collect();
    let b11: Vec<f64> = test.iter().map(|t| brotli(11, &[], t).len() as f64).collect();
    println!("br11/gzip6 median {:.3}", median(b11.iter().zip(&g6).map(|(b, g)| b / g).collect()));
    for &size in &sizes {
        let started = Instant::now();
        let formatted = zstd::dict::from_samples(&train, size).unwrap();
        let train_s = started.elapsed().as_secs_f64();
        let header = unsafe { zstd::zstd_safe::zstd_sys::ZDICT_getDictHeaderSize(formatted.as_ptr().cast(), formatted.len()) };
        let trained = formatted[header..].to_vec();
        let mut raw: Vec<u8> = Vec::new();
        for t in &train { if raw.len() >= size { break; } raw.extend_from_slice(t); }
        raw.truncate(size);
        for (name, dict) in [("trained", &trained), ("raw", &raw)] {
            for level in std::env::var("LEVELS").unwrap_or("3,9,15,19".into()).split(',').map(|l| l.parse::<i32>().unwrap()) {
                let mut c = zstd::bulk::Compressor::with_dictionary(level, dict).unwrap();
                let mut ratio_g = Vec::new(); let mut ratio_b = Vec::new(); let mut us = Vec::new();
                for (i, t) in test.iter().enumerate() {
                    let s = Instant::now();
                    let out = c.compress(t).unwrap();
                    us.push(s.elapsed().as_secs_f64() * 1e6);
                    if i < 20 {
                        let mut d = zstd::bulk::Decompressor::with_dictionary(dict).unwrap();
                        assert_eq!(&d.decompress(&out, t.len()).unwrap(), t);
                    }
                    ratio_g.push((out.len() + 40) as f64 / g6[i]);
                    ratio_b.push((out.len() + 40) as f64 / b11[i]);
                }
                println!("dcz {name:7} {:>3}K L{level:<2}: /gzip6 {:.3}  /br11 {:.3}  {:.0} us/page (train {train_s:.1}s, header {header})", size / 1024, median(ratio_g), median(ratio_b), median(us));
            }
            for q in std::env::var("QUALITIES").unwrap_or("5,9,11".into()).split(',').filter(|q| !q.is_empty()).map(|q| q.parse::<i32>().unwrap()) {
                let mut ratio_g = Vec::new(); let mut ratio_b = Vec::new(); let mut us = Vec::new();
                for (i, t) in test.iter().enumerate().take(if q == 11 { 60 } else { 300 }) {
                    let s = Instant::now();
                    let out = brotli(q, dict, t);
                    us.push(s.elapsed().as_secs_f64() * 1e6);
                    if i < 10 { assert_eq!(&brotli_decode(dict, &out), t); }
                    ratio_g.push((out.len() + 36) as f64 / g6[i]);
                    ratio_b.push((out.len() + 36) as f64 / b11[i]);
                }
                println!("dcb {name:7} {:>3}K Q{q:<2}: /gzip6 {:.3}  /br11 {:.3}  {:.0} us/page", size / 1024, median(ratio_g), median(ratio_b), median(us));
            }
        }
    }
}
