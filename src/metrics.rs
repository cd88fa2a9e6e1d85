//! Every metric the server emits, declared once: names follow
//! `loyalty_<noun>_<unit>[_total]`, labels stay low-cardinality (route
//! template, method, status, error key, shard — never a card or phone).

use std::sync::OnceLock;

use metrics::{counter, gauge, histogram, Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::CardStatus;

pub const HTTP_REQUESTS: &str = "loyalty_http_requests_total";
pub const HTTP_DURATION: &str = "loyalty_http_request_duration_seconds";
pub const ERRORS: &str = "loyalty_errors_total";
pub const AUTH_FAILURES: &str = "loyalty_auth_failures_total";
pub const AUTH_CACHE: &str = "loyalty_auth_cache_lookups_total";
/// `result`: started | coalesced (joined one under way) | cached_meanwhile
/// | abandoned (dropped unrun: every client waiting for it hung up) |
/// refused_busy (the queue was full: 503).
pub const AUTH_VERIFICATIONS: &str = "loyalty_auth_verifications_total";
pub const AUTH_VERIFICATION_QUEUE: &str = "loyalty_auth_verification_queue_depth";
/// Connections closed before any HTTP, by `listener` (http | https) and
/// `reason` (per_address: over `http.max_connections_per_address`;
/// handshake_timeout; handshake_failed).
pub const CONNECTIONS_REFUSED: &str = "loyalty_connections_refused_total";
/// `what`: users | tls; `outcome`: ok | unchanged | error.
pub const RELOADS: &str = "loyalty_reloads_total";
pub const USERS: &str = "loyalty_users";
pub const CARD_TRANSITIONS: &str = "loyalty_card_transitions_total";
pub const SHARD_PUSHED: &str = "loyalty_shard_commands_pushed_total";
pub const SHARD_POPPED: &str = "loyalty_shard_commands_popped_total";
pub const SHARD_REJECTED: &str = "loyalty_shard_commands_rejected_total";
pub const SHARD_QUEUE_DEPTH: &str = "loyalty_shard_queue_depth";
/// From a command's admission to the start of its turn on its card.
pub const SHARD_QUEUE_WAIT: &str = "loyalty_shard_queue_wait_seconds";
pub const STORE_DURATION: &str = "loyalty_store_operation_duration_seconds";
pub const STORE_ERRORS: &str = "loyalty_store_errors_total";
/// Requests the Redis store sent and waited for (a script call, a read),
/// by what they were for (`op`: the script or read's name): a command's
/// cost in round trips is the growth of the sum while it runs (a confirm:
/// 1 on one node, 2 on a cluster; issue 20). The memory store sends none.
pub const STORE_ROUND_TRIPS: &str = "loyalty_store_round_trips_total";
/// 1 when the store answered the last ping (taken at every scrape and every
/// `/ready`), else 0: what "not ready" looks like to Prometheus.
pub const STORE_UP: &str = "loyalty_store_up";
/// Times the store's connections moved to another master that Sentinel
/// named (a failover followed).
pub const STORE_MASTER_CHANGES: &str = "loyalty_store_master_changes_total";
/// Waiting for a connection of the pool the replica-acknowledged writes
/// use (`store.min_replicas_acked`).
pub const STORE_WAIT_POOL_WAIT: &str = "loyalty_store_wait_pool_wait_seconds";
/// That pool's connections by `state` (idle | in_use), and the writes
/// queued for one (`state="waiting"`).
pub const STORE_WAIT_POOL_CONNECTIONS: &str = "loyalty_store_wait_pool_connections";
/// Writes that fewer replicas than `store.min_replicas_acked` acknowledged
/// in time (answered 503, outcome unknown).
pub const STORE_REPLICA_ACKS_SHORT: &str = "loyalty_store_replica_acks_short_total";
/// The Redis store's lookup cache of decoded contacts and index entries
/// (src/store/redis/cache.rs). `result`: hit | miss.
pub const CACHE_LOOKUPS: &str = "loyalty_cache_lookups_total";
/// Keys Redis told us changed (client-side-caching invalidations).
pub const CACHE_INVALIDATIONS: &str = "loyalty_cache_invalidations_received_total";
/// Whole-cache drops. `reason`: disconnected | flushall | topology | started.
pub const CACHE_FLUSHES: &str = "loyalty_cache_flushes_total";
pub const CACHE_ENTRIES: &str = "loyalty_cache_entries";
/// An estimate of the heap the cached records hold.
pub const CACHE_BYTES: &str = "loyalty_cache_bytes";
/// 1 while the cache serves (invalidations flowing from every node), else 0.
pub const CACHE_SERVING: &str = "loyalty_cache_serving";
/// Reads of a card answered from the state its shard owns
/// (src/engine/owned.rs). `result`: hit | miss.
pub const OWNED_LOOKUPS: &str = "loyalty_owned_lookups_total";
/// Cards whose decoded state a shard owns, per `shard`.
pub const OWNED_CARDS: &str = "loyalty_owned_cards";
/// An estimate of the heap those cards hold, per `shard`.
pub const OWNED_CARD_BYTES: &str = "loyalty_owned_card_bytes";
pub const CARDS_LOADED: &str = "loyalty_cards_loaded_total";
/// Lines of bulk loads, imports and exports, by `kind` (cards, contacts,
/// import, export) and `outcome` (created, updated, existing, rejected,
/// exported).
pub const BULK_LINES: &str = "loyalty_bulk_lines_total";
/// Holds (issue 24) by `outcome`: opened, confirmed (consumed by their
/// confirm), released (by a release, or by a confirm that did not match
/// them), expired (found past `HeldUntil` by a write of their card).
pub const HOLDS: &str = "loyalty_holds_total";
/// In hundredths of a bonus point: counters are integers and amounts are exact.
pub const BONUS_AMOUNT: &str = "loyalty_bonus_amount_hundredths_total";

/// Explicit buckets: without them the exporter emits summaries, which
/// cannot be aggregated across instances.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A store operation takes microseconds on the memory store and tens of
/// them on a local Redis: with the HTTP buckets above (first 100 µs) every
/// store p99 read as the first bucket's bound. 0.01 and 0.1 stay bounds:
/// the store latency alert and its tests are written on them.
const STORE_BUCKETS: &[f64] = &[
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder once (tests start many servers in one
/// process) and returns the handle that renders `/metrics`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // A Full matcher is tried before a Suffix one.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(STORE_DURATION.into()), STORE_BUCKETS)
                })
                .expect("the bucket lists are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // A histogram keeps every sample until upkeep folds them into
            // its buckets; rendering `/metrics` does it too, but an
            // instance nobody scrapes would otherwise grow by every request
            // (~200 MB over a bulk load of 600,000 contacts, heaptrack).
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            // Another recorder may already be installed by an embedding
            // program; our handle still renders what we record through it.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub fn http_request(route: &'static str, method: &'static str, status: u16, seconds: f64) {
    counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route, "method" => method).record(seconds);
}

pub fn error(key: &'static str) {
    counter!(ERRORS, "key" => key).increment(1);
}

/// `reason`: one of a fixed set (missing, malformed, unknown_user,
/// wrong_password, throttled, busy).
pub fn auth_failure(reason: &'static str) {
    counter!(AUTH_FAILURES, "reason" => reason).increment(1);
}

pub fn auth_cache(hit: bool) {
    counter!(AUTH_CACHE, "result" => if hit { "hit" } else { "miss" }).increment(1);
}

pub fn auth_verification(result: &'static str) {
    counter!(AUTH_VERIFICATIONS, "result" => result).increment(1);
}

pub fn auth_verification_queue(depth: usize) {
    gauge!(AUTH_VERIFICATION_QUEUE).set(depth as f64);
}

pub fn connection_refused(listener: &'static str, reason: &'static str) {
    counter!(CONNECTIONS_REFUSED, "listener" => listener, "reason" => reason).increment(1);
}

pub fn reload(what: &'static str, outcome: &'static str) {
    counter!(RELOADS, "what" => what, "outcome" => outcome).increment(1);
}

pub fn users(count: usize) {
    gauge!(USERS).set(count as f64);
}

pub fn card_transition(operation: &'static str, from: CardStatus, to: CardStatus) {
    counter!(CARD_TRANSITIONS, "operation" => operation, "from" => from.name(), "to" => to.name())
        .increment(1);
}

/// One shard's counters, registered once: the hot path increments them
/// without formatting a label or looking the series up per command.
pub struct ShardMetrics {
    pushed: Counter,
    popped: Counter,
    rejected: Counter,
    wait: Histogram,
}

impl ShardMetrics {
    pub fn new(shard: usize) -> ShardMetrics {
        let label = shard.to_string();
        ShardMetrics {
            pushed: counter!(SHARD_PUSHED, "shard" => label.clone()),
            popped: counter!(SHARD_POPPED, "shard" => label.clone()),
            rejected: counter!(SHARD_REJECTED, "shard" => label),
            wait: histogram!(SHARD_QUEUE_WAIT),
        }
    }

    pub fn pushed(&self) {
        self.pushed.increment(1);
    }

    /// The command's turn has come, `waited` after its admission.
    pub fn popped(&self, waited: std::time::Duration) {
        self.popped.increment(1);
        self.wait.record(waited.as_secs_f64());
    }

    pub fn rejected(&self) {
        self.rejected.increment(1);
    }
}

pub fn shard_queue_depth(shard: usize, depth: usize) {
    gauge!(SHARD_QUEUE_DEPTH, "shard" => shard.to_string()).set(depth as f64);
}

pub fn store_operation(operation: &'static str, seconds: f64, error: Option<&'static str>) {
    histogram!(STORE_DURATION, "operation" => operation).record(seconds);
    if let Some(kind) = error {
        counter!(STORE_ERRORS, "operation" => operation, "error_type" => kind).increment(1);
    }
}

pub fn store_master_changed() {
    counter!(STORE_MASTER_CHANGES).increment(1);
}

/// One checkout of the waited writes' pool: how long it took, and the
/// pool's state after it.
pub fn wait_pool(waited_seconds: f64, status: deadpool_redis::Status) {
    histogram!(STORE_WAIT_POOL_WAIT).record(waited_seconds);
    let idle = status.available as f64;
    gauge!(STORE_WAIT_POOL_CONNECTIONS, "state" => "idle").set(idle);
    gauge!(STORE_WAIT_POOL_CONNECTIONS, "state" => "in_use").set(status.size as f64 - idle);
    gauge!(STORE_WAIT_POOL_CONNECTIONS, "state" => "waiting").set(status.waiting as f64);
}

/// Every series of the Sentinel and wait-pool panels exists from the
/// start on the Redis backend (at 0 until something happens): a
/// dashboard query over them returns data, and `increase()` sees the first
/// master change.
pub fn store_redis_declare() {
    counter!(STORE_MASTER_CHANGES).increment(0);
    counter!(STORE_REPLICA_ACKS_SHORT).increment(0);
    let _ = histogram!(STORE_WAIT_POOL_WAIT);
    for state in ["idle", "in_use", "waiting"] {
        gauge!(STORE_WAIT_POOL_CONNECTIONS, "state" => state).increment(0.0);
    }
}

pub fn replica_ack_short() {
    counter!(STORE_REPLICA_ACKS_SHORT).increment(1);
}

pub fn store_round_trip(op: &'static str) {
    counter!(STORE_ROUND_TRIPS, "op" => op).increment(1);
}

pub fn store_up(up: bool) {
    gauge!(STORE_UP).set(if up { 1.0 } else { 0.0 });
}

/// Registered once: a lookup happens on every read.
pub fn cache_lookup(hit: bool) {
    static HANDLES: OnceLock<(Counter, Counter)> = OnceLock::new();
    let (hits, misses) = HANDLES.get_or_init(|| {
        (
            counter!(CACHE_LOOKUPS, "result" => "hit"),
            counter!(CACHE_LOOKUPS, "result" => "miss"),
        )
    });
    if hit { hits } else { misses }.increment(1);
}

/// Registered once: a lookup happens on every card read.
pub fn owned_lookup(hit: bool) {
    static HANDLES: OnceLock<(Counter, Counter)> = OnceLock::new();
    let (hits, misses) = HANDLES.get_or_init(|| {
        (
            counter!(OWNED_LOOKUPS, "result" => "hit"),
            counter!(OWNED_LOOKUPS, "result" => "miss"),
        )
    });
    if hit { hits } else { misses }.increment(1);
}

/// One shard's owned cards and their bytes (sampled when scraped).
pub fn owned_size(shard: usize, cards: usize, bytes: usize) {
    let label = shard.to_string();
    gauge!(OWNED_CARDS, "shard" => label.clone()).set(cards as f64);
    gauge!(OWNED_CARD_BYTES, "shard" => label).set(bytes as f64);
}

pub fn cache_invalidations(keys: u64) {
    counter!(CACHE_INVALIDATIONS).increment(keys);
}

pub fn cache_flushed(reason: &'static str) {
    counter!(CACHE_FLUSHES, "reason" => reason).increment(1);
}

pub fn cache_size(entries: usize, bytes: usize) {
    gauge!(CACHE_ENTRIES).set(entries as f64);
    gauge!(CACHE_BYTES).set(bytes as f64);
}

pub fn cache_serving(serving: bool) {
    gauge!(CACHE_SERVING).set(if serving { 1.0 } else { 0.0 });
}

pub fn cards_loaded(outcome: &'static str, n: u64) {
    counter!(CARDS_LOADED, "outcome" => outcome).increment(n);
}

pub fn bulk_lines(kind: &'static str, outcome: &'static str, n: u64) {
    if n > 0 {
        counter!(BULK_LINES, "kind" => kind, "outcome" => outcome).increment(n);
    }
}

pub fn hold(outcome: &'static str) {
    counter!(HOLDS, "outcome" => outcome).increment(1);
}

/// `operation`: accrual, write_off, accrual_reversed, write_off_returned,
/// manual_accrual, transfer, held (reserved by holds), hold_confirmed
/// (what the consumed holds had reserved), hold_released.
pub fn bonus_amount(operation: &'static str, amount: crate::domain::Amount) {
    counter!(BONUS_AMOUNT, "operation" => operation).increment(amount.hundredths().max(0) as u64);
}

#[cfg(test)]
mod tests {
    #[test]
    fn store_operations_have_buckets_down_to_microseconds() {
        let handle = super::install();
        super::store_operation("bucket_probe", 0.00002, None);
        let text = handle.render();
        let line = |le: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with(super::STORE_DURATION)
                        && l.contains("operation=\"bucket_probe\"")
                        && l.contains(&format!("le=\"{le}\""))
                })
                .unwrap_or_else(|| panic!("no bucket le={le}:\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_owned()
        };
        // 20 µs: above the 10 µs bound, within the 25 µs one.
        assert_eq!(line("0.00001"), "0");
        assert_eq!(line("0.000025"), "1");
        // The bounds the store latency alert is written on are still there.
        assert_eq!(line("0.01"), "1");
        assert_eq!(line("0.1"), "1");
    }
}
