//! Shared test set-up: the real service on port 0, on SQLite in a temp dir or on a fresh
//! PostgreSQL schema. PostgreSQL tests skip with a message when no server answers, except in
//! CI (`CI=true`), where they must run.
#![allow(dead_code, reason = "each test binary uses a part")]

pub mod oidc;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gateway::config::Config;
use gateway::server::App;
use gateway::store::Store;
use serde_json::Value;

/// The PostgreSQL server of development and CI machines.
pub const PG_ADMIN_URL: &str = "postgres://root@127.0.0.1:5432/test";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// SQLite in a temp dir.
    Sqlite,
    /// A fresh schema on the local PostgreSQL.
    Postgres,
}

/// A database URL for a fresh, empty store; `None` when PostgreSQL is not there (outside CI).
pub async fn fresh_database(db: Db, dir: &Path) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!(
            "sqlite://{}?mode=rwc",
            dir.join("gateway.db").display()
        )),
        Db::Postgres => gateway::scratch_db::create_for_test(PG_ADMIN_URL, "t")
            .await
            .map(|schema| schema.url),
    }
}

/// A running service and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The store behind it.
    pub store: Store,
    /// The data directory (kept alive with the app).
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// Starts the service on `db`; `None` when that database is not available (outside CI).
    pub async fn start(db: Db) -> Option<Self> {
        Self::start_with(db, |_| {}).await
    }

    /// Starts the service with a configuration tweak.
    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = fresh_database(db, dir.path()).await?;
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            data_dir: dir.path().to_path_buf(),
            database_url: Some(url),
            ..Config::default()
        };
        tweak(&mut config);
        let app = App::build(config).await.expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let store = app.store();
        let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run(async {
                let _ = signal.await;
            })
            .await
            .expect("server runs");
        });
        Some(Self {
            base,
            client: reqwest::Client::new(),
            store,
            dir,
            shutdown: Some(shutdown),
            handle: Some(handle),
        })
    }

    /// POSTs JSON; returns status and body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs; returns status and body text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Stops the server gracefully.
    pub async fn stop(self) {
        drop(self.stop_keeping_data().await);
    }

    /// Stops the server gracefully and hands back its data directory, so that the store can
    /// still be read (SQLite's file lives there).
    pub async fn stop_keeping_data(mut self) -> tempfile::TempDir {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
        self.dir
    }
}

/// An example record of the repository.
pub fn example(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../profiles/examples")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).expect("example")).expect("json")
}

/// A gateway process (the real binary), for crash and scale-out tests.
pub struct GatewayProcess {
    /// The child.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl GatewayProcess {
    /// Starts `gateway serve` on `database_url` with `data_dir`, and waits until it listens.
    pub fn start(database_url: &str, data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("serve")
            .env(
                "GATEWAY_AUDIT__HMAC_KEY",
                "test-key-shared-by-all-processes",
            )
            .env("GATEWAY_LISTEN", "127.0.0.1:0")
            .env("GATEWAY_DATABASE_URL", database_url)
            .env("GATEWAY_DATA_DIR", data_dir)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gateway starts");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = sender.send(port);
                }
            }
        });
        let port = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("the gateway says where it listens");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// SIGKILL.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The data dir path of a temp dir.
pub fn path_of(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().to_path_buf()
}
