//! Running cases: each step's request goes to the target (or to the profiles in process), the
//! answer is checked, captures are kept for the next steps; the first step that does not hold
//! ends the case.
//!
//! Cases are independent (each has its own fresh identifiers, see [`crate::fresh`]), so a few
//! run at a time; results are reported in suite order whatever order they finish in. A
//! problem reaching the target or resolving the case makes the case *errored*; an answer that
//! breaks the contract makes it *failed*.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use gateway::outcome::OperationOutcome;
use gateway::profiles::ProfileRegistry;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cases::{Auth, Case, Method, Requirement, Step};
use crate::expect::{self, Answer, IssueStyle};
use crate::fresh::{Fresh, Scope};
use crate::report::{CaseResult, Mismatch, Status};
use crate::sources::{self, Payload, Vars};

/// An HTTP target: a gateway or an archive.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// Base URL without a trailing slash.
    pub base: String,
    /// The client with the run's credentials.
    pub client: reqwest::Client,
    /// A client without any credentials (for `auth: none` steps).
    pub bare: reqwest::Client,
    /// Whether the run authenticates with a client certificate.
    pub client_certificate: bool,
}

/// Where steps go.
#[derive(Debug, Clone)]
pub enum Executor {
    /// In process, against these profiles.
    Profiles(Arc<ProfileRegistry>),
    /// A gateway.
    Gateway(HttpTarget),
    /// An archive.
    Archive(HttpTarget),
}

impl Executor {
    fn style(&self) -> IssueStyle {
        match self {
            Self::Archive(_) => IssueStyle::Archive,
            _ => IssueStyle::Outcome,
        }
    }

    fn scope(&self) -> Option<Scope> {
        match self {
            Self::Profiles(_) => None,
            Self::Gateway(_) => Some(Scope::Gateway),
            Self::Archive(_) => Some(Scope::Archive),
        }
    }
}

/// A run: where, with which run number, how many cases at a time.
#[derive(Debug, Clone)]
pub struct Runner {
    /// Where steps go.
    pub executor: Executor,
    /// Makes identifiers fresh for this run (< 100 000).
    pub run: u32,
    /// Cases at a time.
    pub jobs: usize,
    /// Show a progress bar (on standard error, only on a terminal).
    pub progress: bool,
}

/// A fresh run number.
#[must_use]
pub fn new_run_number() -> u32 {
    let id = uuid::Uuid::new_v4();
    let bytes = id.as_bytes();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) % 100_000
}

/// Why a step could not be run.
enum StepError {
    /// The harness's fault: the case is errored.
    Harness(String),
    /// The target's answer broke the contract.
    Mismatches(Vec<Mismatch>),
}

impl Runner {
    /// Runs `cases` (each with its ordinal in the suite, which keeps fresh ids stable) and
    /// returns their results in the order given.
    pub async fn run(&self, cases: Vec<(usize, &Case)>) -> Vec<CaseResult> {
        let bar = if self.progress {
            ProgressBar::new(cases.len() as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let total = cases.len();
        let mut results: Vec<(usize, CaseResult)> =
            futures::stream::iter(cases.into_iter().enumerate())
                .map(|(position, (ordinal, case))| {
                    let bar = bar.clone();
                    async move {
                        let result = self.run_case(ordinal, case).await;
                        bar.set_message(result.id.clone());
                        bar.inc(1);
                        (position, result)
                    }
                })
                .buffer_unordered(self.jobs.max(1))
                .collect()
                .await;
        bar.finish_and_clear();
        results.sort_by_key(|(position, _)| *position);
        debug_assert_eq!(results.len(), total);
        results.into_iter().map(|(_, result)| result).collect()
    }

    /// Runs one case.
    pub async fn run_case(&self, ordinal: usize, case: &Case) -> CaseResult {
        let started = Instant::now();
        let mut result = CaseResult {
            id: case.id.clone(),
            title: case.title.clone(),
            group: case.file.trim_end_matches(".json").to_owned(),
            spec: Some(case.spec.clone()),
            status: Status::Passed,
            message: None,
            mismatches: Vec::new(),
            duration_ms: 0,
        };
        let has_certificate = match &self.executor {
            Executor::Archive(t) | Executor::Gateway(t) => t.client_certificate,
            Executor::Profiles(_) => false,
        };
        if case.requires.contains(&Requirement::ClientCertificate) && !has_certificate {
            result.status = Status::Skipped;
            result.message =
                Some("needs a run with a client certificate (--client-cert)".to_owned());
            return result;
        }
        let fresh = self
            .executor
            .scope()
            .map(|scope| Fresh::new(self.run, u32::try_from(ordinal).unwrap_or(u32::MAX), scope));
        let mut vars = Vars::new();
        vars.insert("run".to_owned(), json!(self.run.to_string()));
        for (index, step) in case.steps.iter().enumerate() {
            match self
                .run_step(index + 1, step, &mut vars, fresh.as_ref())
                .await
            {
                Ok(()) => {}
                Err(StepError::Harness(message)) => {
                    result.status = Status::Errored;
                    result.message = Some(format!("step {}: {message}", index + 1));
                    break;
                }
                Err(StepError::Mismatches(mismatches)) => {
                    result.status = Status::Failed;
                    result.message = step
                        .name
                        .as_ref()
                        .map(|name| format!("step {}: {name}", index + 1));
                    result.mismatches = mismatches;
                    break;
                }
            }
        }
        result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        result
    }

    async fn run_step(
        &self,
        number: usize,
        step: &Step,
        vars: &mut Vars,
        fresh: Option<&Fresh>,
    ) -> Result<(), StepError> {
        let (request_value, answer) = match (&self.executor, &step.request, &step.validate) {
            (Executor::Profiles(registry), None, Some(validate)) => {
                let record = sources::resolve_value(&validate.input, vars, None)
                    .map_err(StepError::Harness)?;
                let forced = match &validate.profile {
                    Some(id) => Some(registry.get(id).ok_or_else(|| {
                        StepError::Harness(format!("no profile {id} in the suite's profiles"))
                    })?),
                    None => None,
                };
                let verdict = registry.validate(&record, forced);
                let body = json!({
                    "valid": verdict.is_valid(),
                    "profile": verdict.profile,
                    "outcome": OperationOutcome::from_issues(&verdict.issues, "valid"),
                });
                (record, Answer { status: 200, body })
            }
            (Executor::Gateway(target) | Executor::Archive(target), Some(request), None) => {
                let payload = request
                    .body
                    .as_ref()
                    .map(|body| sources::resolve(body, vars, fresh))
                    .transpose()
                    .map_err(StepError::Harness)?;
                let path = sources::substitute_text(&request.path, vars, sources::url_encode)
                    .map_err(StepError::Harness)?;
                let client = match request.auth {
                    Auth::Run => &target.client,
                    Auth::None => &target.bare,
                };
                let sent = send(
                    client,
                    &target.base,
                    request.method,
                    &path,
                    payload.as_ref(),
                )
                .await;
                let request_value = payload.as_ref().map_or(Value::Null, Payload::as_value);
                if step.expect.refused {
                    return match sent {
                        Err(_) => Ok(()),
                        Ok(answer) if matches!(answer.status, 401 | 403) => Ok(()),
                        Ok(answer) => Err(StepError::Mismatches(vec![Mismatch {
                            step: number,
                            what: "refused".to_owned(),
                            expected: json!("no TLS session, or 401/403"),
                            actual: json!({"status": answer.status}),
                        }])),
                    };
                }
                let answer = sent.map_err(StepError::Harness)?;
                (request_value, answer)
            }
            _ => {
                return Err(StepError::Harness(
                    "the step's kind (request or validate) does not fit the target".to_owned(),
                ));
            }
        };
        // Values from the request are known before the answer: the same step may expect them.
        for (name, from) in &step.capture {
            if let Some(pointer) = from.strip_prefix("request:") {
                let value = request_value.pointer(pointer).ok_or_else(|| {
                    StepError::Harness(format!(
                        "capture {name}: the request has nothing at {pointer}"
                    ))
                })?;
                vars.insert(name.clone(), value.clone());
            }
        }
        let mismatches = expect::check(
            &step.expect,
            &answer,
            vars,
            fresh,
            self.executor.style(),
            number,
        )
        .map_err(StepError::Harness)?;
        if !mismatches.is_empty() {
            return Err(StepError::Mismatches(mismatches));
        }
        let mut missing = Vec::new();
        for (name, from) in &step.capture {
            let value = match from.split_once(':') {
                Some(("response", pointer)) => answer.body.pointer(pointer),
                Some(("request", _)) => continue,
                _ => {
                    return Err(StepError::Harness(format!(
                        "capture {name}: {from:?} is not response:<pointer> or request:<pointer>"
                    )));
                }
            };
            match value {
                Some(value) => {
                    vars.insert(name.clone(), value.clone());
                }
                None => missing.push(Mismatch {
                    step: number,
                    what: format!("capture {name}"),
                    expected: json!(format!("a value at {from}")),
                    actual: json!("(absent)"),
                }),
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StepError::Mismatches(missing))
        }
    }
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    payload: Option<&Payload>,
) -> Result<Answer, String> {
    let url = format!("{base}{path}");
    let request = match method {
        Method::Get => client.get(&url),
        Method::Post => client.post(&url),
    };
    let request = match payload {
        Some(payload) => {
            let (bytes, content_type) = payload.encode();
            request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes)
        }
        None => request,
    };
    let response = request
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {}", error_chain(&e)))?;
    let status = response.status().as_u16();
    let ndjson = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("ndjson"));
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("the answer from {url} broke off: {}", error_chain(&e)))?;
    let body = if ndjson {
        Value::Array(
            bytes
                .split(|b| *b == b'\n')
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
                .map(|line| {
                    serde_json::from_slice(line)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(line).into()))
                })
                .collect(),
        )
    } else if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Ok(Answer { status, body })
}

/// An error with its causes, one after the other (reqwest hides the TLS reason in a cause).
#[must_use]
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
