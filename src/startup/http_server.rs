//! The HTTP server. actix-web's `HttpServer` hands each connection straight
//! to actix-http, whose bare answers to unparsable or oversized request
//! heads cannot be shaped; this assembles the same parts — actix-server's
//! workers and graceful shutdown, actix-http's HTTP/1 service, the App —
//! with each connection wrapped in [`EnvelopeIo`] first. With `http.tls`, a
//! second listener does the same behind a rustls handshake (the wrap is
//! around the decrypted stream) and remembers a verified client
//! certificate's CN for the requests of that connection.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_http::{Extensions, HttpService};
use actix_server::{GracefulShutdownSignal, Server};
use actix_service::{fn_service, map_config, ServiceFactory, ServiceFactoryExt as _};
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::api::transport::EnvelopeIo;
use crate::api::{dispatch, AppState};
use crate::config::HttpSettings;
use crate::tls;

/// actix-http's HTTP/1 service for one connection type, around the App.
fn h1<T>(
    state: &web::Data<AppState>,
    http: &HttpSettings,
    local: SocketAddr,
    shutdown: GracefulShutdownSignal,
    on_connect: fn(&T, &mut Extensions),
) -> impl ServiceFactory<
    (T, Option<SocketAddr>),
    Config = (),
    Response = (),
    Error = actix_http::error::DispatchError,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let app = App::new()
        .app_data(state.clone())
        .default_service(web::to(dispatch));
    HttpService::build()
        .keep_alive(Duration::from_secs(http.keep_alive_secs))
        .client_request_timeout(Duration::from_millis(http.request_head_timeout_ms))
        .local_addr(local)
        .graceful_shutdown_signal(move || {
            let shutdown = shutdown.clone();
            async move { shutdown.notified().await }
        })
        .on_connect_ext(on_connect)
        .h1(map_config(app, |_| AppConfig::default()))
}

fn plain(_: &EnvelopeIo<TcpStream>, _: &mut Extensions) {}

fn client_cert(io: &EnvelopeIo<TlsStream<TcpStream>>, ext: &mut Extensions) {
    tls::on_connect(io.get_ref(), ext)
}

pub fn serve(
    listener: TcpListener,
    tls: Option<(TcpListener, ServerConfig)>,
    state: web::Data<AppState>,
    http: &HttpSettings,
    workers: usize,
) -> std::io::Result<Server> {
    let local = listener.local_addr()?;
    let mut builder = Server::build()
        .workers(workers)
        .shutdown_timeout(http.shutdown_timeout_secs);
    // Idle keep-alive connections close at once on shutdown instead of
    // holding it up until they time out (as HttpServer does, through the
    // same doc-hidden actix-http hook).
    let shutdown = builder.graceful_shutdown_signal();
    {
        let (state, http, shutdown) = (state.clone(), http.clone(), shutdown.clone());
        builder = builder.listen("loyalty-http", listener, move || {
            let h1 = h1(&state, &http, local, shutdown.clone(), plain);
            fn_service(|io: TcpStream| async move {
                // Socket options as HttpServer left them (Nagle on): the
                // load-test numbers stay comparable.
                let peer = io.peer_addr().ok();
                Ok((EnvelopeIo::new(io, peer), peer))
            })
            .and_then(h1)
        })?;
    }
    if let Some((listener, config)) = tls {
        let local = listener.local_addr()?;
        let http = http.clone();
        builder = builder.listen("loyalty-https", listener, move || {
            let h1 = h1(&state, &http, local, shutdown.clone(), client_cert);
            // The handshake (3 s timeout, as HttpServer's), then the same
            // wrap and service as plain HTTP on the decrypted stream.
            Acceptor::new(config.clone())
                .map_err(|e| tracing::debug!(error = ?e, "TLS handshake failed"))
                .and_then(fn_service(|io: TlsStream<TcpStream>| async move {
                    let peer = io.get_ref().0.peer_addr().ok();
                    Ok::<_, ()>((EnvelopeIo::new(io, peer), peer))
                }))
                .and_then(h1.map_err(|_| ()))
        })?;
    }
    Ok(builder.run())
}
