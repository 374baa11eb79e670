//! Load benchmark against the real server on loopback, with durable writes (SQLite WAL with
//! `synchronous = FULL`; PostgreSQL's default `fsync`), every record audited.
//!
//! `cargo bench --bench load` runs on SQLite, and on PostgreSQL when it answers at
//! 127.0.0.1:5432. Four measurements per backend:
//! - single-record exchanges, open loop at a fixed 1 000/s for 10 s: latency percentiles;
//! - single-record exchanges, closed loop, 64 concurrent clients, 10 s: throughput;
//! - the open loop again, right after that burst;
//! - one NDJSON request of 100 000 records: records per second.
//!
//! `LOAD_BACKEND=sqlite|postgres` runs one backend only; `LOAD_ONLY=ndjson` only the stream,
//! `LOAD_RECORDS` sets its size. The stream also reports the process's CPU time per record,
//! and on PostgreSQL that of the database server's processes (read from `/proc`).
//! With `LOAD_KEEP_DATA=1` the stream's SQLite database is kept and its directory printed, to
//! see where its bytes go (`sqlite3 gateway.db "SELECT name, count(*) FROM dbstat GROUP BY 1"`).
//!
//! The client runs on the same 2-core machine as the server (as a co-located load generator
//! would), so the figures are conservative. `LOAD_SECONDS` shortens or lengthens the runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway::config::Config;
use gateway::server::App;
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The example decision every request sends, read once and written out around the one member
/// that changes: the client makes each record by joining three pieces of text, so that its own
/// work (which shares the machine's two cores with the server) stays small.
static EXAMPLE: std::sync::LazyLock<(Vec<u8>, Vec<u8>)> = std::sync::LazyLock::new(|| {
    const MARK: &str = "\u{1}decision-id\u{1}";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/examples/apotti/SOSKU_DECISION/valid/positive-approved.json");
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("example")).expect("json");
    record["DECISION"]["DECISION_ID"] = json!(MARK);
    let text = serde_json::to_vec(&record).expect("json");
    let mark = serde_json::to_vec(&json!(MARK)).expect("json");
    let at = text
        .windows(mark.len())
        .position(|window| window == mark.as_slice())
        .expect("the mark is in the text");
    let pieces = (text[..at].to_vec(), text[at + mark.len()..].to_vec());
    record["DECISION"]["DECISION_ID"] = json!("SD-LOAD-0");
    let whole = serde_json::to_vec(&record).expect("json");
    assert_eq!(
        [pieces.0.as_slice(), b"\"SD-LOAD-0\"", pieces.1.as_slice()].concat(),
        whole,
        "the pieces join into what serde_json writes"
    );
    pieces
});

/// The example with `DECISION_ID` `SD-LOAD-<n>`: the bytes `serde_json` writes for it.
fn decision(n: u64) -> Vec<u8> {
    let (before, after) = &*EXAMPLE;
    let mut text = Vec::with_capacity(before.len() + after.len() + 32);
    text.extend_from_slice(before);
    text.extend_from_slice(format!("\"SD-LOAD-{n}\"").as_bytes());
    text.extend_from_slice(after);
    text
}

async fn start(
    url: Option<String>,
    dir: &std::path::Path,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.to_path_buf(),
        database_url: url,
        ..Config::default()
    };
    let app = App::build(config).await.expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, signal) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async {
        let _ = signal.await;
    }));
    (base, stop)
}

async fn closed_loop(base: &str, seconds: u64, counter: Arc<AtomicU64>) -> f64 {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (client, base, counter, done) = (
                client.clone(),
                base.to_owned(),
                Arc::clone(&counter),
                Arc::clone(&done),
            );
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let response = client
                        .post(format!("{base}/exchanges/apotti-to-kanta"))
                        .header("content-type", "application/json")
                        .body(decision(n))
                        .send()
                        .await;
                    if let Ok(response) = response
                        && response.status().as_u16() == 201
                        && response.bytes().await.is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    #[expect(clippy::cast_precision_loss, reason = "counts")]
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    rate
}

async fn open_loop(
    base: &str,
    rate: u64,
    seconds: u64,
    counter: Arc<AtomicU64>,
) -> (u64, Vec<Duration>) {
    let client = reqwest::Client::new();
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, base, counter) = (client.clone(), base.to_owned(), Arc::clone(&counter));
        tasks.push(tokio::spawn(async move {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let body = decision(n);
            // Latency counts from when the request was due, so a stalled client is not hidden.
            let response = client
                .post(format!("{base}/exchanges/apotti-to-kanta"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let ok = match response {
                Ok(r) => r.status().as_u16() == 201 && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, due.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    let mut ok = 0;
    for task in tasks {
        if let Ok((success, latency)) = task.await {
            ok += u64::from(success);
            latencies.push(latency);
        }
    }
    latencies.sort();
    (ok, latencies)
}

/// CPU time this process has used so far (all threads, user and system), from
/// `/proc/self/stat`: the stream's CPU per record is steadier than its rate on a machine whose
/// speed changes from minute to minute, and it counts server and client alike.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // utime, stime.
    let (_, ticks) = stat_ticks(&stat, 11..13)?;
    Some(from_ticks(ticks))
}

/// CPU time used so far by every process named `postgres` on this machine (user and system,
/// with their ended children's), from `/proc`: the database server shares the two cores with
/// the gateway and its client, and this shows its part of a record's cost. Meaningful only
/// when the gateway's PostgreSQL runs here, as the bench's does.
fn postgres_cpu() -> Option<Duration> {
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // utime, stime, cutime, cstime.
        if let Some(("postgres", used)) = stat_ticks(&stat, 11..15) {
            ticks += used;
        }
    }
    Some(from_ticks(ticks))
}

/// The command name of a `/proc/<pid>/stat` text and the sum of its `fields` (numbered from
/// the first after the name, as `proc(5)` numbers them from 3).
fn stat_ticks(stat: &str, fields: std::ops::Range<usize>) -> Option<(&str, u64)> {
    // The fields after the command name (which may hold spaces) start after its `)`.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    let values: Vec<&str> = rest.split_whitespace().collect();
    let ticks = values
        .get(fields)?
        .iter()
        .map(|value| value.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some((name, ticks))
}

/// Clock ticks as time: Linux reports them in USER_HZ, 100 on every architecture Rust targets
/// here.
fn from_ticks(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 10)
}

/// What one NDJSON request measured.
struct Stream {
    accepted: u64,
    /// Records per second.
    rate: f64,
    /// This process's CPU time per record (server and client).
    cpu: Option<Duration>,
    /// PostgreSQL's processes' CPU time per record over the same time.
    database_cpu: Option<Duration>,
}

/// One NDJSON request of `records` decisions.
async fn ndjson(base: &str, records: u64, counter: Arc<AtomicU64>) -> Stream {
    let mut body = Vec::new();
    for _ in 0..records {
        body.extend_from_slice(&decision(counter.fetch_add(1, Ordering::Relaxed)));
        body.push(b'\n');
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    let cpu_before = process_cpu();
    let database_cpu_before = postgres_cpu();
    let response = client
        .post(format!("{base}/exchanges/apotti-to-kanta"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("request");
    // The answer (about 250 MB) is read as it arrives and its lines counted on the fly, as a
    // streaming client would: buffering it whole cost this shared machine a tenth of its CPU.
    let accepted_line = memchr::memmem::Finder::new(b"\"outcome\":\"accepted\"");
    let mut chunks = response.bytes_stream();
    let mut partial_line = Vec::new();
    let mut accepted = 0u64;
    while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
        let chunk = chunk.expect("body");
        let mut rest = &chunk[..];
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let line = if partial_line.is_empty() {
                &rest[..end]
            } else {
                partial_line.extend_from_slice(&rest[..end]);
                &partial_line[..]
            };
            if accepted_line.find(line).is_some() {
                accepted += 1;
            }
            partial_line.clear();
            rest = &rest[end + 1..];
        }
        partial_line.extend_from_slice(rest);
    }
    if accepted_line.find(&partial_line).is_some() {
        accepted += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_record = |after: Option<Duration>, before: Option<Duration>| {
        after
            .zip(before)
            .and_then(|(after, before)| after.checked_sub(before))
            .and_then(|used| used.checked_div(u32::try_from(accepted.max(1)).ok()?))
    };
    #[expect(clippy::cast_precision_loss, reason = "counts")]
    let rate = accepted as f64 / elapsed;
    Stream {
        accepted,
        rate,
        cpu: per_record(process_cpu(), cpu_before),
        database_cpu: per_record(postgres_cpu(), database_cpu_before),
    }
}

/// Records in the NDJSON request: 100 000, or `LOAD_RECORDS` (a few thousand are enough to
/// count instructions per record under `valgrind --tool=callgrind`, with two sizes subtracted).
fn stream_records() -> u64 {
    std::env::var("LOAD_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

fn report_ndjson(name: &str, stream: &Stream) {
    let mut cpu = stream.cpu.map_or_else(String::new, |cpu| {
        format!(", {:.0} µs of CPU per record", cpu.as_secs_f64() * 1e6)
    });
    if name == "postgres"
        && let Some(database) = stream.database_cpu.filter(|used| !used.is_zero())
    {
        cpu.push_str(&format!(
            " (and {:.0} µs in PostgreSQL's processes)",
            database.as_secs_f64() * 1e6
        ));
    }
    println!(
        "{name}: NDJSON, one request of {} records: {} accepted, {:.0} records/s{cpu}",
        stream_records(),
        stream.accepted,
        stream.rate,
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "index"
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

const PG: &str = "postgres://root@127.0.0.1:5432/test";

/// A schema of this run's own on the local PostgreSQL, dropped at the end of the run.
async fn pg_schema() -> Option<gateway::scratch_db::ScratchSchema> {
    gateway::scratch_db::create(PG, "bench").await.ok()
}

/// Lets the disk catch up before a backend is measured: the kernel's write-back of the runs
/// before (a stream writes 1.5 GB) and, on PostgreSQL, a checkpoint due from them. Without
/// this, whichever run came next paid for them: PostgreSQL streams measured 2 800 – 7 900
/// records/s with the same build, 6 000 – 7 900 with it.
async fn settle(postgres: bool) {
    let _ = std::process::Command::new("sync").status();
    if postgres {
        use sqlx::Executor;
        if let Ok(pool) = sqlx::PgPool::connect(PG).await {
            let _ = pool.execute("CHECKPOINT").await;
            pool.close().await;
        }
        let _ = std::process::Command::new("sync").status();
    }
}

fn main() {
    // `RUST_LOG=gateway::writer=debug` shows each batch the writer commits, with its timings.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let seconds: u64 = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let wanted = std::env::var("LOAD_BACKEND").unwrap_or_default();
        let mut backends = Vec::new();
        if wanted.is_empty() || wanted == "sqlite" {
            backends.push(("sqlite", None));
        }
        let schema = if wanted.is_empty() || wanted == "postgres" {
            pg_schema().await
        } else {
            None
        };
        match &schema {
            Some(schema) => backends.push(("postgres", Some(schema.url.clone()))),
            None if wanted != "sqlite" => {
                println!("postgres: not reachable at 127.0.0.1:5432, skipped");
            }
            None => {}
        }
        for (name, url) in backends {
            settle(url.is_some()).await;
            let dir = tempfile::tempdir().expect("dir");
            let (base, stop) = start(url, dir.path()).await;
            let counter = Arc::new(AtomicU64::new(0));
            let only = std::env::var("LOAD_ONLY").unwrap_or_default();
            if only == "ndjson" {
                report_ndjson(name, &ndjson(&base, stream_records(), Arc::clone(&counter)).await);
                let _ = stop.send(());
                if std::env::var_os("LOAD_KEEP_DATA").is_some() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    println!("{name}: data kept in {}", dir.keep().display());
                }
                continue;
            }
            // Latency at a steady 1 000/s first, then the same right after the closed-loop
            // burst, when SQLite's background checkpoint copies the burst's WAL into the
            // database file and competes with the commits for the disk.
            for phase in ["steady", "after a burst"] {
                if phase == "after a burst" {
                    let throughput = closed_loop(&base, seconds, Arc::clone(&counter)).await;
                    println!("{name}: single-record exchanges, 64 clients, {seconds} s: {throughput:.0} exchanges/s");
                }
                let (ok, latencies) = open_loop(&base, 1000, seconds, Arc::clone(&counter)).await;
                println!(
                    "{name}: open loop at 1000/s for {seconds} s ({phase}): {ok} accepted, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                    percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
                    percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
                    latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
                );
            }
            report_ndjson(name, &ndjson(&base, stream_records(), Arc::clone(&counter)).await);
            let _ = stop.send(());
        }
        if let Some(schema) = schema {
            // Give the server a moment to close its connections before the schema goes.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(error) = gateway::scratch_db::drop(PG, &schema).await {
                println!("postgres: schema {} not dropped: {error}", schema.name);
            }
        }
    });
}
