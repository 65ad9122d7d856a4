//! One reconciliation against a mocked apiserver (kube-rs controller-rs style): every request the controller makes
//! is checked in order (method, path, query, body) and answered by hand, so what the controller writes, and when,
//! is pinned down without a cluster.

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::runtime::controller::Action;
use seedsweep_crds::Metrics as TaskMetrics;
use seedsweep_crds::sweep::{SeedSweep, SeedSweepStatus};
use seedsweep_crds::trainer::{EvalPoint, Outcome, TERMINATION_LOG_LIMIT, TrialSummary};
use seedsweep_operator::controller::job::{self, sweep_selector, unrecorded_selector};
use seedsweep_operator::controller::telemetry::OperatorMetrics;
use seedsweep_operator::controller::{Config, Context, Error, error_policy, reconcile};
use seedsweep_operator::engine::plan::plan;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tower_test::mock::{self, Handle, SendResponse};

const NS: &str = "research";
const NAME: &str = "mock";
const UID: &str = "0d9a4f3e-7c1b-4e2a-8f6d-5b4c3a2e1f00";
/// How long a request the controller is expected to make may take to arrive.
const STEP: Duration = Duration::from_secs(5);
/// How long to listen for a request the controller must not make.
const QUIET: Duration = Duration::from_millis(300);
const SCRAPE_INTERVAL: Duration = Duration::from_secs(7);

const VALID: &str = r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata:
  name: mock
spec:
  task: {name: mrpc, dataDir: /data/MRPC}
  model: {path: /models/bert}
  seeds:
    weightInit: {values: [1, 2]}
    dataOrder: {values: [1, 2]}
  training: {epochs: 1, batchSize: 8}
  parallelism: 1
  trialTemplate:
    image: ghcr.io/example/trainer:1
"#;

/// Passes the CRD's schema, fails the operator's cross-field rules: a rung keeps 10 of 4 trials.
const INVALID: &str = r#"
apiVersion: seedsweep.dev/v1alpha1
kind: SeedSweep
metadata:
  name: mock
spec:
  task: {name: mrpc, dataDir: /data/MRPC}
  model: {path: /models/bert}
  seeds:
    weightInit: {values: [1, 2]}
    dataOrder: {values: [1, 2]}
  earlyDiscard:
    rungs: [{atFraction: 0.5, keepCount: 10}]
  parallelism: 1
"#;

fn sweep(manifest: &str) -> SeedSweep {
    let mut s: SeedSweep = serde_yaml::from_str(manifest).expect("the manifest parses");
    s.metadata.namespace = Some(NS.into());
    s.metadata.uid = Some(UID.into());
    s.metadata.generation = Some(1);
    s.metadata.resource_version = Some("100".into());
    s
}

type ApiHandle = Handle<Request<Body>, Response<Body>>;

/// The mocked apiserver's side: requests in the order the controller makes them.
/// The mocked apiserver, and the last chunk of the engine's memory written to it.
struct ApiServer(ApiHandle, Option<Value>);

/// One request, read.
struct Call {
    query: BTreeMap<String, String>,
    body: Value,
    send: SendResponse<Response<Body>>,
}

impl Call {
    fn respond(self, response: Response<Body>) {
        self.send.send_response(response);
    }
}

impl ApiServer {
    /// The next request must be `method path`; returns it with its decoded query and JSON body (null when empty).
    async fn expect(&mut self, method: Method, path: &str) -> Call {
        let (request, send) = timeout(STEP, self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("expected {method} {path}, but no request came"))
            .expect("the client is gone");
        assert_eq!(
            (request.method(), request.uri().path()),
            (&method, path),
            "expected {method} {path}, got {} {}",
            request.method(),
            request.uri()
        );
        let query = parse_query(request.uri().query().unwrap_or(""));
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("the request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        Call { query, body, send }
    }

    /// No request comes (within [`QUIET`]).
    async fn expect_quiet(&mut self) {
        if let Ok(Some((request, _))) = timeout(QUIET, self.0.next_request()).await {
            panic!(
                "expected no request, got {} {}",
                request.method(),
                request.uri()
            );
        }
    }

    /// The Jobs the operator still reads: those not labelled recorded.
    async fn list_jobs(&mut self, jobs: Vec<Value>) {
        let call = self
            .expect(Method::GET, &format!("/apis/batch/v1/namespaces/{NS}/jobs"))
            .await;
        assert_from_watch_cache(&call);
        assert_eq!(
            call.query.get("labelSelector").map(String::as_str),
            Some(unrecorded_selector(NAME).as_str())
        );
        call.respond(ok(list("batch/v1", "JobList", jobs)));
    }

    /// The sweep's pods that have not succeeded.
    async fn list_pods(&mut self, pods: Vec<Value>) {
        let call = self
            .expect(Method::GET, &format!("/api/v1/namespaces/{NS}/pods"))
            .await;
        assert_from_watch_cache(&call);
        assert_eq!(
            call.query.get("labelSelector").map(String::as_str),
            Some(sweep_selector(NAME).as_str())
        );
        assert_eq!(
            call.query.get("fieldSelector").map(String::as_str),
            Some("status.phase!=Succeeded")
        );
        call.respond(ok(list("v1", "PodList", pods)));
    }

    /// The succeeded pods of the completed Job `job`'s attempt, read for its termination message.
    async fn list_succeeded_pods(&mut self, job: &Job, pods: Vec<Value>) {
        let call = self
            .expect(Method::GET, &format!("/api/v1/namespaces/{NS}/pods"))
            .await;
        assert_from_watch_cache(&call);
        let labels = job.metadata.labels.as_ref().unwrap();
        assert_eq!(
            call.query.get("labelSelector").map(String::as_str),
            Some(
                format!(
                    "{},{}={},{}={}",
                    sweep_selector(NAME),
                    job::LABEL_TRIAL,
                    labels[job::LABEL_TRIAL],
                    job::LABEL_ATTEMPT,
                    labels[job::LABEL_ATTEMPT]
                )
                .as_str()
            )
        );
        assert_eq!(
            call.query.get("fieldSelector").map(String::as_str),
            Some("status.phase=Succeeded")
        );
        call.respond(ok(list("v1", "PodList", pods)));
    }

    /// The label that takes a finished Job out of later lists, once the status records its end.
    async fn label_recorded(&mut self, job: &Job) {
        let name = job.metadata.name.as_deref().unwrap();
        let call = self
            .expect(
                Method::PATCH,
                &format!("/apis/batch/v1/namespaces/{NS}/jobs/{name}"),
            )
            .await;
        assert_eq!(
            call.body,
            json!({"metadata": {"labels": {job::LABEL_RECORDED: "true"}}})
        );
        call.respond(ok(listed(job.clone(), complete())));
    }

    /// The status patch: server-side apply, forced, as the operator's field manager. Returns the patch body.
    ///
    /// A successful status write is followed by the write of the engine's memory: the chunk of trials the status's
    /// head points to ([`ApiServer::engine_chunk`]).
    async fn status_patch(&mut self, sweep: &SeedSweep, answer: Option<Response<Body>>) -> Value {
        let call = self
            .expect(
                Method::PATCH,
                &format!("/apis/seedsweep.dev/v1alpha1/namespaces/{NS}/seedsweeps/{NAME}/status"),
            )
            .await;
        assert_eq!(
            call.query.get("fieldManager").map(String::as_str),
            Some(job::MANAGER)
        );
        assert_eq!(call.query.get("force").map(String::as_str), Some("true"));
        assert_eq!(call.body["apiVersion"], "seedsweep.dev/v1alpha1");
        assert_eq!(call.body["kind"], "SeedSweep");
        let body = call.body.clone();
        let written = answer.is_none();
        let answer = answer.unwrap_or_else(|| {
            let mut patched = sweep.clone();
            patched.status = Some(serde_json::from_value(body["status"].clone()).unwrap());
            ok(&patched)
        });
        call.respond(answer);
        // An invalid sweep has no engine.
        if written && !body["status"]["engine"].is_null() {
            let head = &body["status"]["engine"];
            assert!(head["trials"].as_array().unwrap().is_empty(), "{head}");
            assert_eq!(head["trialChunks"]["perChunk"], 16);
            self.engine_chunk(head["trialChunks"]["recorded"].as_u64().unwrap())
                .await;
        }
        body
    }

    /// The write of chunk 0 of the engine's memory (all four trials fit in one): a ConfigMap the sweep owns,
    /// applied as the operator's field manager, holding the `recorded` trials' records. Returns the ConfigMap.
    async fn engine_chunk(&mut self, recorded: u64) -> Value {
        let call = self
            .expect(
                Method::PATCH,
                &format!("/api/v1/namespaces/{NS}/configmaps/{NAME}-engine-0"),
            )
            .await;
        assert_eq!(
            call.query.get("fieldManager").map(String::as_str),
            Some(job::MANAGER)
        );
        let cm = call.body.clone();
        assert_eq!(cm["kind"], "ConfigMap");
        assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], UID);
        assert_eq!(cm["metadata"]["labels"]["seedsweep.dev/engine-chunk"], "0");
        let trials: Value =
            serde_json::from_str(cm["data"]["trials.json"].as_str().unwrap()).unwrap();
        assert_eq!(
            trials.as_array().unwrap().len() as u64,
            recorded,
            "{trials}"
        );
        call.respond(ok(&cm));
        self.1 = Some(cm.clone());
        cm
    }

    /// A restarted operator reading chunk 0 back: answered with the last one written.
    async fn engine_chunk_read(&mut self, chunk: &Value) {
        let call = self
            .expect(
                Method::GET,
                &format!("/api/v1/namespaces/{NS}/configmaps/{NAME}-engine-0"),
            )
            .await;
        call.respond(ok(chunk));
    }

    /// An event about the sweep; answered with itself. Returns the event.
    async fn event(&mut self) -> Value {
        let call = self
            .expect(
                Method::POST,
                &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
            )
            .await;
        let event = call.body.clone();
        assert_eq!(event["regarding"]["kind"], "SeedSweep");
        assert_eq!(event["regarding"]["name"], NAME);
        assert_eq!(event["regarding"]["uid"], UID);
        assert_eq!(event["reportingController"], job::MANAGER);
        call.respond(respond(StatusCode::CREATED, &event));
        event
    }

    /// The sweep's Job `job` listed as completed, with its trainer's pod.
    async fn list_completed(&mut self, job: &Job) {
        self.list_jobs(vec![listed(job.clone(), complete())]).await;
        self.list_pods(vec![]).await;
        self.list_succeeded_pods(job, vec![completed_pod(job)])
            .await;
    }

    /// The completed Job of a trial whose end the operator already knows (its memory or the status it resumed
    /// from): listed until labelled, but its pod is not read again.
    async fn list_completed_known(&mut self, job: &Job) {
        self.list_jobs(vec![listed(job.clone(), complete())]).await;
        self.list_pods(vec![]).await;
    }

    /// The Job `job`, still counting an active pod that the list of pods that have not succeeded no longer shows;
    /// then its attempt's succeeded pods, answered with `succeeded`.
    async fn list_active_without_pod(&mut self, job: &Job, succeeded: Vec<Value>) {
        let still_active = JobStatus {
            active: Some(1),
            ..Default::default()
        };
        self.list_jobs(vec![listed(job.clone(), still_active)])
            .await;
        self.list_pods(vec![]).await;
        self.list_succeeded_pods(job, succeeded).await;
    }

    /// An event with this reason about this trial (its note starts with the trial's name).
    async fn trial_event(&mut self, reason: &str, trial: &str) {
        let event = self.event().await;
        assert_eq!(event["reason"], reason, "{event}");
        let note = event["note"].as_str().unwrap();
        assert!(note.starts_with(trial), "{event}");
    }

    /// A Job create; returns the Job sent, answered with `answer` (default: created).
    async fn create_job(&mut self, answer: Option<Response<Body>>) -> Job {
        let call = self
            .expect(
                Method::POST,
                &format!("/apis/batch/v1/namespaces/{NS}/jobs"),
            )
            .await;
        let job: Job = serde_json::from_value(call.body.clone()).expect("a Job");
        let answer = answer.unwrap_or_else(|| respond(StatusCode::CREATED, &call.body));
        call.respond(answer);
        job
    }
}

/// A list served from the apiserver's watch cache, not read through to etcd.
fn assert_from_watch_cache(call: &Call) {
    assert_eq!(
        (
            call.query.get("resourceVersion").map(String::as_str),
            call.query.get("resourceVersionMatch").map(String::as_str)
        ),
        (Some("0"), Some("NotOlderThan"))
    );
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn respond(code: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

fn ok(value: impl serde::Serialize) -> Response<Body> {
    respond(StatusCode::OK, &value)
}

/// An error answer as the apiserver gives it: a `metav1.Status`.
fn failure(code: u16, reason: &str, message: &str) -> Response<Body> {
    respond(
        StatusCode::from_u16(code).unwrap(),
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }),
    )
}

fn list(api_version: &str, kind: &str, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": "200"},
        "items": items,
    })
}

fn context() -> (Arc<Context>, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config = Config {
        scrape_interval: SCRAPE_INTERVAL,
        scrape_timeout: Duration::from_millis(200),
        // Progress-only status writes never fall due within a test.
        status_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let ctx = Arc::new(
        Context::new(client, config, Arc::new(OperatorMetrics::new())).expect("an HTTP client"),
    );
    (ctx, ApiServer(handle, None))
}

fn start(sweep: &SeedSweep, ctx: &Arc<Context>) -> JoinHandle<Result<Action, Error>> {
    tokio::spawn(reconcile(Arc::new(sweep.clone()), Arc::clone(ctx)))
}

async fn finish(task: JoinHandle<Result<Action, Error>>) -> Result<Action, Error> {
    timeout(STEP, task)
        .await
        .expect("reconcile returns")
        .expect("reconcile does not panic")
}

fn first_trial(sweep: &SeedSweep) -> String {
    plan(NAME, &sweep.spec).trials[0].name.clone()
}

/// A Job as the apiserver lists it: what the controller created, with a status.
fn listed(mut job: Job, status: JobStatus) -> Value {
    job.metadata.uid = Some(format!("uid-{}", job.metadata.name.as_deref().unwrap()));
    job.metadata.resource_version = Some("150".into());
    job.status = Some(status);
    serde_json::to_value(&job).unwrap()
}

// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_deleted_sweep_is_left_to_the_garbage_collector() {
    let (ctx, mut api) = context();
    let mut s = sweep(VALID);
    s.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let action = timeout(STEP, reconcile(Arc::new(s), Arc::clone(&ctx)))
        .await
        .expect("no request is waited for")
        .expect("ok");
    assert_eq!(action, Action::await_change());
    api.expect_quiet().await;
    assert_eq!(ctx.metrics.reconciles.with_label_values(&["ok"]).get(), 1);
}

#[tokio::test]
async fn a_sweep_without_a_namespace_is_an_error_without_a_request() {
    let (ctx, mut api) = context();
    let mut s = sweep(VALID);
    s.metadata.namespace = None;
    let s = Arc::new(s);
    let e = timeout(STEP, reconcile(Arc::clone(&s), Arc::clone(&ctx)))
        .await
        .expect("no request is waited for")
        .expect_err("no namespace");
    assert!(
        matches!(e, Error::MissingNamespace(ref n) if n == NAME),
        "{e}"
    );
    assert_eq!(e.kind(), "missing_namespace");
    api.expect_quiet().await;
    assert_eq!(
        ctx.metrics
            .reconcile_errors
            .with_label_values(&["missing_namespace"])
            .get(),
        1
    );
}

#[tokio::test]
async fn an_invalid_spec_gets_the_invalid_status_and_an_event_and_no_job() {
    assert!(
        seedsweep_operator::manifest::load(INVALID).is_err(),
        "the operator's validation must refuse it"
    );
    let (ctx, mut api) = context();
    let s = sweep(INVALID);
    let task = start(&s, &ctx);

    let patch = api.status_patch(&s, None).await;
    let status = &patch["status"];
    assert_eq!(status["phase"], "Invalid");
    assert_eq!(status["observedGeneration"], 1);
    assert!(status.get("engine").is_none(), "nothing was planned");
    let conditions = status["conditions"].as_array().expect("conditions");
    let invalid = conditions
        .iter()
        .find(|c| c["type"] == "Invalid")
        .expect("an Invalid condition");
    assert_eq!(invalid["status"], "True");
    let message = invalid["message"].as_str().unwrap();
    assert!(
        message.contains("spec.earlyDiscard.rungs[0].keepCount"),
        "{message}"
    );
    let ready = conditions
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("a Ready condition");
    assert_eq!(ready["status"], "False");

    let event = api.event().await;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidSpec");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("spec.earlyDiscard.rungs[0].keepCount")
    );

    assert_eq!(finish(task).await.expect("ok"), Action::await_change());
    api.expect_quiet().await;

    // Seen again with that status: nothing to write, nothing to announce, still nothing created.
    let mut again = s.clone();
    again.status = Some(serde_json::from_value(status.clone()).unwrap());
    let task = start(&again, &ctx);
    api.expect_quiet().await;
    assert_eq!(finish(task).await.expect("ok"), Action::await_change());
}

#[tokio::test]
async fn an_api_error_is_retried_and_counted() {
    let (ctx, mut api) = context();
    let s = sweep(VALID);
    let task = start(&s, &ctx);
    let call = api
        .expect(Method::GET, &format!("/apis/batch/v1/namespaces/{NS}/jobs"))
        .await;
    assert_eq!(
        call.query.get("labelSelector").map(String::as_str),
        Some(unrecorded_selector(NAME).as_str())
    );
    call.respond(failure(
        500,
        "InternalError",
        "etcdserver: request timed out",
    ));
    let e = finish(task).await.expect_err("the list failed");
    match &e {
        Error::Kube(kube::Error::Api(status)) => {
            assert_eq!(status.code, 500);
            assert!(status.message.contains("etcdserver"));
        }
        other => panic!("expected Error::Kube(Api), got {other:?}"),
    }
    assert_eq!(e.kind(), "api");
    assert_eq!(
        error_policy(Arc::new(s), &e, Arc::clone(&ctx)),
        Action::requeue(Duration::from_secs(5))
    );
    let m = &ctx.metrics;
    assert_eq!(m.reconcile_errors.with_label_values(&["api"]).get(), 1);
    assert_eq!(m.reconciles.with_label_values(&["error"]).get(), 1);
    assert_eq!(m.reconciles.with_label_values(&["ok"]).get(), 0);
    api.expect_quiet().await;
}

/// The status records the launch before the Job exists; a Job that already exists (made before a restart, or by a
/// replica that lost its lease) is this attempt's Job, not an error; the launch is announced once; and the next look
/// creates nothing.
#[tokio::test]
async fn an_existing_job_is_adopted_and_never_created_twice() {
    let (ctx, mut api) = context();
    let mut s = sweep(VALID);
    let trial = first_trial(&s);
    let task = start(&s, &ctx);

    api.list_jobs(vec![]).await;
    api.list_pods(vec![]).await;
    // Written before the Job is created.
    let patch = api.status_patch(&s, None).await;
    let status = &patch["status"];
    assert_eq!(status["phase"], "Running");
    assert!(
        status["engine"].is_object(),
        "the engine's memory is written"
    );
    let record = &status["trials"][0];
    assert_eq!(record["name"], trial.as_str());
    assert_eq!(record["attempts"], 1);
    assert_eq!(record["phase"], "Running");
    // Trials not launched yet are only counted.
    assert_eq!(status["trials"].as_array().unwrap().len(), 1);
    assert_eq!(status["counts"]["pending"], 3);
    assert_eq!(status["counts"]["running"], 1);
    // The launch's event is on record before anything is done.
    let recorded = &status["unpublishedEvents"];
    assert_eq!(recorded.as_array().unwrap().len(), 1, "{recorded}");
    assert_eq!(recorded[0]["reason"], "TrialStarted");
    assert_eq!(recorded[0]["job"], format!("{trial}-1").as_str());

    let created = api
        .create_job(Some(failure(
            409,
            "AlreadyExists",
            &format!("jobs.batch \"{trial}-1\" already exists"),
        )))
        .await;
    assert_eq!(
        created.metadata.name.as_deref(),
        Some(format!("{trial}-1").as_str())
    );
    assert_eq!(
        created.metadata.owner_references.as_ref().unwrap()[0].uid,
        UID
    );
    assert_eq!(api.event().await["reason"], "TrialStarted");
    assert_eq!(
        finish(task).await.expect("a 409 is adoption, not an error"),
        Action::requeue(SCRAPE_INTERVAL)
    );
    api.expect_quiet().await;
    assert_eq!(ctx.metrics.jobs_created.with_label_values(&[NS]).get(), 0);
    assert_eq!(
        ctx.metrics
            .reconcile_errors
            .with_label_values(&["api"])
            .get(),
        0
    );

    // Next look: the Job is there, its pod not created yet.
    s.status = Some(serde_json::from_value::<SeedSweepStatus>(status.clone()).unwrap());
    let task = start(&s, &ctx);
    api.list_jobs(vec![listed(created, JobStatus::default())])
        .await;
    api.list_pods(vec![]).await;
    // No create, no status write (nothing changed), and the launch is not announced again.
    api.expect_quiet().await;
    assert_eq!(
        finish(task).await.expect("ok"),
        Action::requeue(SCRAPE_INTERVAL)
    );
}

#[tokio::test]
async fn a_created_job_is_announced() {
    let (ctx, mut api) = context();
    let s = sweep(VALID);
    let trial = first_trial(&s);
    let task = start(&s, &ctx);
    api.list_jobs(vec![]).await;
    api.list_pods(vec![]).await;
    api.status_patch(&s, None).await;
    let created = api.create_job(None).await;
    assert_eq!(
        created.metadata.name.as_deref(),
        Some(format!("{trial}-1").as_str())
    );
    let event = api.event().await;
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["reason"], "TrialStarted");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains(&format!("Job {trial}-1")),
        "{event}"
    );
    assert_eq!(
        finish(task).await.expect("ok"),
        Action::requeue(SCRAPE_INTERVAL)
    );
    api.expect_quiet().await;
    assert_eq!(ctx.metrics.jobs_created.with_label_values(&[NS]).get(), 1);
}

/// The trainer's pod of a completed Job, with its summary in the termination message.
fn completed_pod(job: &Job) -> Value {
    let labels = job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone();
    let trial = labels.as_ref().unwrap()[job::LABEL_TRIAL].clone();
    let metrics = |a: f64| TaskMetrics {
        accuracy: a,
        f1: a + 0.05,
        mcc: a - 0.4,
        acc_and_f1: a + 0.025,
    };
    let summary = TrialSummary {
        sweep: NAME.into(),
        trial,
        wi_seed: 1,
        do_seed: 1,
        outcome: Outcome::Completed,
        reason: None,
        steps_done: 100,
        total_steps: 100,
        majority_baseline: metrics(0.68),
        final_metrics: Some(metrics(0.84)),
        evals: (0..4)
            .map(|i| EvalPoint {
                index: i,
                step: u64::from(i + 1) * 25,
                progress: f64::from(i + 1) * 0.25,
                metrics: metrics(0.75 + f64::from(i) * 0.03),
            })
            .collect(),
        dropped_evals: 0,
        resumed_from_step: 0,
    };
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(format!("{}-x7k2p", job.metadata.name.as_deref().unwrap())),
            namespace: Some(NS.into()),
            labels,
            creation_timestamp: Some(Time(Timestamp::from_second(1_700_000_000).unwrap())),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: job
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers
                .clone(),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Succeeded".into()),
            pod_ip: Some("10.0.0.5".into()),
            container_statuses: Some(vec![ContainerStatus {
                name: job::CONTAINER.into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 0,
                        message: Some(summary.to_compact_json(TERMINATION_LOG_LIMIT, &[])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    };
    serde_json::to_value(&pod).unwrap()
}

fn complete() -> JobStatus {
    JobStatus {
        succeeded: Some(1),
        conditions: Some(vec![JobCondition {
            type_: "Complete".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// The first reconciliation of a new sweep: the first trial's launch is recorded, its Job created (answered with
/// `answer`, default created) and the launch announced. Returns the Job.
async fn start_first_trial(
    ctx: &Arc<Context>,
    api: &mut ApiServer,
    s: &SeedSweep,
    answer: Option<Response<Body>>,
) -> Job {
    let task = start(s, ctx);
    api.list_jobs(vec![]).await;
    api.list_pods(vec![]).await;
    api.status_patch(s, None).await;
    let job = api.create_job(answer).await;
    assert_eq!(api.event().await["reason"], "TrialStarted");
    finish(task).await.expect("ok");
    job
}

/// A trial whose pod succeeded has ended, though its Job does not say so yet: the Job still counts the pod as
/// active (the Job controller has not caught up), and the list of pods that have not succeeded no longer shows it.
/// The succeeded pod is read at once and its slot refilled in the same reconciliation; the Job is labelled out of
/// later lists and kept, with its logs.
#[tokio::test]
async fn a_succeeded_pod_ends_its_trial_before_the_job_completes() {
    let (ctx, mut api) = context();
    let s = sweep(VALID);
    let trials = plan(NAME, &s.spec).trials;
    let first_job = start_first_trial(&ctx, &mut api, &s, None).await;

    let task = start(&s, &ctx);
    api.list_active_without_pod(&first_job, vec![completed_pod(&first_job)])
        .await;
    let patch = api.status_patch(&s, None).await;
    assert_eq!(patch["status"]["trials"][0]["phase"], "Succeeded");
    assert_eq!(patch["status"]["trials"][1]["phase"], "Running");
    // The freed slot first, then the label.
    let second = api.create_job(None).await;
    assert_eq!(
        second.metadata.name.as_deref(),
        Some(format!("{}-1", trials[1].name).as_str())
    );
    api.label_recorded(&first_job).await;
    api.trial_event("TrialCompleted", &trials[0].name).await;
    api.trial_event("TrialStarted", &trials[1].name).await;
    finish(task).await.expect("ok");
    // Nothing deleted: the first trial's Job stays.
    assert_eq!(
        ctx.metrics
            .jobs_deleted
            .with_label_values(&[NS, "superseded"])
            .get(),
        0
    );

    // The same Job listed active while its pod is simply not found (the lists a moment apart): nothing ends, and
    // nothing but the lists is asked.
    let (ctx, mut api) = context();
    let first_job = start_first_trial(&ctx, &mut api, &s, None).await;
    let task = start(&s, &ctx);
    api.list_active_without_pod(&first_job, vec![]).await;
    api.expect_quiet().await;
    finish(task).await.expect("ok");
}

/// "Written before any decision is acted on": a decision whose status write failed must still be written before
/// the Job it decided is created, when the reconciliation is retried.
#[tokio::test]
async fn a_decision_whose_status_write_failed_is_written_before_it_is_acted_on() {
    let (ctx, mut api) = context();
    let s = sweep(VALID);
    let trials = plan(NAME, &s.spec).trials;

    // 1: the first trial starts (its Job already exists).
    let first_job = start_first_trial(
        &ctx,
        &mut api,
        &s,
        Some(failure(409, "AlreadyExists", "already exists")),
    )
    .await;

    // 2: it completed; the engine starts the second trial, but the status write fails.
    let task = start(&s, &ctx);
    api.list_completed(&first_job).await;
    let patch = api
        .status_patch(
            &s,
            Some(failure(500, "InternalError", "etcdserver: leader changed")),
        )
        .await;
    assert_eq!(patch["status"]["trials"][0]["phase"], "Succeeded");
    assert_eq!(patch["status"]["trials"][1]["phase"], "Running");
    finish(task).await.expect_err("the status write failed");

    // 3: the retry must record the decision before creating the second trial's Job. The operator remembers the
    // first trial's end: its pod is not read again.
    let task = start(&s, &ctx);
    api.list_completed_known(&first_job).await;
    let patch = api.status_patch(&s, None).await;
    assert_eq!(patch["status"]["trials"][0]["phase"], "Succeeded");
    assert_eq!(patch["status"]["trials"][1]["phase"], "Running");
    assert_eq!(patch["status"]["trials"][1]["attempts"], 1);
    let second = api
        .create_job(Some(failure(409, "AlreadyExists", "already exists")))
        .await;
    assert_eq!(
        second.metadata.name.as_deref(),
        Some(format!("{}-1", trials[1].name).as_str())
    );
    // Recorded in the status: the completed Job is labelled out of later lists, once the freed slot is filled.
    api.label_recorded(&first_job).await;
    // The first trial's completion and the second's launch, announced once the failed write has gone through.
    api.trial_event("TrialCompleted", &trials[0].name).await;
    api.trial_event("TrialStarted", &trials[1].name).await;
    finish(task).await.expect("ok");
}

/// Events are recorded with the decision that caused them: an operator that died after writing the status and
/// before publishing them leaves them in `unpublishedEvents`, and the one that takes over publishes them.
#[tokio::test]
async fn events_a_dead_operator_did_not_publish_are_published_by_the_next() {
    let (ctx, mut api) = context();
    let mut s = sweep(VALID);
    let trials = plan(NAME, &s.spec).trials;

    // The first trial completed and the second is decided; the operator dies before the Job is created.
    let first_job = start_first_trial(&ctx, &mut api, &s, None).await;
    let task = start(&s, &ctx);
    api.list_completed(&first_job).await;
    let patch = api.status_patch(&s, None).await;
    let reasons: Vec<&str> = patch["status"]["unpublishedEvents"]
        .as_array()
        .expect("the events are on record")
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["TrialCompleted", "TrialStarted"]);
    let _dies_before_the_answer = api
        .expect(
            Method::POST,
            &format!("/apis/batch/v1/namespaces/{NS}/jobs"),
        )
        .await;
    task.abort();

    // A new operator (a restart, or the standby that took the lease) picks the sweep up from that status and the
    // engine's chunk.
    s.status = Some(serde_json::from_value(patch["status"].clone()).unwrap());
    let chunk = api.1.clone().expect("a chunk was written");
    let (ctx, mut api) = context();
    let task = start(&s, &ctx);
    api.engine_chunk_read(&chunk).await;
    // Not labelled before it died: the Job is listed and labelled now (the status holds its end: its pod is not
    // read).
    api.list_completed_known(&first_job).await;
    let second = api.create_job(None).await;
    assert_eq!(
        second.metadata.name.as_deref(),
        Some(format!("{}-1", trials[1].name).as_str())
    );
    api.label_recorded(&first_job).await;
    api.trial_event("TrialCompleted", &trials[0].name).await;
    api.trial_event("TrialStarted", &trials[1].name).await;
    finish(task).await.expect("ok");
    // Published once: the next write clears them from the status, and nothing is published again.
    api.expect_quiet().await;
}
