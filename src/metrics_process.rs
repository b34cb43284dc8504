//! `process_*` series read from `/proc/self` at scrape time (Linux only; elsewhere they
//! stay at zero). Names follow the Prometheus client conventions (`process_cpu_seconds_total`
//! is a counter) so standard dashboards work; they are registered outside the `tessera_`
//! prefix.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Default)]
pub struct ProcessMetrics {
    resident_memory_bytes: Gauge,
    cpu_seconds: Counter<f64, AtomicU64>,
    open_fds: Gauge,
    threads: Gauge,
    /// Serialises scrapes: the CPU counter advances by the difference since the last read,
    /// and two scrapes at once must not both add it.
    reading: Arc<Mutex<()>>,
}

impl ProcessMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let process = registry.sub_registry_with_prefix("process");
        process.register(
            "resident_memory_bytes",
            "Resident set size",
            m.resident_memory_bytes.clone(),
        );
        process.register(
            "cpu_seconds",
            "User and system CPU time spent",
            m.cpu_seconds.clone(),
        );
        process.register("open_fds", "Open file descriptors", m.open_fds.clone());
        process.register("threads", "OS threads", m.threads.clone());
        m
    }

    pub fn update(&self) {
        let _one_at_a_time = self
            .reading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; utime/stime are 14 and 15,
            // num_threads 20, rss (pages) 24, counted from 1 over the whole line.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                let ticks = 100.0; // USER_HZ on Linux
                let total = (num(11) + num(12)) as f64 / ticks;
                let counted = self.cpu_seconds.get();
                if total > counted {
                    self.cpu_seconds.inc_by(total - counted);
                }
                self.threads.set(num(17));
                self.resident_memory_bytes.set(num(21) * 4096);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
    }
}
