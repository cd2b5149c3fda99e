//! Cost of a supervised [`Handle`] call against a raw `Addr::send` to the same kind of
//! actor on the same arbiter, measured side by side in one run. Target: under 10%.
//!
//! `cargo bench --bench handle`
//!
//! Besides criterion's two estimates, the run ends with a paired measurement: rounds of
//! calls alternate between the two paths and the median per-round ratio is printed, which
//! holds up better than two separate estimates on a shared, noisy machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{Criterion, criterion_group};
use leanserve::{ChildSpec, SupervisorSpec};

struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

/// Answers its number plus one.
struct Ping(u64);

impl Message for Ping {
    type Result = u64;
}

impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u64 {
        n + 1
    }
}

fn call_overhead(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let (addr, handle, _root) = system.block_on(async {
        let addr = Echo.start();
        let (spec, handle) = ChildSpec::worker("echo", || Echo);
        let root = SupervisorSpec::new("bench").child(spec).start().unwrap();
        root.handle().status().started().await;
        (addr, handle, root)
    });
    let mut group = c.benchmark_group("call");
    group.bench_function("addr_send", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(addr.send(Ping(black_box(i))).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("handle_send", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(handle.send(Ping(black_box(i))).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// Alternates rounds of raw and handle calls and prints medians and the median ratio.
fn paired_ratio() {
    const ROUNDS: usize = 41;
    const CALLS: u64 = 20_000;
    let system = actix_rt::System::new();
    system.block_on(async {
        let addr = Echo.start();
        let (spec, handle) = ChildSpec::worker("echo", || Echo);
        let root = SupervisorSpec::new("bench").child(spec).start().unwrap();
        root.handle().status().started().await;
        let (mut raw_ns, mut handle_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS + 1 {
            let start = Instant::now();
            for i in 0..CALLS {
                black_box(addr.send(Ping(black_box(i))).await.unwrap());
            }
            let raw = start.elapsed().as_nanos() as f64 / CALLS as f64;
            let start = Instant::now();
            for i in 0..CALLS {
                black_box(handle.send(Ping(black_box(i))).await.unwrap());
            }
            let supervised = start.elapsed().as_nanos() as f64 / CALLS as f64;
            if round > 0 {
                // round 0 warms both paths up
                raw_ns.push(raw);
                handle_ns.push(supervised);
                ratios.push(supervised / raw);
            }
        }
        let median = |values: &mut Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        println!(
            "paired ({ROUNDS} rounds x {CALLS} calls): Addr::send median {:.0} ns, Handle::send median {:.0} ns, \
             median ratio {:.3} (overhead {:+.1}%)",
            median(&mut raw_ns),
            median(&mut handle_ns),
            median(&mut ratios),
            (median(&mut ratios) - 1.0) * 100.0,
        );
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).sample_size(60);
    targets = call_overhead
}

fn main() {
    benches();
    paired_ratio();
    Criterion::default().configure_from_args().final_summary();
}
