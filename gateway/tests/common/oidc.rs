//! A real OpenID Provider for the authentication tests: the npm package `oidc-provider`,
//! installed (`npm ci`) and started on loopback by the tests themselves. Without Node.js the
//! tests skip with a message, except in CI (`CI=true`), where they must run. The
//! conformance suite's tests use it too (by path).
#![allow(dead_code, reason = "each test binary uses a part")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The gateway's audience in the provider's tokens.
pub const AUDIENCE: &str = "urn:sosku:gateway";

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway/tests/oidc")
}

/// Installs the provider's npm packages once; `false` when Node.js is not there (outside CI).
fn installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        let in_ci = std::env::var("CI").as_deref() == Ok("true");
        if Command::new("node").arg("--version").output().is_err() {
            assert!(
                !in_ci,
                "Node.js is required in CI for the OpenID Provider tests"
            );
            eprintln!("SKIPPED: Node.js is not installed; the OpenID Provider tests did not run");
            return false;
        }
        let dir = provider_dir();
        if !dir.join("node_modules/oidc-provider").exists() {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .expect("npm runs");
            assert!(status.success(), "npm ci in {} failed", dir.display());
        }
        true
    })
}

/// A running provider.
pub struct OidcProvider {
    child: Child,
    /// Its issuer URL.
    pub issuer: String,
    /// Its port (kept across restarts).
    pub port: u16,
    keys_dir: PathBuf,
}

impl OidcProvider {
    /// Starts a provider publishing `keys` (the first signs), with `unpublished` keys made
    /// beside them; `None` without Node.js (outside CI).
    pub fn start(keys_dir: &Path, keys: &[&str], unpublished: &[&str]) -> Option<Self> {
        if !installed() {
            return None;
        }
        Some(Self::spawn(keys_dir, keys, unpublished, 0))
    }

    fn spawn(keys_dir: &Path, keys: &[&str], unpublished: &[&str], port: u16) -> Self {
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(provider_dir())
            .env("PORT", port.to_string())
            .env("KEYS_DIR", keys_dir)
            .env("KEYS", keys.join(","))
            .env("UNPUBLISHED", unpublished.join(","))
            .env("AUDIENCE", AUDIENCE)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts the provider");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the provider says where it listens");
        let ready: Value = serde_json::from_str(&line).expect("a JSON ready line");
        Self {
            child,
            issuer: ready["issuer"].as_str().expect("issuer").to_owned(),
            port: u16::try_from(ready["port"].as_u64().expect("port")).expect("port"),
            keys_dir: keys_dir.to_path_buf(),
        }
    }

    /// Restarts on the same port with another key set (a key rotation).
    pub fn rotate(&mut self, keys: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let keys_dir = self.keys_dir.clone();
        *self = Self::spawn(&keys_dir, keys, &[], port);
    }

    /// A client-credentials access token for `client` (a role name, or `nobody`).
    pub async fn token(&self, client: &str, scope: Option<&str>, resource: &str) -> String {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(format!("{client}-secret")))
            .form(&form)
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token response");
        response["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {client}: {response}"))
            .to_owned()
    }

    /// The PEM (PKCS#8) of a signing key, to forge tokens with.
    pub fn private_pem(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.keys_dir.join(format!("{key}.pem"))).expect("key PEM")
    }

    /// The public key PEM (SPKI) of a signing key.
    pub fn public_pem(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.keys_dir.join(format!("{key}.pub.pem"))).expect("public PEM")
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
