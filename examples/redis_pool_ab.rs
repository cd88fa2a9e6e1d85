//! Connection handling A/B against one redis-server, same run: what the
//! store does today (a few multiplexed `ConnectionManager`s, round-robin,
//! commands of concurrent requests pipelined on each socket) against
//! `deadpool-redis` with a connection checked out per command, and checked
//! out per batch of commands sent as one pipeline. A measurement for
//! docs/adr/0010, not a test: run by hand.
//!
//!   redis_pool_ab --url redis://127.0.0.1:PORT/ [--tasks 64] [--secs 5] [--batch 16]
//!
//! Every variant runs the same script (an EVALSHA that reads one hash, as
//! a card read does) from `--tasks` concurrent tasks for `--secs` seconds,
//! twice in the order A B C C B A, and prints operations per second.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_redis::{Config, Runtime};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

const SCRIPT: &str = "return redis.call('HMGET', KEYS[1], 'v', 'd')";

struct Args {
    url: String,
    tasks: usize,
    secs: u64,
    batch: usize,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        tasks: 64,
        secs: 5,
        batch: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--url" => a.url = v,
            "--tasks" => a.tasks = v.parse().expect("--tasks N"),
            "--secs" => a.secs = v.parse().expect("--secs N"),
            "--batch" => a.batch = v.parse().expect("--batch N"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!a.url.is_empty(), "--url redis://127.0.0.1:PORT/");
    a
}

fn key(i: u64) -> String {
    format!("ab:card:{{{}}}", i % 10_000)
}

async fn managers(a: &Args, script: &redis::Script) -> f64 {
    let client = redis::Client::open(a.url.as_str()).expect("url");
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(
            ConnectionManager::new_with_config(client.clone(), ConnectionManagerConfig::new())
                .await
                .expect("connect"),
        );
    }
    let conns = Arc::new(conns);
    let next = Arc::new(AtomicUsize::new(0));
    let script = script.clone();
    run(a, move |i| {
        let conns = conns.clone();
        let next = next.clone();
        let script = script.clone();
        async move {
            let mut c = conns[next.fetch_add(1, Ordering::Relaxed) % conns.len()].clone();
            let _: redis::Value = script.key(key(i)).invoke_async(&mut c).await.expect("eval");
            1
        }
    })
    .await
}

async fn pooled(a: &Args, script: &redis::Script, batch: usize) -> f64 {
    let mut cfg = Config::from_url(a.url.as_str());
    cfg.pool = Some(deadpool_redis::PoolConfig::new(4));
    let pool = cfg.create_pool(Some(Runtime::Tokio1)).expect("pool");
    // Load the script once so that the pipelines can use EVALSHA.
    let mut c = pool.get().await.expect("a connection");
    let _: redis::Value = script.key(key(0)).invoke_async(&mut c).await.expect("eval");
    drop(c);
    let hash = script.get_hash().to_owned();
    run(a, move |i| {
        let pool = pool.clone();
        let hash = hash.clone();
        async move {
            let mut c = pool.get().await.expect("a connection");
            let mut p = redis::pipe();
            for j in 0..batch as u64 {
                p.cmd("EVALSHA").arg(&hash).arg(1).arg(key(i * 31 + j));
            }
            let _: Vec<redis::Value> = p.query_async(&mut *c).await.expect("pipeline");
            batch as u64
        }
    })
    .await
}

/// Runs `op` from `tasks` tasks for `secs`; operations per second.
async fn run<F, Fut>(a: &Args, op: F) -> f64
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(a.secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..a.tasks)
        .map(|t| {
            let op = op.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut i = t as u64 * 1_000_003;
                while Instant::now() < until {
                    done.fetch_add(op(i).await, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let script = redis::Script::new(SCRIPT);
    let mut results: Vec<(&str, Vec<f64>)> = vec![
        ("A  4 multiplexed managers, per command (today)", vec![]),
        ("B  deadpool, checkout per command", vec![]),
        ("C  deadpool, checkout per pipeline batch", vec![]),
    ];
    for round in [[0, 1, 2], [2, 1, 0]] {
        for v in round {
            let ops = match v {
                0 => managers(&a, &script).await,
                1 => pooled(&a, &script, 1).await,
                _ => pooled(&a, &script, a.batch).await,
            };
            results[v].1.push(ops);
        }
    }
    let base: f64 = results[0].1.iter().sum::<f64>() / 2.0;
    println!(
        "tasks={} secs={} batch={} (each variant twice, order A B C C B A)",
        a.tasks, a.secs, a.batch
    );
    for (name, runs) in &results {
        let mean = runs.iter().sum::<f64>() / runs.len() as f64;
        println!(
            "{name:<50} {:>9.0} ops/s  ({:>9.0}, {:>9.0})  {:>5.2}x of A",
            mean,
            runs[0],
            runs[1],
            mean / base
        );
    }
}
