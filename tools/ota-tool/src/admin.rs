//! The loopback admin API of `ota serve` (JSON over HTTP, bearer token from `server.json`) and
//! its client, used by `ota job ...`.
//!
//! | Method and path | Body | Answer |
//! |---|---|---|
//! | `GET /jobs` | | summaries |
//! | `GET /jobs/<jobId>` | | job, document, executions |
//! | `POST /jobs` | [`OtaUpdate`] | `{"jobId"}` (201) |
//! | `POST /jobs/<jobId>/cancel` | `{"force":bool}` | `{"jobId","status"}` |
//! | `GET /groups` | | `{"<group>":["thing",...]}` |
//! | `PUT /groups/<name>` | `["thing",...]` | the group |

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value as Json};

use crate::cloud::jobs::AdminError;
use crate::cloud::{Cloud, OtaUpdate};
use crate::http::{self, Request, Response};
use crate::serve::{Clock, Publisher, ServerInfo, SERVER_FILE};

fn error(e: &AdminError) -> Response {
    let status = match e {
        AdminError::AlreadyExists(_) => 409,
        AdminError::NotFound(_) => 404,
        AdminError::Invalid(_) => 400,
    };
    Response::json(status, &json!({"error": e.to_string()}))
}

fn bad(msg: impl std::fmt::Display) -> Response {
    Response::json(400, &json!({"error": msg.to_string()}))
}

/// Answers one admin request.
pub fn handle(
    cloud: &Mutex<Cloud>,
    publisher: &Publisher,
    now: u64,
    token: &str,
    req: &Request,
) -> Response {
    let authorised = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| t == token);
    if !authorised {
        return Response::json(401, &json!({"error": "missing or wrong admin token"}));
    }
    let path = req.target.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut c = cloud
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["jobs"]) => Response::json(200, &c.list_json()),
        ("GET", ["jobs", id]) => match c.show_json(id, now) {
            Some(j) => Response::json(200, &j),
            None => error(&AdminError::NotFound((*id).into())),
        },
        ("POST", ["jobs"]) => {
            let update: OtaUpdate = match serde_json::from_slice(&req.body) {
                Ok(u) => u,
                Err(e) => return bad(format!("bad OTA update request: {e}")),
            };
            match c.create_ota_update(update, now) {
                Ok((job_id, out)) => {
                    publisher.send(out);
                    Response::json(201, &json!({ "jobId": job_id }))
                }
                Err(e) => error(&e),
            }
        }
        ("POST", ["jobs", id, "cancel"]) => {
            let force = serde_json::from_slice::<Json>(&req.body)
                .ok()
                .and_then(|v| v["force"].as_bool())
                .unwrap_or(false);
            match c.cancel_job(id, force, now) {
                Ok(out) => {
                    publisher.send(out);
                    let status = c.jobs.job(id).map(|j| j.state.as_str());
                    Response::json(200, &json!({"jobId": id, "status": status}))
                }
                Err(e) => error(&e),
            }
        }
        ("GET", ["groups"]) => Response::json(200, &json!(c.groups)),
        ("PUT", ["groups", name]) => {
            let things: Vec<String> = match serde_json::from_slice(&req.body) {
                Ok(t) => t,
                Err(e) => return bad(format!("a group is a JSON array of thing names: {e}")),
            };
            for t in &things {
                if ota_core::wire::topic::validate_thing_name(t).is_err() {
                    return bad(format!("invalid thing name '{t}'"));
                }
            }
            c.groups.insert((*name).to_string(), things.clone());
            Response::json(200, &json!({ *name: things }))
        }
        _ => Response::json(
            404,
            &json!({"error": format!("no route {} {path}", req.method)}),
        ),
    }
}

/// The admin request handler for [`http::serve`].
pub fn handler(
    cloud: Arc<Mutex<Cloud>>,
    publisher: Publisher,
    clock: Clock,
    token: String,
) -> http::Handler {
    Arc::new(move |req| {
        let resp = handle(&cloud, &publisher, clock(), &token, &req);
        Box::pin(async move { resp })
    })
}

/// A client of the admin API.
#[derive(Clone, Debug)]
pub struct AdminClient {
    /// `host:port`.
    pub addr: String,
    /// Bearer token.
    pub token: String,
}

impl AdminClient {
    /// Reads `<state>/server.json` written by `ota serve`.
    pub fn from_state(dir: &Path) -> Result<Self> {
        let path = dir.join(SERVER_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (start `ota serve --state {}` first)",
                path.display(),
                dir.display()
            )
        })?;
        let info: ServerInfo =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(Self {
            addr: info.admin,
            token: info.admin_token,
        })
    }

    /// One call; a non-2xx answer becomes an error carrying the server's message.
    pub fn call(&self, method: &str, path: &str, body: Option<&Json>) -> Result<Json> {
        let auth = format!("Bearer {}", self.token);
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()?
            .unwrap_or_default();
        let (status, _, resp) = http::request_blocking(
            &self.addr,
            method,
            path,
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            &bytes,
        )?;
        let v: Json = serde_json::from_slice(&resp).unwrap_or(Json::Null);
        if !(200..300).contains(&status) {
            let msg = v["error"].as_str().unwrap_or("no message");
            bail!("admin API answered {status}: {msg}");
        }
        Ok(v)
    }
}
