//! The server's one error table: every failure a client can see is an [`ApiError`], which
//! maps to exactly one HTTP status and one stable JSON `code`.
//!
//! Every error body has the same shape: `{"error": {"code": "...", "message": "..."}}`.
//! Extractor failures (malformed JSON, wrong types, unknown fields, bad path or query
//! parameters, oversized bodies) are converted here too, through [`json_config`],
//! [`path_config`] and [`query_config`], so no actix default error body ever reaches a
//! client.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};
use gauntlet_attacks::AttackError;
use serde::Serialize;

/// Every error the API answers with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// A request that is well-formed JSON but asks for something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not valid JSON for this route (syntax, types, unknown fields, UTF-8).
    #[error("{0}")]
    InvalidJson(String),
    /// A query parameter is missing, malformed or unknown.
    #[error("{0}")]
    InvalidQuery(String),
    /// A path parameter is malformed.
    #[error("{0}")]
    InvalidPath(String),
    /// A model or dataset name that could escape its directory or is otherwise illegal.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// `model` or `dataset`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The attack configuration or an example is invalid.
    #[error("{0}")]
    InvalidAttack(String),
    /// A request exceeds a configured ceiling (beam width, budget, batch size, page size).
    #[error("{0}")]
    LimitExceeded(String),
    /// A dataset file could not be read or resolved against the model's labels.
    #[error("{0}")]
    InvalidDataset(String),
    /// Missing or wrong API key.
    #[error("missing or invalid API key: send `Authorization: Bearer <key>`")]
    Unauthorized,
    /// No such model (loaded, or in the models directory).
    #[error("{0}")]
    ModelNotFound(String),
    /// No such audit job.
    #[error("no audit with id {0}")]
    AuditNotFound(String),
    /// No such dataset file in the data directory.
    #[error("no dataset named {0:?} in the data directory's datasets folder")]
    DatasetNotFound(String),
    /// No route at this path.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The route exists but not with this method.
    #[error("{message}")]
    MethodNotAllowed {
        /// What was asked and what is allowed.
        message: String,
        /// The resource's methods, for the `Allow` header.
        allow: &'static str,
    },
    /// The resource is in a state that forbids the request.
    #[error("{0}")]
    Conflict(String),
    /// The body, a text, or the number of texts is over its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// An audit plan whose settings are each valid but contradict each other.
    #[error("{0}")]
    InvalidPlan(String),
    /// A label (of an example, or an attack's target) that the model does not have.
    #[error("{0}")]
    InvalidLabel(String),
    /// The attack does not fit the model (e.g. a character attack on a word model).
    #[error("{0}")]
    AttackIncompatible(String),
    /// A bundle exists but cannot be loaded.
    #[error("{0}")]
    ModelInvalid(String),
    /// The audit queue is full.
    #[error("the audit queue is full ({0} jobs queued); retry later")]
    QueueFull(usize),
    /// A model's predict queue is full (`batching.queue_capacity` requests wait).
    #[error("the model's predict queue is full ({0} requests queued, batching.queue_capacity); retry later")]
    PredictQueueFull(usize),
    /// The synchronous attack ran past the per-request time limit.
    #[error("the attack exceeded the per-request time limit of {0} ms; submit long runs as audits (POST /v1/audits)")]
    Timeout(u64),
    /// The server cannot serve yet (no model loaded, workers down).
    #[error("{0}")]
    NotReady(String),
    /// The server is draining after SIGTERM or SIGINT: no new audits.
    #[error("the server is shutting down and accepts no new audits; retry on another instance or after the restart")]
    ShuttingDown,
    /// The job store has no space left: nothing was acknowledged.
    #[error("{0}")]
    StorageFull(String),
    /// The job store cannot be written (read-only, permissions, I/O errors): nothing was
    /// acknowledged.
    #[error("{0}")]
    StorageUnavailable(String),
    /// The client did not send its request in time (`server.request_timeout_ms`).
    #[error("{0}")]
    RequestTimeout(String),
    /// A bug or an I/O failure on the server.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One row of the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorKind {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
}

impl ApiError {
    /// The status and code of this error: the one error table.
    pub fn kind(&self) -> ErrorKind {
        use StatusCode as S;
        let (status, code) = match self {
            Self::BadRequest(_) => (S::BAD_REQUEST, "bad_request"),
            Self::InvalidJson(_) => (S::BAD_REQUEST, "invalid_json"),
            Self::InvalidQuery(_) => (S::BAD_REQUEST, "invalid_query"),
            Self::InvalidPath(_) => (S::BAD_REQUEST, "invalid_path"),
            Self::InvalidName { .. } => (S::BAD_REQUEST, "invalid_name"),
            Self::InvalidAttack(_) => (S::BAD_REQUEST, "invalid_attack"),
            Self::LimitExceeded(_) => (S::BAD_REQUEST, "limit_exceeded"),
            Self::InvalidDataset(_) => (S::BAD_REQUEST, "invalid_dataset"),
            Self::Unauthorized => (S::UNAUTHORIZED, "unauthorized"),
            Self::ModelNotFound(_) => (S::NOT_FOUND, "model_not_found"),
            Self::AuditNotFound(_) => (S::NOT_FOUND, "audit_not_found"),
            Self::DatasetNotFound(_) => (S::NOT_FOUND, "dataset_not_found"),
            Self::RouteNotFound(_) => (S::NOT_FOUND, "route_not_found"),
            Self::MethodNotAllowed { .. } => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (S::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::AttackIncompatible(_) => (S::UNPROCESSABLE_ENTITY, "attack_incompatible"),
            Self::InvalidLabel(_) => (S::UNPROCESSABLE_ENTITY, "invalid_label"),
            Self::InvalidPlan(_) => (S::UNPROCESSABLE_ENTITY, "invalid_plan"),
            Self::ModelInvalid(_) => (S::UNPROCESSABLE_ENTITY, "model_invalid"),
            Self::QueueFull(_) | Self::PredictQueueFull(_) => (S::TOO_MANY_REQUESTS, "queue_full"),
            Self::Timeout(_) => (S::GATEWAY_TIMEOUT, "attack_timeout"),
            Self::NotReady(_) => (S::SERVICE_UNAVAILABLE, "not_ready"),
            Self::ShuttingDown => (S::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::StorageFull(_) => (S::INSUFFICIENT_STORAGE, "storage_full"),
            Self::StorageUnavailable(_) => (S::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Self::RequestTimeout(_) => (S::REQUEST_TIMEOUT, "request_timeout"),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        ErrorKind { status, code }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().status
    }

    fn error_response(&self) -> HttpResponse {
        let kind = self.kind();
        let mut response = HttpResponse::build(kind.status);
        if matches!(self, Self::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        match self {
            Self::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, *allow));
            }
            Self::QueueFull(_) | Self::ShuttingDown | Self::StorageUnavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            Self::StorageFull(_) => {
                response.insert_header((header::RETRY_AFTER, "60"));
            }
            // The rest of a trickled body is not worth reading.
            Self::RequestTimeout(_) => {
                response.force_close();
            }
            // Predict queues drain in milliseconds.
            Self::PredictQueueFull(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: kind.code,
                message: self.to_string(),
            },
        })
    }
}

impl From<AttackError> for ApiError {
    fn from(err: AttackError) -> Self {
        match err {
            AttackError::Incompatible { .. }
            | AttackError::NeedsGradients(_)
            | AttackError::GradientsUnavailable { .. }
            | AttackError::MissingLexicon => Self::AttackIncompatible(err.to_string()),
            // Settings that are valid on their own but name a class the model lacks, or do
            // not apply to this attack on this model.
            AttackError::InvalidConfig {
                field: "target_label" | "target",
                ..
            } => Self::InvalidLabel(err.to_string()),
            AttackError::InvalidConfig {
                field: "char_edits" | "model",
                ..
            } => Self::AttackIncompatible(err.to_string()),
            AttackError::InvalidConfig { .. }
            | AttackError::InvalidExample { .. }
            | AttackError::Encode { .. } => Self::InvalidAttack(err.to_string()),
            AttackError::Model(_) | AttackError::Lexicon { .. } | AttackError::Render(_) => {
                Self::Internal(err.to_string())
            }
        }
    }
}

impl ApiError {
    /// A failed write of the job store, by cause: no space is 507 `storage_full`, anything
    /// else (read-only, permissions, I/O) 503 `storage_unavailable`.
    pub fn storage(what: &str, err: &std::io::Error) -> Self {
        let message = format!("{what}: the job store cannot be written ({err})");
        if err.kind() == std::io::ErrorKind::StorageFull
            || err.raw_os_error() == Some(28)
            || err.kind() == std::io::ErrorKind::QuotaExceeded
        {
            Self::StorageFull(message)
        } else {
            Self::StorageUnavailable(message)
        }
    }
}

impl From<JsonPayloadError> for ApiError {
    fn from(err: JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::Payload(actix_web::error::PayloadError::Io(e))
                if e.kind() == std::io::ErrorKind::TimedOut =>
            {
                Self::RequestTimeout(format!("{e}"))
            }
            JsonPayloadError::Overflow { limit } => Self::PayloadTooLarge(format!(
                "the request body exceeds the limit of {limit} bytes (limits.max_body_bytes)"
            )),
            JsonPayloadError::OverflowKnownLength { length, limit } => {
                Self::PayloadTooLarge(format!(
                "the request body of {length} bytes exceeds the limit of {limit} bytes (limits.max_body_bytes)"
            ))
            }
            JsonPayloadError::Deserialize(e) => {
                Self::InvalidJson(format!("invalid JSON body: {e}"))
            }
            other => Self::InvalidJson(format!("invalid JSON body: {other}")),
        }
    }
}

/// The JSON extractor configuration: body limit and errors through the table.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(|err, _req| ApiError::from(err).into())
}

/// The path extractor configuration: malformed path parameters through the table.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        ApiError::InvalidPath(format!("invalid path parameter: {err}")).into()
    })
}

/// The query extractor configuration: malformed or unknown parameters through the table.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        ApiError::InvalidQuery(format!("invalid query string: {err}")).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_distinct_per_variant_family() {
        let e = ApiError::QueueFull(3);
        assert_eq!(e.kind().status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.kind().code, "queue_full");
        let e = ApiError::PredictQueueFull(3).error_response();
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(
            ApiError::Unauthorized.error_response().status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
