//! The HTTP server. actix-web's `HttpServer` hands each connection straight
//! to actix-http, whose bare answers to unparsable or oversized request
//! heads cannot be shaped; this assembles the same parts — actix-server's
//! workers and graceful shutdown, actix-http's HTTP/1 service, the App —
//! with each connection wrapped in [`EnvelopeIo`] first.

use std::net::TcpListener;
use std::time::Duration;

use actix_http::HttpService;
use actix_server::Server;
use actix_service::{fn_service, map_config, ServiceFactoryExt as _};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use tokio::net::TcpStream;

use crate::api::transport::EnvelopeIo;
use crate::api::{dispatch, AppState};
use crate::config::HttpSettings;

pub fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    http: &HttpSettings,
    workers: usize,
) -> std::io::Result<Server> {
    let keep_alive = Duration::from_secs(http.keep_alive_secs);
    let head_timeout = Duration::from_millis(http.request_head_timeout_ms);
    let local = listener.local_addr()?;
    let builder = Server::build()
        .workers(workers)
        .shutdown_timeout(http.shutdown_timeout_secs);
    // Idle keep-alive connections close at once on shutdown instead of
    // holding it up until they time out (as HttpServer does, through the
    // same doc-hidden actix-http hook).
    let shutdown = builder.graceful_shutdown_signal();
    Ok(builder
        .listen("loyalty-http", listener, move || {
            let app = App::new()
                .app_data(state.clone())
                .default_service(web::to(dispatch));
            let shutdown = shutdown.clone();
            let h1 = HttpService::build()
                .keep_alive(keep_alive)
                .client_request_timeout(head_timeout)
                .local_addr(local)
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .h1(map_config(app, |_| AppConfig::default()));
            fn_service(|io: TcpStream| async move {
                // Socket options as HttpServer left them (Nagle on): the
                // load-test numbers stay comparable.
                let peer = io.peer_addr().ok();
                Ok((EnvelopeIo::new(io, peer), peer))
            })
            .and_then(h1)
        })?
        .run())
}
