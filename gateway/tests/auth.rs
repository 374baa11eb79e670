//! Authentication end to end against a real OpenID Provider (npm `oidc-provider`, started on
//! loopback): tokens for each role are accepted on their routes and refused elsewhere;
//! tampered, expired, not-yet-valid, wrong-audience, wrong-issuer, `alg: none`, HS256-with-
//! the-public-key and unknown-key tokens are refused with a 401 that names the problem; a
//! rotated JWKS is picked up (rate-limited), a retired key stops working; every refusal is
//! in the audit log, and no token content is.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::oidc::{AUDIENCE, OidcProvider};
use common::{Db, TestApp, example};
use gateway::config::ForwardedHeader;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A running gateway checking the provider's tokens.
async fn gateway(provider: &OidcProvider, refetch_secs: u64, max_age_secs: u64) -> TestApp {
    let issuer = provider.issuer.clone();
    TestApp::start_with(Db::Sqlite, move |config| {
        config.auth.issuer = Some(issuer);
        config.auth.audience = Some(AUDIENCE.to_owned());
        config.auth.jwks_refetch_secs = refetch_secs;
        config.auth.jwks_max_age_secs = max_age_secs;
    })
    .await
    .expect("SQLite is always there")
}

/// A request and its answer: status, body, `WWW-Authenticate`.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Value, Option<String>) {
    let url = format!("{}{path}", app.base);
    let mut request = match method {
        "POST" if path.starts_with("/exchanges") => app.client.post(url).json(&example(
            "apotti/SOSKU_DECISION/valid/positive-approved.json",
        )),
        "POST" => app.client.post(url).json(&example(
            "apotti/SOSKU_DECISION/valid/positive-approved.json",
        )),
        _ => app.client.get(url),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(ToOwned::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

/// The rule of a refusal's only issue.
fn rule_of(body: &Value) -> String {
    body["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A token signed with one of the provider's keys, with the claims given.
fn forge(provider: &OidcProvider, key: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.to_owned());
    let signing = EncodingKey::from_rsa_pem(&provider.private_pem(key)).expect("RSA key");
    jsonwebtoken::encode(&header, claims, &signing).expect("signs")
}

fn claims(provider: &OidcProvider, change: impl FnOnce(&mut Value)) -> Value {
    let mut claims = json!({
        "iss": provider.issuer,
        "aud": AUDIENCE,
        "sub": "forged-integrator",
        "client_id": "integrator",
        "scope": "integrator",
        "iat": now(),
        "exp": now() + 600,
    });
    change(&mut claims);
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_a_real_provider_are_checked_and_every_refusal_is_audited() {
    let keys = tempfile::tempdir().expect("temp dir");
    let Some(mut provider) = OidcProvider::start(keys.path(), &["key-1"], &["rogue"]) else {
        return;
    };
    let app = gateway(&provider, 0, 2).await;

    // The provider's own tokens, one client per role.
    let integrator = provider
        .token("integrator", Some("integrator"), AUDIENCE)
        .await;
    let auditor = provider.token("auditor", Some("auditor"), AUDIENCE).await;
    let vendor = provider.token("vendor", Some("vendor"), AUDIENCE).await;
    let admin = provider.token("admin", Some("admin"), AUDIENCE).await;
    let nobody = provider.token("nobody", None, AUDIENCE).await;

    // Accepted: each role on its routes.
    let allowed = [
        ("POST", "/exchanges/apotti-to-kanta", &integrator),
        ("POST", "/$validate", &vendor),
        ("POST", "/$validate", &integrator),
        ("GET", "/audit/entries", &auditor),
        ("GET", "/audit/verify", &auditor),
        ("GET", "/deliveries", &admin),
    ];
    for (method, path, token) in allowed {
        let (status, body, _) = call(&app, method, path, Some(token)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
    }
    // Open routes need no token.
    for path in ["/metadata", "/healthz", "/openapi.json"] {
        let (status, _) = app.get(path).await;
        assert_eq!(status, 200, "{path}");
    }
    let (_, metadata) = app.get("/metadata").await;
    let metadata: Value = serde_json::from_str(&metadata).expect("metadata");
    assert_eq!(metadata["security"]["authentication"], "on");
    assert_eq!(metadata["security"]["issuer"], json!(provider.issuer));

    // Refused: the wrong role (403), then bad tokens (401), each with the rule that says why.
    let wrong_audience = provider
        .token("integrator", Some("integrator"), "urn:some:other-api")
        .await;
    let tampered = {
        let parts: Vec<&str> = integrator.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("payload"))
                .expect("claims");
        payload["scope"] = json!("integrator auditor");
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    let expired = forge(
        &provider,
        "key-1",
        &claims(&provider, |c| {
            c["iat"] = json!(now() - 7200);
            c["exp"] = json!(now() - 3600);
        }),
    );
    let not_yet = forge(
        &provider,
        "key-1",
        &claims(&provider, |c| c["nbf"] = json!(now() + 3600)),
    );
    let wrong_issuer = forge(
        &provider,
        "key-1",
        &claims(&provider, |c| c["iss"] = json!("http://127.0.0.1:1/evil")),
    );
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"key-1"}"#),
        URL_SAFE_NO_PAD.encode(claims(&provider, |_| {}).to_string())
    );
    let hmac_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("key-1".to_owned());
        jsonwebtoken::encode(
            &header,
            &claims(&provider, |_| {}),
            &EncodingKey::from_secret(&provider.public_pem("key-1")),
        )
        .expect("signs")
    };
    let unknown_key = forge(&provider, "rogue", &claims(&provider, |_| {}));
    let refused: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            Some(&vendor),
            403,
            "auth.role",
        ),
        ("GET", "/audit/entries", Some(&integrator), 403, "auth.role"),
        ("GET", "/deliveries", Some(&auditor), 403, "auth.role"),
        ("POST", "/$validate", Some(&nobody), 403, "auth.role"),
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            None,
            401,
            "auth.credentials-missing",
        ),
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            Some(&tampered),
            401,
            "auth.token-signature",
        ),
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            Some(&expired),
            401,
            "auth.token-expired",
        ),
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            Some(&not_yet),
            401,
            "auth.token-not-yet-valid",
        ),
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            Some(&wrong_audience),
            401,
            "auth.token-audience",
        ),
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            Some(&wrong_issuer),
            401,
            "auth.token-issuer",
        ),
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            Some(&unsigned),
            401,
            "auth.token-algorithm",
        ),
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            Some(&hmac_with_public_key),
            401,
            "auth.token-algorithm",
        ),
        (
            "POST",
            "/exchanges/apotti-to-kanta",
            Some(&unknown_key),
            401,
            "auth.token-unknown-key",
        ),
        (
            "GET",
            "/audit/entries",
            Some("not-a-jwt"),
            401,
            "auth.token-malformed",
        ),
    ];
    for (method, path, token, want_status, want_rule) in &refused {
        let (status, body, challenge) = call(&app, method, path, *token).await;
        assert_eq!(status, *want_status, "{want_rule}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
        assert_eq!(rule_of(&body), *want_rule, "{body}");
        if *want_status == 401 {
            let challenge = challenge.expect("401 carries WWW-Authenticate");
            assert!(challenge.starts_with("Bearer"), "{challenge}");
        }
        if let Some(token) = token {
            let text = body.to_string();
            for part in token.split('.').filter(|p| p.len() > 8) {
                assert!(!text.contains(part), "the answer repeats the token: {text}");
            }
        }
    }

    // A rotated JWKS: the provider now signs with key-2; the gateway fetches the new keys on
    // the unknown kid.
    provider.rotate(&["key-2", "key-1"]);
    let rotated = provider
        .token("integrator", Some("integrator"), AUDIENCE)
        .await;
    let (status, body, _) = call(&app, "POST", "/exchanges/apotti-to-kanta", Some(&rotated)).await;
    assert!(
        (200..300).contains(&status),
        "token of the new key: {status} {body}"
    );
    // key-1 retired: once the cached JWKS is older than its maximum age, key-1 stops working.
    provider.rotate(&["key-2"]);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let retired = forge(&provider, "key-1", &claims(&provider, |_| {}));
    let (status, body, _) = call(&app, "POST", "/exchanges/apotti-to-kanta", Some(&retired)).await;
    assert_eq!(
        (status, rule_of(&body).as_str()),
        (401, "auth.token-unknown-key"),
        "{body}"
    );
    let still = provider
        .token("integrator", Some("integrator"), AUDIENCE)
        .await;
    let (status, _, _) = call(&app, "POST", "/exchanges/apotti-to-kanta", Some(&still)).await;
    assert!((200..300).contains(&status), "the current key still works");

    // Every refusal is in the log, under who tried (when known) and why; no token text is.
    let auditor = provider.token("auditor", Some("auditor"), AUDIENCE).await;
    let response = app
        .client
        .get(format!(
            "{}/audit/entries?outcome=refused&limit=1000",
            app.base
        ))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("audit query");
    assert_eq!(response.status(), 200);
    let log: Value = response.json().await.expect("entries");
    let entries = log["entries"].as_array().expect("entries");
    let refusals: Vec<&Value> = entries
        .iter()
        .filter(|e| e["entry"]["event"] == "access-refused")
        .collect();
    assert_eq!(refusals.len(), refused.len() + 1, "{log}");
    let mut logged_rules: Vec<&str> = refusals
        .iter()
        .filter_map(|e| e["entry"]["issues"][0]["rule"].as_str())
        .collect();
    let mut expected_rules: Vec<&str> = refused.iter().map(|r| r.4).collect();
    expected_rules.push("auth.token-unknown-key");
    logged_rules.sort_unstable();
    expected_rules.sort_unstable();
    assert_eq!(logged_rules, expected_rules);
    let wrong_role = refusals
        .iter()
        .find(|e| {
            e["entry"]["direction"] == "POST /exchanges/apotti-to-kanta"
                && e["entry"]["issues"][0]["rule"] == "auth.role"
        })
        .expect("the vendor's attempt");
    assert_eq!(wrong_role["entry"]["actor"]["subject"], "vendor");
    let text = log.to_string();
    for token in [&integrator, &vendor, &expired, &tampered] {
        let signature = token.rsplit('.').next().expect("signature");
        assert!(!text.contains(signature), "the log holds token text");
    }
    // The auditor's reads are logged too, under the auditor.
    let reads = app
        .client
        .get(format!(
            "{}/audit/entries?outcome=read&limit=1000",
            app.base
        ))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("audit query")
        .json::<Value>()
        .await
        .expect("entries");
    // Queries and verification are reads of the log, both logged under the auditor.
    let logged_reads: Vec<&Value> = reads["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["entry"]["actor"]["subject"] == "auditor")
        .map(|e| &e["entry"]["direction"])
        .collect();
    for operation in ["GET /audit/entries", "GET /audit/verify"] {
        assert!(
            logged_reads.contains(&&json!(operation)),
            "{operation}: {reads}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_makes_the_jwks_be_fetched_again_at_most_once_a_minute() {
    let keys = tempfile::tempdir().expect("temp dir");
    let Some(mut provider) = OidcProvider::start(keys.path(), &["key-1"], &["rogue"]) else {
        return;
    };
    let app = gateway(&provider, 60, 3600).await;
    // An unknown kid: the gateway fetches the JWKS again (the rogue key is not in it).
    let rogue = forge(&provider, "rogue", &claims(&provider, |_| {}));
    let (status, body, _) = call(&app, "POST", "/$validate", Some(&rogue)).await;
    assert_eq!(
        (status, rule_of(&body).as_str()),
        (401, "auth.token-unknown-key")
    );
    // The provider rotates now, but the last refetch was less than a minute ago: a flood of
    // unknown kids cannot make the gateway hammer the provider, so the new key is not fetched.
    provider.rotate(&["key-2", "key-1"]);
    let new_key = provider.token("vendor", Some("vendor"), AUDIENCE).await;
    let (status, body, _) = call(&app, "POST", "/$validate", Some(&new_key)).await;
    assert_eq!(
        (status, rule_of(&body).as_str()),
        (401, "auth.token-unknown-key")
    );
    // Tokens of the key it knows still pass.
    let old_key = forge(
        &provider,
        "key-1",
        &claims(&provider, |c| c["scope"] = json!("vendor")),
    );
    let (status, body, _) = call(&app, "POST", "/$validate", Some(&old_key)).await;
    assert!((200..300).contains(&status), "{status} {body}");
    app.stop().await;
}

#[tokio::test]
async fn the_gateway_does_not_start_when_the_issuer_cannot_be_discovered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = gateway::config::Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        auth: gateway::config::AuthConfig {
            issuer: Some("http://127.0.0.1:9/nothing-here".to_owned()),
            audience: Some(AUDIENCE.to_owned()),
            ..gateway::config::AuthConfig::default()
        },
        ..gateway::config::Config::default()
    };
    let error = gateway::server::App::build(config)
        .await
        .expect_err("no provider")
        .to_string();
    assert!(error.contains("OpenID discovery"), "{error}");
}

#[tokio::test]
async fn with_authentication_on_the_gateway_may_listen_beyond_loopback() {
    let keys = tempfile::tempdir().expect("temp dir");
    let Some(provider) = OidcProvider::start(keys.path(), &["key-1"], &[]) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = gateway::config::Config {
        listen: "0.0.0.0:0".parse().expect("address"),
        data_dir: dir.path().to_path_buf(),
        auth: gateway::config::AuthConfig {
            issuer: Some(provider.issuer.clone()),
            audience: Some(AUDIENCE.to_owned()),
            ..gateway::config::AuthConfig::default()
        },
        ..gateway::config::Config::default()
    };
    gateway::server::App::build(config)
        .await
        .expect("authentication is on, so any address is allowed");
}

/// Reads the whole log from the store and checks its chain (as `gateway audit verify` does).
async fn log_of(store: &gateway::store::Store) -> (Vec<Value>, bool) {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = store.log_page(after, 1000).await.expect("log");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            entries.push(serde_json::from_str(&row.entry).expect("entry JSON"));
        }
    }
    let report = gateway::http::verify_log(store).await.expect("verifies");
    (entries, report.intact)
}

/// A flood of refused requests from one address: the first `limits.refusals_per_minute` are
/// logged one by one and answered 401; past that the answer is 429 with `Retry-After`, the
/// first such refusal is logged as the limit engaging, and the rest are counted in one entry
/// written at shutdown (or every ten seconds). A caller with a good token from the same
/// address is not limited. The log stays a few entries long and its chain verifies.
async fn refusal_flood(db: Db) {
    let keys = tempfile::tempdir().expect("temp dir");
    let Some(provider) = OidcProvider::start(keys.path(), &["key-1"], &[]) else {
        return;
    };
    let issuer = provider.issuer.clone();
    let Some(app) = TestApp::start_with(db, move |config| {
        config.auth.issuer = Some(issuer);
        config.auth.audience = Some(AUDIENCE.to_owned());
        config.limits.refusals_per_minute = 5;
    })
    .await
    else {
        return;
    };
    let mut statuses = Vec::new();
    for n in 0..40 {
        // Some without credentials, some with a token that is not one.
        let token = (n % 3 == 0).then_some("not-a-token");
        let response = {
            let mut request = app
                .client
                .post(format!("{}/exchanges/apotti-to-kanta", app.base))
                .json(&json!({}));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.expect("request")
        };
        let status = response.status().as_u16();
        if status == 429 {
            let retry: u64 = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("Retry-After in seconds");
            assert!((1..=13).contains(&retry), "Retry-After {retry}");
            let body: Value = response.json().await.expect("OperationOutcome");
            assert_eq!(body["issue"][0]["code"], "throttled", "{body}");
            assert_eq!(rule_of(&body), "auth.refusals-limited");
        }
        statuses.push(status);
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");

    // Good credentials from the same address still pass.
    let integrator = provider
        .token("integrator", Some("integrator"), AUDIENCE)
        .await;
    let (status, body, _) = call(
        &app,
        "POST",
        "/exchanges/apotti-to-kanta",
        Some(&integrator),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let store = app.store.clone();
    let _data = app.stop_keeping_data().await;
    let (entries, intact) = log_of(&store).await;
    assert!(intact, "the chain verifies");
    let events: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|e| e.starts_with("access-"))
        .collect();
    assert_eq!(
        events,
        [
            vec!["access-refused"; 5],
            vec!["access-refusals-limited", "access-refusals-counted"]
        ]
        .concat(),
        "{entries:#?}"
    );
    let refused = entries
        .iter()
        .find(|e| e["event"] == "access-refused")
        .expect("a refusal");
    assert_eq!(refused["details"]["peer"], "127.0.0.1");
    let opened = entries
        .iter()
        .find(|e| e["event"] == "access-refusals-limited")
        .expect("the limit engaging");
    assert_eq!(opened["details"]["peer"], "127.0.0.1");
    assert_eq!(opened["details"]["limit"], "refusals_per_minute");
    assert_eq!(opened["details"]["per_minute"], 5);
    assert_eq!(opened["outcome"], "refused");
    let counted = entries
        .iter()
        .find(|e| e["event"] == "access-refusals-counted")
        .expect("the count");
    // 40 refusals: 5 logged, 1 opening the limit, 34 counted.
    assert_eq!(counted["details"]["count"], 34, "{counted}");
    let rules = &counted["details"]["rules"];
    let by_rule: u64 = rules
        .as_object()
        .expect("rules")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(by_rule, 34, "{rules}");
    assert!(
        rules["auth.credentials-missing"].as_u64() > Some(0),
        "{rules}"
    );
    assert!(counted["details"]["first"].as_str() <= counted["details"]["last"].as_str());
    // The exchange with good credentials is there too.
    assert!(
        entries
            .iter()
            .any(|e| e["event"] == "exchange" && e["outcome"] == "accepted"),
        "{entries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_counted_not_logged_one_by_one_sqlite() {
    refusal_flood(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_counted_not_logged_one_by_one_postgres() {
    refusal_flood(Db::Postgres).await;
}

/// A gateway on SQLite behind a trusted proxy at 127.0.0.1 (where the test's requests come
/// from) that names clients in `header`, logging `limit` refusals per client a minute; with
/// the OpenID Provider it checks tokens against, or `None` where that cannot start.
async fn behind_a_proxy(limit: u32, header: ForwardedHeader) -> Option<(TestApp, ProviderKeys)> {
    let keys = tempfile::tempdir().expect("temp dir");
    let provider = OidcProvider::start(keys.path(), &["key-1"], &[])?;
    let issuer = provider.issuer.clone();
    let app = TestApp::start_with(Db::Sqlite, move |config| {
        config.auth.issuer = Some(issuer);
        config.auth.audience = Some(AUDIENCE.to_owned());
        config.limits.refusals_per_minute = limit;
        config.limits.trusted_proxies = vec!["127.0.0.1".to_owned()];
        config.limits.forwarded_header = header;
    })
    .await
    .expect("SQLite is always there");
    Some((app, (provider, keys)))
}

/// The OpenID Provider and its key directory, kept for as long as a test's gateway runs.
type ProviderKeys = (OidcProvider, tempfile::TempDir);

/// The status of an exchange posted without credentials with `header: value`, as the proxy
/// would forward it.
async fn forwarded_post(app: &TestApp, header: &str, value: &str) -> u16 {
    app.client
        .post(format!("{}/exchanges/apotti-to-kanta", app.base))
        .header(header, value)
        .json(&json!({}))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// Stops `app` and checks that its log verifies and that the entries naming a peer are
/// `expected` (event, peer), in order.
async fn assert_logged_peers(app: TestApp, expected: &[(&str, &str)]) {
    let store = app.store.clone();
    let _data = app.stop_keeping_data().await;
    let (entries, intact) = log_of(&store).await;
    assert!(intact);
    let peers: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|e| Some((e["event"].as_str()?, e["details"]["peer"].as_str()?)))
        .collect();
    assert_eq!(peers, expected);
}

/// Behind a trusted proxy (`limits.trusted_proxies`), each client the proxy names in
/// `X-Forwarded-For` has its own quota of logged refusals, and the log names that client;
/// a hop the client adds itself in front is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_refusal_limit() {
    let Some((app, _provider)) = behind_a_proxy(3, ForwardedHeader::XForwardedFor).await else {
        return;
    };
    let send = |forwarded| forwarded_post(&app, "x-forwarded-for", forwarded);
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(send("198.51.100.1").await);
    }
    assert_eq!(first, [401, 401, 401, 429]);
    assert_eq!(send("198.51.100.2").await, 401);
    // The nearest hop the trusted proxy saw is the client, not what that client claims.
    assert_eq!(send("198.51.100.1, 198.51.100.3").await, 401);
    assert_logged_peers(
        app,
        &[
            ("access-refused", "198.51.100.1"),
            ("access-refused", "198.51.100.1"),
            ("access-refused", "198.51.100.1"),
            ("access-refusals-limited", "198.51.100.1"),
            ("access-refused", "198.51.100.2"),
            ("access-refused", "198.51.100.3"),
        ],
    )
    .await;
}

/// With `limits.forwarded_header = "forwarded"`, the trusted proxy's RFC 7239 `Forwarded`
/// names the client (IPv6 ones by their /64), and `X-Forwarded-For`, which the proxy would
/// pass on from the client unchecked, is not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_that_sends_forwarded_that_header_names_the_client() {
    let Some((app, _provider)) = behind_a_proxy(2, ForwardedHeader::Forwarded).await else {
        return;
    };
    let mut statuses = Vec::new();
    for value in [
        "for=198.51.100.1;proto=http",
        "for=198.51.100.1",
        "for=198.51.100.1",
        r#"for="[2001:db8:0:1::7]:4711""#,
    ] {
        statuses.push(forwarded_post(&app, "forwarded", value).await);
    }
    assert_eq!(statuses, [401, 401, 429, 401]);
    assert_eq!(
        forwarded_post(&app, "x-forwarded-for", "198.51.100.9").await,
        401
    );
    assert_logged_peers(
        app,
        &[
            ("access-refused", "198.51.100.1"),
            ("access-refused", "198.51.100.1"),
            ("access-refusals-limited", "198.51.100.1"),
            ("access-refused", "2001:db8:0:1::/64"),
            ("access-refused", "127.0.0.1"),
        ],
    )
    .await;
}
