//! The single entry point of every request: request id, routing, auth,
//! role, parameters, handler, envelope, metrics and logs.

use std::time::{Duration, Instant};

use actix_web::http::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use actix_web::http::{Method as HttpMethod, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::answer::Answer;
use super::auth::{attempted_login, AuthFailure};
use super::body::{read_body_within, BodyDeadlines};
use super::catalogue::{keeps_status_when_business_errors_as_200, status_of};
use super::context::{AppState, Ctx};
use super::error::ApiError;
use super::params::Params;
use super::router::{Match, Router};
use super::routes::{ParamsFn, Route, Serve, StreamFn};
use super::views::Fields;
use super::{log_redact, till_token};
use crate::domain::{policy::may_call, Actor, ErrorKey};
use crate::metrics as m;
use crate::tls::ClientCert;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the logs and metrics need to know about a handled request.
struct Outcome {
    response: HttpResponse,
    login: Option<String>,
    error: Option<ApiError>,
    request_body: Option<web::Bytes>,
    response_body: Option<String>,
    /// Why the credentials were refused, for the security log.
    auth_failure: Option<&'static str>,
}

pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id(&req);
    let method = method_label(req.method());
    let (template, outcome) = match Router::shared().find(req.method(), req.path()) {
        Match::Found(route, captures) => (
            route.template,
            handle(&state, route, captures, &req, payload).await,
        ),
        Match::NotFound => {
            let error = ApiError::new(
                ErrorKey::NotFound,
                format!("no route {} {}", req.method(), req.path()),
            );
            let guarded = is_api_path(req.path());
            ("unmatched", refuse(&state, &req, guarded, error).await)
        }
        Match::WrongMethod(route, allowed) => {
            let allow = allowed
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let error = ApiError::new(
                ErrorKey::MethodNotAllowed,
                format!(
                    "{} does not answer {}; it answers {allow}",
                    route.template,
                    req.method()
                ),
            )
            .allow(allowed.iter().map(|m| m.as_str()));
            let guarded = route.permission().is_some();
            (route.template, refuse(&state, &req, guarded, error).await)
        }
    };
    let Outcome {
        mut response,
        login,
        error,
        request_body,
        response_body,
        auth_failure,
    } = outcome;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let status = response.status().as_u16();
    m::http_request(template, method, status, started.elapsed().as_secs_f64());
    let login = login.as_deref().unwrap_or("-");
    if let Some(e) = &error {
        m::error(e.key.as_str());
        let client = req
            .peer_addr()
            .map_or_else(|| "-".to_owned(), |a| a.ip().to_string());
        // Integration errors are always logged; the message never carries
        // credentials (they are not part of any error text).
        if let Some(reason) = auth_failure {
            // The security log: who tried, from where and why it failed, so
            // that credential stuffing or a misconfigured till can be
            // found. `login` is the attempted one; never the password.
            // Rate-limited: a flood of failures must not cost a line each.
            if let Some(left_out) = state.auth.log_failure() {
                let forwarded_for = forwarded_for(&req);
                tracing::warn!(%request_id, route = template, method, login, reason, client, forwarded_for, key = e.key.as_str(), status, left_out, "authentication failed");
            }
        } else if status >= 500 {
            tracing::error!(%request_id, route = template, method, login, client, key = e.key.as_str(), status, message = %e.message, "request failed");
        } else {
            // Not the message: a refusal's message echoes what the caller
            // sent (a mobile number, a mistyped field); the key says why.
            tracing::warn!(%request_id, route = template, method, login, client, key = e.key.as_str(), status, "request refused");
        }
    }
    if state.settings.log.requests {
        let body = request_body
            .as_deref()
            .map(log_redact::body)
            .unwrap_or_default();
        let response = response_body
            .as_deref()
            .map(|b| log_redact::body(b.as_bytes()))
            .unwrap_or_default();
        tracing::info!(
            %request_id, method, path = %log_redact::path(req.path()),
            query = %log_redact::query(req.query_string()), login, status,
            request = %body, response = %response, "request"
        );
    }
    response
}

async fn handle(
    state: &AppState,
    route: &Route,
    captures: Vec<String>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Outcome {
    let (permission, handler) = match route.serve {
        Serve::Open {
            bearer_token,
            handler,
        } => {
            if bearer_token {
                if let Some(refused) = metrics_refused(state, req) {
                    return refused;
                }
            }
            return answered(state, handler(state).await);
        }
        Serve::Params {
            permission,
            handler,
        } => (permission, Guarded::Params(handler)),
        Serve::Stream {
            permission,
            handler,
        } => (permission, Guarded::Stream(handler)),
    };

    let actor = match authenticate(state, req).await {
        Ok(actor) => actor,
        Err(refused) => return refused,
    };
    if !may_call(actor.role, permission) {
        let message = format!(
            "the role {} may not call {}",
            actor.role.as_str(),
            route.template
        );
        return with_login(
            render(state, Err(ApiError::new(ErrorKey::Forbidden, message))),
            &actor.login,
        );
    }
    let login = actor.login.clone();
    let outcome = match handler {
        Guarded::Params(handler) => {
            serve_params(state, handler, actor, captures, req, payload).await
        }
        Guarded::Stream(handler) => {
            // The bulk routes read their body themselves, as a stream: only
            // the query string is read here.
            match params_of(req, None) {
                Ok(params) => {
                    let ctx = Ctx {
                        state,
                        actor,
                        params,
                        captures,
                    };
                    answered(state, handler(&ctx, req, payload).await)
                }
                Err(e) => render(state, Err(e)),
            }
        }
    };
    with_login(outcome, &login)
}

/// A route answered from its parameters: the query string and, for a POST,
/// the JSON body, read here within its size and deadlines.
async fn serve_params(
    state: &AppState,
    handler: ParamsFn,
    actor: Actor,
    captures: Vec<String>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Outcome {
    let body = if req.method() == HttpMethod::POST {
        let http = &state.settings.http;
        let deadlines = BodyDeadlines {
            total: Duration::from_millis(http.request_body_timeout_ms),
            idle: Duration::from_millis(http.read_idle_timeout_ms),
        };
        match read_body_within(req, payload, http.max_body_bytes, Some(deadlines)).await {
            Ok(b) => Some(b),
            Err(e) => return render(state, Err(e)),
        }
    } else {
        None
    };
    let params = match params_of(req, body.as_deref()) {
        Ok(p) => p,
        Err(e) => return render(state, Err(e)),
    };
    let ctx = Ctx {
        state,
        actor,
        params,
        captures,
    };
    let mut outcome = answered(state, handler(&ctx).await);
    outcome.request_body = body;
    outcome
}

/// The handler of a route that needs credentials.
enum Guarded {
    Params(ParamsFn),
    Stream(StreamFn),
}

/// A handler's answer as the dispatcher sends it.
fn answered(state: &AppState, answer: Result<Answer, ApiError>) -> Outcome {
    match answer {
        Ok(Answer::Fields(fields)) => render(state, Ok(fields)),
        Ok(Answer::Response(response)) => Outcome {
            response,
            login: None,
            error: None,
            request_body: None,
            response_body: None,
            auth_failure: None,
        },
        Err(e) => render(state, Err(e)),
    }
}

/// HTTP Basic credentials, or the answer that refuses them (401, or 429
/// while the login is throttled) with the attempted login for the log.
async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Actor, Outcome> {
    // A till's verified TLS client certificate, when it maps to a user,
    // stands in for HTTP Basic.
    if let Some(actor) = req
        .conn_data::<ClientCert>()
        .and_then(ClientCert::cn)
        .and_then(|cn| state.auth.authenticate_client_cert(cn))
    {
        return Ok(actor);
    }
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let peer = req.peer_addr().map(|a| a.ip());
    let failure = match state.auth.authenticate(header, peer).await {
        Ok(actor) => return Ok(actor),
        Err(failure) => failure,
    };
    let error = match failure {
        AuthFailure::Throttled(secs) => ApiError::new(
            ErrorKey::RateLimited,
            "too many login attempts from this address; retry later",
        )
        .retry_after(secs),
        AuthFailure::Busy(secs) => ApiError::new(
            ErrorKey::Overloaded,
            "too many password verifications waiting; retry later",
        )
        .retry_after(secs),
        AuthFailure::Missing => ApiError::new(
            ErrorKey::Unauthorized,
            "credentials are required (HTTP Basic)",
        ),
        AuthFailure::Malformed => ApiError::new(
            ErrorKey::Unauthorized,
            "the Authorization header is not valid HTTP Basic",
        ),
        AuthFailure::UnknownUser | AuthFailure::WrongPassword => {
            ApiError::new(ErrorKey::Unauthorized, "wrong login or password")
        }
    };
    let mut outcome = render(state, Err(error));
    // Only a login that exists: an unknown one is often a password typed
    // into the login field.
    outcome.login = attempted_login(header).map(|login| {
        if state.auth.users().get(&login).is_some() {
            login
        } else {
            "(unknown)".to_owned()
        }
    });
    outcome.auth_failure = Some(failure.reason());
    Err(outcome)
}

/// `/metrics` is anonymous unless `metrics.bearer_token_sha256` is set;
/// then only a scrape that sends the token (`Authorization: Bearer`) reads
/// it: the answer refusing any other.
fn metrics_refused(state: &AppState, req: &HttpRequest) -> Option<Outcome> {
    // Checked at start: a value that does not parse never gets here.
    let stored = till_token::parse_hex_digest(&state.settings.metrics.bearer_token_sha256)?;
    let sent = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if sent.is_some_and(|token| till_token::verify(token.trim(), &stored)) {
        return None;
    }
    let mut refused = render(
        state,
        Err(ApiError::new(
            ErrorKey::Unauthorized,
            "/metrics needs its bearer token (metrics.bearer_token_sha256)",
        )),
    );
    refused.auth_failure = Some("metrics_token");
    Some(refused)
}

/// An unknown path or a wrong method. Under `/api` that is told only to
/// callers with valid credentials (docs/api.md §2): routes cannot be probed
/// anonymously.
async fn refuse(state: &AppState, req: &HttpRequest, guarded: bool, error: ApiError) -> Outcome {
    if !guarded {
        return render(state, Err(error));
    }
    match authenticate(state, req).await {
        Ok(actor) => with_login(render(state, Err(error)), &actor.login),
        Err(refused) => refused,
    }
}

/// `/api` and everything under it, in any case (routes match so), however
/// the path is spelled to slip past that: `//api/x`, `/./api/x`, or an
/// escaped first segment (`/%61pi/x`, answered as guarded whatever it
/// decodes to).
fn is_api_path(path: &str) -> bool {
    let first = path.split('/').find(|s| !s.is_empty() && *s != ".");
    first.is_some_and(|s| s.eq_ignore_ascii_case("api") || s.contains('%'))
}

/// A proxy's `X-Forwarded-For`, for the security log only (the caller can
/// set it to anything): printable, and cut to a sane length.
fn forwarded_for(req: &HttpRequest) -> String {
    req.headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || "-".to_owned(),
            |v| v.chars().take(128).flat_map(char::escape_default).collect(),
        )
}

fn params_of(req: &HttpRequest, body: Option<&[u8]>) -> Result<Params, ApiError> {
    let query = Params::from_query(req.query_string())?;
    match body {
        Some(body) => Ok(Params::from_json(body)?.merge(query)),
        None => Ok(query),
    }
}

fn with_login(mut outcome: Outcome, login: &str) -> Outcome {
    outcome.login = Some(login.to_owned());
    outcome
}

/// Builds the envelope: `Status`, `Key`, `Value` first, then the fields.
fn render(state: &AppState, result: Result<Fields, ApiError>) -> Outcome {
    let (status, key, value, fields, error) = match result {
        Ok(fields) => (StatusCode::OK, "OK", String::new(), fields, None),
        Err(e) => (
            status_of(e.key),
            e.key.as_str(),
            e.message.clone(),
            e.fields.clone(),
            Some(e),
        ),
    };
    let mut body = Map::new();
    body.insert("Status".into(), Value::Bool(error.is_none()));
    body.insert("Key".into(), Value::String(key.into()));
    body.insert("Value".into(), Value::String(value));
    body.extend(fields);
    let text = Value::Object(body).to_string();

    let wire_status = if error.is_some()
        && state.settings.http.business_errors_as_200
        && !keeps_status_when_business_errors_as_200(status)
    {
        StatusCode::OK
    } else {
        status
    };
    let mut builder = HttpResponse::build(wire_status);
    builder.content_type("application/json");
    if let Some(secs) = error.as_ref().and_then(|e| e.retry_after_secs) {
        builder.insert_header((RETRY_AFTER, secs.to_string()));
    }
    if let Some(methods) = error.as_ref().and_then(ApiError::allow_header) {
        builder.insert_header((ALLOW, methods));
    }
    if status == StatusCode::UNAUTHORIZED {
        builder.insert_header((WWW_AUTHENTICATE, r#"Basic realm="loyalty""#));
    }
    let response_body = state.settings.log.requests.then(|| text.clone());
    Outcome {
        response: builder.body(text),
        login: None,
        error,
        request_body: None,
        response_body,
        auth_failure: None,
    }
}

/// The caller's `X-Request-Id` when it is sane, else a new one.
fn request_id(req: &HttpRequest) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}

fn method_label(method: &HttpMethod) -> &'static str {
    match *method {
        HttpMethod::GET => "GET",
        HttpMethod::POST => "POST",
        HttpMethod::PUT => "PUT",
        HttpMethod::DELETE => "DELETE",
        HttpMethod::HEAD => "HEAD",
        HttpMethod::PATCH => "PATCH",
        HttpMethod::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::is_api_path;

    #[test]
    fn api_paths_in_any_case() {
        for p in [
            "/api",
            "/API/",
            "/api/card/x",
            "/Api/openapi.json",
            "//api/unknown",
            "/./api/x",
            "/%61pi/x",
        ] {
            assert!(is_api_path(p), "{p}");
        }
        for p in ["/", "/apis", "/health", "/ap", "/x/api/card"] {
            assert!(!is_api_path(p), "{p}");
        }
    }
}
