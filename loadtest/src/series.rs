//! The server's side second by second: `/metrics` scraped once a second
//! during the whole run (warm-up included, as the client's series), each
//! scrape differenced from the one before, with the CPU of the server and
//! of this process over the same second.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::Api;
use crate::cpu;
use crate::promtext::Scrape;
use crate::runner::api_route;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerSecond {
    /// Seconds since the run's start (the end of this second's interval).
    pub t: f64,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub errors: f64,
    /// Percent of one core.
    pub server_cpu_pct: Option<f64>,
    pub client_cpu_pct: Option<f64>,
}

pub struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<ServerSecond>>,
}

impl Sampler {
    pub fn start(api: Api, server_pid: Option<u32>, t0: Instant) -> Sampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut rows = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut prev: Option<(Instant, Scrape, cpu::Mark)> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                let Ok(text) = api.get_text("/metrics").await else {
                    continue;
                };
                let now = (
                    Instant::now(),
                    Scrape::parse(&text),
                    cpu::Mark::now(server_pid),
                );
                if let Some((at, before, cpu_before)) = &prev {
                    let secs = (now.0 - *at).as_secs_f64().max(1e-3);
                    let d = Scrape::delta(before, &now.1);
                    let (client_cpu, server_cpu) = now.2.since(cpu_before);
                    let h = "loyalty_http_request_duration_seconds";
                    rows.push(ServerSecond {
                        t: (now.0 - t0).as_secs_f64(),
                        rps: d.sum("loyalty_http_requests_total", api_route) / secs,
                        p50_ms: d.quantile(h, 0.50, api_route).map(|s| s * 1000.0),
                        p99_ms: d.quantile(h, 0.99, api_route).map(|s| s * 1000.0),
                        errors: d.sum("loyalty_errors_total", |_| true),
                        server_cpu_pct: server_cpu.map(|c| c * 100.0 / secs),
                        client_cpu_pct: client_cpu.map(|c| c * 100.0 / secs),
                    });
                }
                prev = Some(now);
            }
            rows
        });
        Sampler { stop, task }
    }

    pub async fn finish(self) -> Vec<ServerSecond> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}
