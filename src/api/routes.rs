//! The route table: per route its template, HTTP methods, who may call it
//! (a `domain::Method` of the role table, or nobody's credentials), how its
//! body is read and its handler — in one place, so that a route cannot be
//! routed without a handler or handled without its permission.

use actix_web::http::Method as HttpMethod;
use actix_web::{web, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::answer::Answer;
use super::context::{AppState, Ctx};
use super::error::ApiError;
use super::{admin, card, contact, ops, purchase};
use crate::domain::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    BalanceByNumber,
    BalanceByPhone,
    BalanceByCode,
    Issue,
    BindTo,
    Active,
    Block,
    Unblock,
    History,
    ContactUpsert,
    ContactGet,
    AdminCards,
    AdminContacts,
    AdminExport,
    AdminImport,
    Calculate,
    Confirm,
    Hold,
    Release,
    Cancel,
    Refund,
    ManualBonus,
    Transactions,
    Health,
    Ready,
    Metrics,
    OpenApi,
}

type Handled<'a> = LocalBoxFuture<'a, Result<Answer, ApiError>>;
pub type OpenFn = for<'a> fn(&'a AppState) -> Handled<'a>;
pub type ParamsFn = for<'a, 'b> fn(&'b Ctx<'a>) -> Handled<'b>;
pub type StreamFn = for<'a, 'b> fn(&'b Ctx<'a>, &'b HttpRequest, web::Payload) -> Handled<'b>;

/// Who may call a route, how its body is read, and what answers it.
#[derive(Clone, Copy)]
pub enum Serve {
    /// No credentials (the operations routes, docs/api.md §10); with
    /// `bearer_token`, `metrics.bearer_token_sha256` guards it when set.
    Open { bearer_token: bool, handler: OpenFn },
    /// Credentials and `permission`; the dispatcher reads the parameters:
    /// the query string and, for a POST, the JSON body (size-limited, with
    /// deadlines).
    Params {
        permission: Method,
        handler: ParamsFn,
    },
    /// Credentials and `permission`; the handler reads the body itself as a
    /// stream (docs/api.md §8), the dispatcher only the query string.
    Stream {
        permission: Method,
        handler: StreamFn,
    },
}

pub struct Route {
    pub id: RouteId,
    /// Label for metrics and logs.
    pub template: &'static str,
    pub(super) segments: Vec<&'static str>,
    pub methods: &'static [HttpMethod],
    pub serve: Serve,
}

impl Route {
    /// The path as routed (the seed's `binto` keeps its own spelling here;
    /// `template` is the label it shares with `bindto`).
    pub fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }

    /// The role-table group; `None` for the unauthenticated ops routes.
    pub fn permission(&self) -> Option<Method> {
        match self.serve {
            Serve::Open { .. } => None,
            Serve::Params { permission, .. } | Serve::Stream { permission, .. } => Some(permission),
        }
    }
}

const GET: &[HttpMethod] = &[HttpMethod::GET];
const POST: &[HttpMethod] = &[HttpMethod::POST];
const GET_POST: &[HttpMethod] = &[HttpMethod::GET, HttpMethod::POST];

fn route(
    id: RouteId,
    template: &'static str,
    methods: &'static [HttpMethod],
    serve: Serve,
) -> Route {
    Route {
        id,
        template,
        segments: template.trim_matches('/').split('/').collect(),
        methods,
        serve,
    }
}

/// A handler that answers the envelope from the request's parameters.
macro_rules! params {
    ($permission:expr, $handler:path) => {{
        fn handler<'a, 'b>(ctx: &'b Ctx<'a>) -> Handled<'b> {
            Box::pin(async move { $handler(ctx).await.map(Answer::Fields) })
        }
        Serve::Params {
            permission: $permission,
            handler,
        }
    }};
}

/// A handler that reads its own body.
macro_rules! stream {
    ($permission:expr, $handler:path) => {{
        fn handler<'a, 'b>(
            ctx: &'b Ctx<'a>,
            req: &'b HttpRequest,
            payload: web::Payload,
        ) -> Handled<'b> {
            Box::pin($handler(ctx, req, payload))
        }
        Serve::Stream {
            permission: $permission,
            handler,
        }
    }};
}

/// An operations route, answered without credentials.
macro_rules! open {
    ($bearer_token:expr, $handler:expr) => {{
        fn handler(state: &AppState) -> Handled<'_> {
            Box::pin(async move { $handler(state).await })
        }
        Serve::Open {
            bearer_token: $bearer_token,
            handler,
        }
    }};
}

async fn health(_: &AppState) -> Result<Answer, ApiError> {
    ops::health().map(Answer::Fields)
}

async fn ready(state: &AppState) -> Result<Answer, ApiError> {
    ops::ready(state).await.map(Answer::Fields)
}

async fn metrics(state: &AppState) -> Result<Answer, ApiError> {
    Ok(Answer::Response(ops::metrics(state).await))
}

async fn openapi(state: &AppState) -> Result<Answer, ApiError> {
    Ok(Answer::Response(ops::openapi(state)))
}

/// Every route, in matching order.
pub fn table() -> Vec<Route> {
    use RouteId::*;
    vec![
        route(
            BalanceByNumber,
            "/api/card/balance/by/{number}",
            GET,
            params!(Method::Balance, card::balance_by_number),
        ),
        route(
            BalanceByNumber,
            "/api/card/balance/by/number/{number}",
            GET,
            params!(Method::Balance, card::balance_by_number),
        ),
        route(
            BalanceByPhone,
            "/api/card/balance/by/phone/{phone}",
            GET,
            params!(Method::Balance, card::balance_by_phone),
        ),
        route(
            BalanceByCode,
            "/api/card/balance/by/code/{code}",
            GET,
            params!(Method::Balance, card::balance_by_code),
        ),
        route(
            Issue,
            "/api/card/issue",
            GET_POST,
            params!(Method::Issue, card::issue),
        ),
        route(
            BindTo,
            "/api/card/bindto",
            POST,
            params!(Method::BindTo, card::bindto),
        ),
        // The seed's spelling; same method, same label.
        Route {
            template: "/api/card/bindto",
            ..route(
                BindTo,
                "/api/card/binto",
                POST,
                params!(Method::BindTo, card::bindto),
            )
        },
        route(
            Active,
            "/api/card/active",
            GET_POST,
            params!(Method::Active, card::active),
        ),
        route(
            Block,
            "/api/card/block",
            POST,
            params!(Method::Block, card::block),
        ),
        route(
            Unblock,
            "/api/card/unblock",
            POST,
            params!(Method::Unblock, card::unblock),
        ),
        route(
            History,
            "/api/card/history/{number}",
            GET,
            params!(Method::History, card::history),
        ),
        route(
            ContactUpsert,
            "/api/contact",
            POST,
            params!(Method::Contacts, contact::upsert),
        ),
        route(
            ContactGet,
            "/api/contact/{code}",
            GET,
            params!(Method::Contacts, contact::get),
        ),
        route(
            AdminCards,
            "/api/admin/cards",
            POST,
            stream!(Method::DataLoading, admin::load_cards),
        ),
        route(
            AdminContacts,
            "/api/admin/contacts",
            POST,
            stream!(Method::DataLoading, admin::load_contacts),
        ),
        route(
            AdminExport,
            "/api/admin/export",
            GET,
            stream!(Method::DataLoading, admin::export),
        ),
        route(
            AdminImport,
            "/api/admin/import",
            POST,
            stream!(Method::DataLoading, admin::import),
        ),
        route(
            Calculate,
            "/api/purchase/calculate",
            POST,
            params!(Method::Purchases, purchase::calculate),
        ),
        route(
            Confirm,
            "/api/purchase/confirm",
            POST,
            params!(Method::Purchases, purchase::confirm),
        ),
        route(
            Hold,
            "/api/purchase/hold",
            POST,
            params!(Method::Purchases, purchase::hold),
        ),
        route(
            Release,
            "/api/purchase/release",
            POST,
            params!(Method::Purchases, purchase::release),
        ),
        route(
            Cancel,
            "/api/purchase/cancel",
            POST,
            params!(Method::Purchases, purchase::cancel),
        ),
        route(
            Refund,
            "/api/purchase/refund",
            POST,
            params!(Method::Purchases, purchase::refund),
        ),
        route(
            ManualBonus,
            "/api/card/bonus",
            POST,
            params!(Method::ManualBonuses, purchase::manual_bonus),
        ),
        route(
            Transactions,
            "/api/card/transactions/{number}",
            GET,
            params!(Method::Balance, purchase::transactions),
        ),
        route(Health, "/health", GET, open!(false, health)),
        route(Ready, "/ready", GET, open!(false, ready)),
        route(Metrics, "/metrics", GET, open!(true, metrics)),
        route(OpenApi, "/api/openapi.json", GET, open!(false, openapi)),
    ]
}
