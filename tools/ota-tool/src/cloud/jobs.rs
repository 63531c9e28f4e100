//! AWS IoT Jobs, the part a device sees over MQTT (the AWS API reference: JobExecutionState,
//! UpdateJobExecution, GetPendingJobExecutions' `$next`, and the `notify-next` topic).
//!
//! Jobs have executions, one per targeted thing. An execution starts QUEUED; the device moves
//! it to IN_PROGRESS and then to SUCCEEDED, FAILED or REJECTED; the service may move it to
//! CANCELED (job cancelled), TIMED_OUT (step timeout passed) or REMOVED. The last six are
//! terminal: nothing changes a terminal execution any more. The "next" execution of a thing is
//! the oldest IN_PROGRESS one, else the oldest QUEUED one; `notify-next` is published whenever
//! it changes.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value as Json};

/// The status of a job execution, spelt as AWS does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExecStatus {
    /// Waiting for the device.
    Queued,
    /// The device works on it.
    InProgress,
    /// Done (device).
    Succeeded,
    /// Failed (device).
    Failed,
    /// Refused (device).
    Rejected,
    /// The job was cancelled (service).
    Canceled,
    /// The step timeout passed (service).
    TimedOut,
    /// Deleted (service).
    Removed,
}

impl ExecStatus {
    /// All statuses.
    pub const ALL: [ExecStatus; 8] = [
        Self::Queued,
        Self::InProgress,
        Self::Succeeded,
        Self::Failed,
        Self::Rejected,
        Self::Canceled,
        Self::TimedOut,
        Self::Removed,
    ];

    /// The AWS spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::InProgress => "IN_PROGRESS",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Rejected => "REJECTED",
            Self::Canceled => "CANCELED",
            Self::TimedOut => "TIMED_OUT",
            Self::Removed => "REMOVED",
        }
    }

    /// Parses the AWS spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether nothing may change the execution any more.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::InProgress)
    }

    /// Whether a device may set this status with UpdateJobExecution.
    pub fn device_settable(self) -> bool {
        matches!(
            self,
            Self::InProgress | Self::Succeeded | Self::Failed | Self::Rejected
        )
    }
}

/// One thing's execution of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    /// The job.
    pub job_id: String,
    /// The thing.
    pub thing: String,
    /// Current status.
    pub status: ExecStatus,
    /// The device's string map, replaced as a whole by each update that carries one.
    pub status_details: BTreeMap<String, String>,
    /// Unix seconds.
    pub queued_at: u64,
    /// Unix seconds of the first move to IN_PROGRESS.
    pub started_at: Option<u64>,
    /// Unix seconds.
    pub last_updated_at: u64,
    /// Incremented on every change, starting at 1.
    pub version_number: u64,
    /// 1 for the first execution of a job on a thing.
    pub execution_number: u64,
    /// When an IN_PROGRESS execution times out (set by `stepTimeoutInMinutes`).
    pub step_deadline: Option<u64>,
    /// Queue order among all executions.
    seq: u64,
}

/// The state of a job as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Some execution is not terminal.
    InProgress,
    /// Cancelled.
    Canceled,
    /// Every execution is terminal.
    Completed,
}

impl JobState {
    /// The AWS spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Canceled => "CANCELED",
            Self::Completed => "COMPLETED",
        }
    }
}

/// A job: a document and its targets.
#[derive(Clone, Debug)]
pub struct Job {
    /// `AFR_OTA-<id>` for OTA jobs.
    pub job_id: String,
    /// The job document as the device receives it in `execution.jobDocument`.
    pub document: Json,
    /// Things the job was created for (groups expanded at creation).
    pub targets: Vec<String>,
    /// Where the job stands.
    pub state: JobState,
    /// Unix seconds.
    pub created_at: u64,
}

/// A Jobs error code of a `rejected` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobsErrorCode {
    /// Payload not JSON.
    InvalidJson,
    /// A field is missing, of the wrong type or out of range.
    InvalidRequest,
    /// The new status cannot follow the current one.
    InvalidStateTransition,
    /// No such job execution.
    ResourceNotFound,
    /// `expectedVersion` differs.
    VersionMismatch,
    /// The execution is terminal.
    TerminalStateReached,
}

impl JobsErrorCode {
    /// The AWS spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "InvalidJson",
            Self::InvalidRequest => "InvalidRequest",
            Self::InvalidStateTransition => "InvalidStateTransition",
            Self::ResourceNotFound => "ResourceNotFound",
            Self::VersionMismatch => "VersionMismatch",
            Self::TerminalStateReached => "TerminalStateReached",
        }
    }
}

/// What to publish after a change: `(thing, payload)` for `$aws/things/<thing>/jobs/notify-next`.
pub type NotifyNext = (String, Json);

/// An answer to a device request: accepted or rejected payload, plus notify-next messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// `true` for the `accepted` topic.
    pub accepted: bool,
    /// The reply payload.
    pub payload: Json,
    /// notify-next messages caused by the request.
    pub notify: Vec<NotifyNext>,
}

/// Admin errors (create, cancel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminError {
    /// A job with this id exists.
    AlreadyExists(String),
    /// No such job.
    NotFound(String),
    /// The request is unusable.
    Invalid(String),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadyExists(id) => write!(f, "job {id} already exists"),
            Self::NotFound(id) => write!(f, "no job {id}"),
            Self::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for AdminError {}

/// Longest client token the service accepts.
pub const MAX_CLIENT_TOKEN: usize = 64;

/// Renders the job document a device receives, given the stored one and the time (the OTA
/// layer uses it to presign HTTP URLs when the document is requested, §10).
pub type DocRenderer<'a> = &'a dyn Fn(&Job, u64) -> Json;

/// The Jobs service for all things.
#[derive(Clone, Debug, Default)]
pub struct Jobs {
    jobs: BTreeMap<String, Job>,
    order: Vec<String>,
    executions: BTreeMap<(String, String), Execution>,
    seq: u64,
}

fn plain(job: &Job, _now: u64) -> Json {
    job.document.clone()
}

impl Jobs {
    /// The jobs, oldest first.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.order.iter().filter_map(|id| self.jobs.get(id))
    }

    /// One job.
    pub fn job(&self, job_id: &str) -> Option<&Job> {
        self.jobs.get(job_id)
    }

    /// The executions of a job, in target order.
    pub fn executions_of(&self, job_id: &str) -> Vec<&Execution> {
        let mut v: Vec<_> = self
            .executions
            .values()
            .filter(|e| e.job_id == job_id)
            .collect();
        v.sort_by_key(|e| e.seq);
        v
    }

    /// One execution.
    pub fn execution(&self, thing: &str, job_id: &str) -> Option<&Execution> {
        self.executions
            .get(&(thing.to_string(), job_id.to_string()))
    }

    /// The next pending execution of a thing: IN_PROGRESS ones first (oldest start first), then
    /// QUEUED ones in queue order.
    pub fn next_pending(&self, thing: &str) -> Option<&Execution> {
        self.executions
            .values()
            .filter(|e| e.thing == thing && !e.status.is_terminal())
            .min_by_key(|e| {
                (
                    e.status != ExecStatus::InProgress,
                    if e.status == ExecStatus::InProgress {
                        e.started_at.unwrap_or(0)
                    } else {
                        0
                    },
                    e.seq,
                )
            })
    }

    fn next_id(&self, thing: &str) -> Option<String> {
        self.next_pending(thing).map(|e| e.job_id.clone())
    }

    /// The `execution` object of `$next/get/accepted` and `notify-next`.
    pub fn execution_json(&self, e: &Execution, document: Option<Json>) -> Json {
        let mut m = Map::new();
        m.insert("jobId".into(), json!(e.job_id));
        m.insert("thingName".into(), json!(e.thing));
        m.insert("status".into(), json!(e.status.as_str()));
        if !e.status_details.is_empty() {
            m.insert("statusDetails".into(), json!(e.status_details));
        }
        m.insert("queuedAt".into(), json!(e.queued_at));
        if let Some(t) = e.started_at {
            m.insert("startedAt".into(), json!(t));
        }
        m.insert("lastUpdatedAt".into(), json!(e.last_updated_at));
        m.insert("versionNumber".into(), json!(e.version_number));
        m.insert("executionNumber".into(), json!(e.execution_number));
        if let Some(d) = document {
            m.insert("jobDocument".into(), d);
        }
        Json::Object(m)
    }

    fn notify_payload(&self, thing: &str, now: u64, render: DocRenderer<'_>) -> Json {
        match self.next_pending(thing) {
            Some(e) => {
                let doc = self.jobs.get(&e.job_id).map(|j| render(j, now));
                json!({"timestamp": now, "execution": self.execution_json(e, doc)})
            }
            None => json!({"timestamp": now}),
        }
    }

    /// Runs `change`, then gives notify-next messages for the things whose next execution
    /// changed.
    fn tracking<T>(
        &mut self,
        things: &[String],
        now: u64,
        render: DocRenderer<'_>,
        change: impl FnOnce(&mut Self) -> T,
    ) -> (T, Vec<NotifyNext>) {
        let before: Vec<_> = things.iter().map(|t| self.next_id(t)).collect();
        let out = change(self);
        let notify = things
            .iter()
            .zip(before)
            .filter(|(t, b)| self.next_id(t) != *b)
            .map(|(t, _)| (t.clone(), self.notify_payload(t, now, render)))
            .collect();
        (out, notify)
    }

    /// Creates a job with one QUEUED execution per target (duplicates dropped).
    pub fn create(
        &mut self,
        job_id: &str,
        document: Json,
        targets: &[String],
        now: u64,
        render: DocRenderer<'_>,
    ) -> Result<Vec<NotifyNext>, AdminError> {
        if job_id.is_empty()
            || job_id.len() > 64
            || !job_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(AdminError::Invalid(format!(
                "job id '{job_id}' must be 1-64 characters of [a-zA-Z0-9_-]"
            )));
        }
        if self.jobs.contains_key(job_id) {
            return Err(AdminError::AlreadyExists(job_id.into()));
        }
        let mut things: Vec<String> = Vec::new();
        for t in targets {
            ota_core::wire::topic::validate_thing_name(t)
                .map_err(|_| AdminError::Invalid(format!("invalid thing name '{t}'")))?;
            if !things.contains(t) {
                things.push(t.clone());
            }
        }
        if things.is_empty() {
            return Err(AdminError::Invalid(
                "a job needs at least one target".into(),
            ));
        }
        let job = Job {
            job_id: job_id.into(),
            document,
            targets: things.clone(),
            state: JobState::InProgress,
            created_at: now,
        };
        let ((), notify) = self.tracking(&things, now, render, |s| {
            for t in &things {
                s.seq += 1;
                s.executions.insert(
                    (t.clone(), job_id.into()),
                    Execution {
                        job_id: job_id.into(),
                        thing: t.clone(),
                        status: ExecStatus::Queued,
                        status_details: BTreeMap::new(),
                        queued_at: now,
                        started_at: None,
                        last_updated_at: now,
                        version_number: 1,
                        execution_number: 1,
                        step_deadline: None,
                        seq: s.seq,
                    },
                );
            }
            s.jobs.insert(job_id.into(), job);
            s.order.push(job_id.into());
        });
        Ok(notify)
    }

    /// Cancels a job: QUEUED executions become CANCELED, and with `force` IN_PROGRESS ones too
    /// (as `aws iot cancel-job [--force]`).
    pub fn cancel(
        &mut self,
        job_id: &str,
        force: bool,
        now: u64,
        render: DocRenderer<'_>,
    ) -> Result<Vec<NotifyNext>, AdminError> {
        let job = self
            .jobs
            .get(job_id)
            .ok_or_else(|| AdminError::NotFound(job_id.into()))?;
        if job.state == JobState::Completed {
            return Err(AdminError::Invalid(format!(
                "job {job_id} is already completed"
            )));
        }
        let things = job.targets.clone();
        let ((), notify) = self.tracking(&things, now, render, |s| {
            for e in s.executions.values_mut().filter(|e| e.job_id == job_id) {
                if e.status == ExecStatus::Queued || (force && e.status == ExecStatus::InProgress) {
                    e.status = ExecStatus::Canceled;
                    e.last_updated_at = now;
                    e.version_number += 1;
                    e.step_deadline = None;
                }
            }
            if let Some(j) = s.jobs.get_mut(job_id) {
                j.state = JobState::Canceled;
            }
        });
        Ok(notify)
    }

    /// Moves IN_PROGRESS executions whose step timeout passed to TIMED_OUT.
    pub fn tick(&mut self, now: u64, render: DocRenderer<'_>) -> Vec<NotifyNext> {
        let due: Vec<(String, String)> = self
            .executions
            .iter()
            .filter(|(_, e)| {
                e.status == ExecStatus::InProgress && e.step_deadline.is_some_and(|d| now >= d)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let things: Vec<String> = due.iter().map(|(t, _)| t.clone()).collect();
        let ((), notify) = self.tracking(&things, now, render, |s| {
            for k in &due {
                if let Some(e) = s.executions.get_mut(k) {
                    e.status = ExecStatus::TimedOut;
                    e.last_updated_at = now;
                    e.version_number += 1;
                    e.step_deadline = None;
                }
                s.complete_if_done(&k.1);
            }
        });
        notify
    }

    fn complete_if_done(&mut self, job_id: &str) {
        let done = self
            .executions
            .values()
            .filter(|e| e.job_id == job_id)
            .all(|e| e.status.is_terminal());
        if let Some(j) = self.jobs.get_mut(job_id) {
            if done && j.state == JobState::InProgress {
                j.state = JobState::Completed;
            }
        }
    }

    /// Answers `$aws/things/<thing>/jobs/$next/get`.
    pub fn get_next(
        &self,
        thing: &str,
        payload: &[u8],
        now: u64,
        render: DocRenderer<'_>,
    ) -> Reply {
        let req = match parse_request(payload, now) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let token = req.get("clientToken").cloned();
        let include_doc = req
            .get("includeJobDocument")
            .and_then(Json::as_bool)
            .unwrap_or(true);
        let mut m = Map::new();
        if let Some(t) = token {
            m.insert("clientToken".into(), t);
        }
        m.insert("timestamp".into(), json!(now));
        if let Some(e) = self.next_pending(thing) {
            let doc = include_doc
                .then(|| self.jobs.get(&e.job_id).map(|j| render(j, now)))
                .flatten();
            m.insert("execution".into(), self.execution_json(e, doc));
        }
        Reply {
            accepted: true,
            payload: Json::Object(m),
            notify: Vec::new(),
        }
    }

    /// Answers `$aws/things/<thing>/jobs/get` (GetPendingJobExecutions): summaries of the
    /// IN_PROGRESS and QUEUED executions, in the order `$next` would pick them.
    pub fn get_pending(&self, thing: &str, payload: &[u8], now: u64) -> Reply {
        let req = match parse_request(payload, now) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let mut pending: Vec<&Execution> = self
            .executions
            .values()
            .filter(|e| e.thing == thing && !e.status.is_terminal())
            .collect();
        pending.sort_by_key(|e| (e.started_at.unwrap_or(0), e.seq));
        let summary = |e: &&Execution| {
            let mut m = Map::new();
            m.insert("jobId".into(), json!(e.job_id));
            m.insert("queuedAt".into(), json!(e.queued_at));
            if let Some(t) = e.started_at {
                m.insert("startedAt".into(), json!(t));
            }
            m.insert("lastUpdatedAt".into(), json!(e.last_updated_at));
            m.insert("versionNumber".into(), json!(e.version_number));
            m.insert("executionNumber".into(), json!(e.execution_number));
            Json::Object(m)
        };
        let in_progress: Vec<Json> = pending
            .iter()
            .filter(|e| e.status == ExecStatus::InProgress)
            .map(summary)
            .collect();
        let queued: Vec<Json> = pending
            .iter()
            .filter(|e| e.status == ExecStatus::Queued)
            .map(summary)
            .collect();
        let mut m = Map::new();
        m.insert("inProgressJobs".into(), Json::Array(in_progress));
        m.insert("queuedJobs".into(), Json::Array(queued));
        m.insert("timestamp".into(), json!(now));
        if let Some(t) = req.get("clientToken") {
            m.insert("clientToken".into(), t.clone());
        }
        Reply {
            accepted: true,
            payload: Json::Object(m),
            notify: Vec::new(),
        }
    }

    /// Answers `$aws/things/<thing>/jobs/start-next` (StartNextPendingJobExecution): the next
    /// pending execution moves to IN_PROGRESS (with the request's `statusDetails` and
    /// `stepTimeoutInMinutes`) and is returned with its document; `{"timestamp"}` when none.
    pub fn start_next(
        &mut self,
        thing: &str,
        payload: &[u8],
        now: u64,
        render: DocRenderer<'_>,
    ) -> Reply {
        let req = match parse_request(payload, now) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let token = req.get("clientToken").cloned();
        let Some(next) = self.next_pending(thing).map(|e| e.job_id.clone()) else {
            let mut m = Map::new();
            m.insert("timestamp".into(), json!(now));
            if let Some(t) = token {
                m.insert("clientToken".into(), t);
            }
            return Reply {
                accepted: true,
                payload: Json::Object(m),
                notify: Vec::new(),
            };
        };
        let mut body = Map::new();
        body.insert("status".into(), json!("IN_PROGRESS"));
        for k in ["statusDetails", "stepTimeoutInMinutes", "clientToken"] {
            if let Some(v) = req.get(k) {
                body.insert(k.into(), v.clone());
            }
        }
        let bytes = serde_json::to_vec(&Json::Object(body)).unwrap_or_default();
        let r = self.update(thing, &next, &bytes, now, render);
        if !r.accepted {
            return r;
        }
        let doc = self.jobs.get(&next).map(|j| render(j, now));
        let mut m = Map::new();
        if let Some(e) = self.execution(thing, &next) {
            m.insert("execution".into(), self.execution_json(e, doc));
        }
        m.insert("timestamp".into(), json!(now));
        if let Some(t) = token {
            m.insert("clientToken".into(), t);
        }
        Reply {
            accepted: true,
            payload: Json::Object(m),
            notify: r.notify,
        }
    }

    /// Answers `$aws/things/<thing>/jobs/<jobId>/get` (DescribeJobExecution).
    pub fn describe(
        &self,
        thing: &str,
        job_id: &str,
        payload: &[u8],
        now: u64,
        render: DocRenderer<'_>,
    ) -> Reply {
        let req = match parse_request(payload, now) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let token = req.get("clientToken").cloned();
        let Some(e) = self.execution(thing, job_id) else {
            return rejected(
                JobsErrorCode::ResourceNotFound,
                &format!("Job execution {job_id} for thing {thing} not found"),
                token,
                None,
                now,
            );
        };
        let include_doc = req
            .get("includeJobDocument")
            .and_then(Json::as_bool)
            .unwrap_or(true);
        let doc = include_doc
            .then(|| self.jobs.get(job_id).map(|j| render(j, now)))
            .flatten();
        let mut m = Map::new();
        m.insert("execution".into(), self.execution_json(e, doc));
        m.insert("timestamp".into(), json!(now));
        if let Some(t) = token {
            m.insert("clientToken".into(), t);
        }
        Reply {
            accepted: true,
            payload: Json::Object(m),
            notify: Vec::new(),
        }
    }

    /// Answers `$aws/things/<thing>/jobs/<jobId>/update` (UpdateJobExecution).
    pub fn update(
        &mut self,
        thing: &str,
        job_id: &str,
        payload: &[u8],
        now: u64,
        render: DocRenderer<'_>,
    ) -> Reply {
        let req = match parse_request(payload, now) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let token = req.get("clientToken").cloned();
        let key = (thing.to_string(), job_id.to_string());
        let reject = |code: JobsErrorCode, msg: String, state: Option<&Execution>| {
            rejected(code, &msg, token.clone(), state, now)
        };
        let Some(exec) = self.executions.get(&key) else {
            return reject(
                JobsErrorCode::ResourceNotFound,
                format!("Job execution {job_id} for thing {thing} not found"),
                None,
            );
        };
        if let Some(n) = req.get("executionNumber") {
            if n.as_u64() != Some(exec.execution_number) {
                return reject(
                    JobsErrorCode::ResourceNotFound,
                    format!("Job execution number {n} of {job_id} for thing {thing} not found"),
                    None,
                );
            }
        }
        let status = match req.get("status") {
            None => {
                return reject(
                    JobsErrorCode::InvalidRequest,
                    "Missing required field 'status'".into(),
                    None,
                )
            }
            Some(Json::String(s)) => match ExecStatus::parse(s) {
                Some(st) => st,
                None => {
                    return reject(
                        JobsErrorCode::InvalidRequest,
                        format!("Invalid status '{s}'"),
                        None,
                    )
                }
            },
            Some(_) => {
                return reject(
                    JobsErrorCode::InvalidRequest,
                    "Field 'status' must be a string".into(),
                    None,
                )
            }
        };
        let details = match req.get("statusDetails") {
            None => None,
            Some(d) => match parse_status_details(d) {
                Ok(m) => Some(m),
                Err(why) => return reject(JobsErrorCode::InvalidRequest, why, None),
            },
        };
        let step_timeout = match req.get("stepTimeoutInMinutes") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(m) if (1..=10080).contains(&m) => Some(m),
                _ => {
                    return reject(
                        JobsErrorCode::InvalidRequest,
                        "stepTimeoutInMinutes must be 1..=10080".into(),
                        None,
                    )
                }
            },
        };
        if let Some(v) = req.get("expectedVersion") {
            let expected = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
            if expected != Some(exec.version_number) {
                return reject(
                    JobsErrorCode::VersionMismatch,
                    format!(
                        "Expected version {v} does not match version {}",
                        exec.version_number
                    ),
                    Some(exec),
                );
            }
        }
        if exec.status.is_terminal() {
            return reject(
                JobsErrorCode::TerminalStateReached,
                format!(
                    "Job execution {job_id} for thing {thing} is in terminal state {}",
                    exec.status.as_str()
                ),
                Some(exec),
            );
        }
        if !status.device_settable() {
            return reject(
                JobsErrorCode::InvalidStateTransition,
                format!(
                    "Cannot update job execution from {} to {}",
                    exec.status.as_str(),
                    status.as_str()
                ),
                Some(exec),
            );
        }
        let include_doc = req
            .get("includeJobDocument")
            .and_then(Json::as_bool)
            .unwrap_or(false);
        let things = [thing.to_string()];
        let (state, notify) = self.tracking(&things, now, render, |s| {
            let Some(e) = s.executions.get_mut(&key) else {
                return Json::Null;
            };
            if status == ExecStatus::InProgress && e.started_at.is_none() {
                e.started_at = Some(now);
            }
            e.status = status;
            if let Some(d) = details {
                e.status_details = d;
            }
            e.step_deadline = match (status, step_timeout) {
                (ExecStatus::InProgress, Some(m)) => Some(now + m * 60),
                (ExecStatus::InProgress, None) => e.step_deadline,
                _ => None,
            };
            e.last_updated_at = now;
            e.version_number += 1;
            let state = json!({
                "status": e.status.as_str(),
                "statusDetails": e.status_details,
                "versionNumber": e.version_number,
            });
            s.complete_if_done(job_id);
            state
        });
        let mut m = Map::new();
        m.insert("executionState".into(), state);
        if include_doc {
            if let Some(j) = self.jobs.get(job_id) {
                m.insert("jobDocument".into(), render(j, now));
            }
        }
        m.insert("timestamp".into(), json!(now));
        if let Some(t) = token {
            m.insert("clientToken".into(), t);
        }
        Reply {
            accepted: true,
            payload: Json::Object(m),
            notify,
        }
    }

    /// The same as [`Jobs::get_next`] with the stored documents as they are.
    pub fn get_next_plain(&self, thing: &str, payload: &[u8], now: u64) -> Reply {
        self.get_next(thing, payload, now, &plain)
    }

    /// The same as [`Jobs::update`] with the stored documents as they are.
    pub fn update_plain(&mut self, thing: &str, job_id: &str, payload: &[u8], now: u64) -> Reply {
        self.update(thing, job_id, payload, now, &plain)
    }
}

/// Parses a request payload as a JSON object (an empty payload counts as `{}`) and checks the
/// client token; gives the rejected reply otherwise.
fn parse_request(payload: &[u8], now: u64) -> Result<Map<String, Json>, Reply> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let v: Json = serde_json::from_slice(payload).map_err(|e| {
        rejected(
            JobsErrorCode::InvalidJson,
            &format!("Payload is not valid JSON: {e}"),
            None,
            None,
            now,
        )
    })?;
    let Json::Object(m) = v else {
        return Err(rejected(
            JobsErrorCode::InvalidJson,
            "Payload is not a JSON object",
            None,
            None,
            now,
        ));
    };
    match m.get("clientToken") {
        None => {}
        Some(Json::String(t)) if t.len() <= MAX_CLIENT_TOKEN => {}
        Some(t) => {
            return Err(rejected(
                JobsErrorCode::InvalidRequest,
                "clientToken must be a string of at most 64 bytes",
                t.is_string().then(|| t.clone()),
                None,
                now,
            ))
        }
    }
    Ok(m)
}

/// Checks a `statusDetails` value against the AWS API reference: string to string, keys 1–128 characters of
/// `[a-zA-Z0-9:_-]`, values 1–1024 characters without control characters.
pub fn parse_status_details(d: &Json) -> Result<BTreeMap<String, String>, String> {
    let Json::Object(o) = d else {
        return Err("statusDetails must be an object".into());
    };
    let mut out = BTreeMap::new();
    for (k, v) in o {
        if k.is_empty()
            || k.len() > 128
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_-".contains(&b))
        {
            return Err(format!(
                "statusDetails key '{k}' is not [a-zA-Z0-9:_-]{{1,128}}"
            ));
        }
        let Json::String(s) = v else {
            return Err(format!("statusDetails value of '{k}' must be a string"));
        };
        if s.is_empty() || s.chars().count() > 1024 || s.chars().any(char::is_control) {
            return Err(format!(
                "statusDetails value of '{k}' must be 1-1024 characters without control characters"
            ));
        }
        out.insert(k.clone(), s.clone());
    }
    Ok(out)
}

fn rejected(
    code: JobsErrorCode,
    msg: &str,
    token: Option<Json>,
    state: Option<&Execution>,
    now: u64,
) -> Reply {
    let mut m = Map::new();
    m.insert("code".into(), json!(code.as_str()));
    m.insert("message".into(), json!(msg));
    if let Some(t) = token {
        m.insert("clientToken".into(), t);
    }
    m.insert("timestamp".into(), json!(now));
    if let Some(e) = state {
        m.insert(
            "executionState".into(),
            json!({
                "status": e.status.as_str(),
                "statusDetails": e.status_details,
                "versionNumber": e.version_number,
            }),
        );
    }
    Reply {
        accepted: false,
        payload: Json::Object(m),
        notify: Vec::new(),
    }
}
