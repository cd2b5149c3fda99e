//! Connections by transport (cleartext TCP or TLS) and protocol (HTTP/1 or HTTP/2): how
//! many were served and how many are open. A TLS connection's protocol is known from
//! ALPN when it is accepted; a cleartext one's is HTTP/1 unless the listener also takes
//! h2c, in which case its first request tells. Counted with atomics from the accept and
//! from a guard dropped with the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::{Collector, Kind, Sample};

const TRANSPORTS: [&str; 2] = ["tcp", "tls"];
/// `unknown`: an h2c-capable cleartext connection that has not sent a request (yet).
const PROTOCOLS: [&str; 3] = ["http1", "h2", "unknown"];

/// The transport a connection arrived over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp = 0,
    Tls = 1,
}

/// The HTTP protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1 = 0,
    H2 = 1,
    Unknown = 2,
}

/// Connection counters shared by the HTTP workers.
#[derive(Debug, Default)]
pub struct Connections {
    /// Connections whose protocol became known, or that closed without it.
    total: [[AtomicU64; 3]; 2],
    open: [[AtomicI64; 3]; 2],
}

/// One open connection, kept in its extensions: counts it closed when dropped.
#[derive(Debug)]
pub struct Connection {
    counters: Arc<Connections>,
    transport: Transport,
    protocol: AtomicUsize,
}

impl Connections {
    /// Counts a connection accepted over `transport` speaking `protocol` (`Unknown` until
    /// its first request tells) and returns its guard.
    pub fn accepted(self: &Arc<Self>, transport: Transport, protocol: Protocol) -> Connection {
        self.open[transport as usize][protocol as usize].fetch_add(1, Relaxed);
        if protocol != Protocol::Unknown {
            self.total[transport as usize][protocol as usize].fetch_add(1, Relaxed);
        }
        Connection {
            counters: Arc::clone(self),
            transport,
            protocol: AtomicUsize::new(protocol as usize),
        }
    }

    pub(super) fn collect(&self, out: &mut Collector) {
        let total = samples("connections", |t, p| self.total[t][p].load(Relaxed) as f64);
        let open = samples("connections_open", |t, p| {
            self.open[t][p].load(Relaxed) as f64
        });
        out.json_only(
            "connections_open",
            open.iter().map(|sample| sample.value).sum(),
        );
        out.samples(
            "connections_total",
            "Connections served, by transport and protocol (unknown: an h2c-capable \
             cleartext connection closed before its first request).",
            Kind::Counter,
            total,
        );
        out.samples(
            "connections_open",
            "Connections open now, by transport and protocol.",
            Kind::Gauge,
            open,
        );
    }
}

/// One sample per transport and protocol, named `{name}_{transport}_{protocol}` in JSON.
fn samples(name: &str, value: impl Fn(usize, usize) -> f64) -> Vec<Sample> {
    let mut samples = Vec::new();
    for (t, transport) in TRANSPORTS.iter().enumerate() {
        for (p, protocol) in PROTOCOLS.iter().enumerate() {
            samples.push(Sample {
                labels: vec![
                    ("transport", (*transport).to_owned()),
                    ("protocol", (*protocol).to_owned()),
                ],
                value: value(t, p),
                json_key: Some(format!("{name}_{transport}_{protocol}")),
            });
        }
    }
    samples
}

impl Connection {
    /// Settles an `Unknown` connection's protocol from its first request's HTTP version
    /// (later requests find it settled and change nothing).
    pub fn settle(&self, protocol: Protocol) {
        let unknown = Protocol::Unknown as usize;
        if self.protocol.load(Relaxed) != unknown
            || self
                .protocol
                .compare_exchange(unknown, protocol as usize, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        let this = &self.counters;
        let row = self.transport as usize;
        this.open[row][unknown].fetch_sub(1, Relaxed);
        this.open[row][protocol as usize].fetch_add(1, Relaxed);
        this.total[row][protocol as usize].fetch_add(1, Relaxed);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let this = &self.counters;
        let (row, protocol) = (self.transport as usize, self.protocol.load(Relaxed));
        this.open[row][protocol].fetch_sub(1, Relaxed);
        if protocol == Protocol::Unknown as usize {
            this.total[row][protocol].fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_count_open_and_served_by_transport_and_protocol() {
        let connections = Arc::new(Connections::default());
        let h2 = connections.accepted(Transport::Tls, Protocol::H2);
        let h1 = connections.accepted(Transport::Tcp, Protocol::Http1);
        let h2c = connections.accepted(Transport::Tcp, Protocol::Unknown);
        let silent = connections.accepted(Transport::Tcp, Protocol::Unknown);
        let flat = |connections: &Connections| {
            let mut out = Collector::default();
            connections.collect(&mut out);
            out.flat()
        };
        let now = flat(&connections);
        assert_eq!(now["connections_open"], 4.0);
        assert_eq!(now["connections_open_tcp_unknown"], 2.0);
        assert_eq!(now["connections_tls_h2"], 1.0);
        assert_eq!(now["connections_tcp_unknown"], 0.0, "not closed yet");
        h2c.settle(Protocol::H2);
        h2c.settle(Protocol::Http1);
        let now = flat(&connections);
        assert_eq!(
            now["connections_open_tcp_h2"], 1.0,
            "the first request settles"
        );
        assert_eq!(now["connections_tcp_h2"], 1.0);
        assert_eq!(
            now["connections_tcp_http1"], 1.0,
            "a later request changes nothing"
        );
        drop((h2, h1, h2c, silent));
        let now = flat(&connections);
        assert_eq!(now["connections_open"], 0.0);
        assert_eq!(
            now["connections_tcp_unknown"], 1.0,
            "closed before a request"
        );
        assert_eq!(now["connections_tls_h2"], 1.0);
    }
}
