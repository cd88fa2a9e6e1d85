//! The HTTP server. actix-web's `HttpServer` hands each connection straight
//! to actix-http, whose bare answers to unparsable or oversized request
//! heads cannot be shaped; this assembles the same parts — actix-server's
//! workers and graceful shutdown, actix-http's HTTP/1 service, the App —
//! with each connection wrapped in [`EnvelopeIo`] and [`ReadDeadline`]
//! first. With `http.tls`, HTTPS runs as a second server with workers of
//! its own: a flood of silent connections to the TLS port held the shared
//! workers' handshake slots and plain HTTP stopped answering too (issue 28,
//! item 5). The handshake is ours (tokio-rustls under a timeout) rather
//! than actix-tls's, whose per-worker slot count is what the flood
//! exhausted; each listener also caps connections per client address.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_http::{Extensions, HttpService};
use actix_server::{GracefulShutdownSignal, Server, ServerHandle};
use actix_service::{fn_service, map_config, ServiceFactory, ServiceFactoryExt as _};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::conn_limit::{ConnLimit, Counted};
use crate::api::read_deadline::{HeadLimits, ReadDeadline};
use crate::api::transport::EnvelopeIo;
use crate::api::{dispatch, AppState};
use crate::config::HttpSettings;
use crate::metrics as m;
use crate::tls;

/// Connections as the HTTP layer sees them.
type PlainConn = EnvelopeIo<ReadDeadline<Counted<TcpStream>>>;
type TlsConn = EnvelopeIo<ReadDeadline<TlsStream<Counted<TcpStream>>>>;

/// actix-http's HTTP/1 service for one connection type, around the App.
fn h1<T, F>(
    state: &web::Data<AppState>,
    http: &HttpSettings,
    local: SocketAddr,
    shutdown: GracefulShutdownSignal,
    on_connect: F,
) -> impl ServiceFactory<(T, Option<SocketAddr>), Config = (), Response = (), Error = (), InitError = ()>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    F: Fn(&T, &mut Extensions) + 'static,
{
    let app = App::new()
        .app_data(state.clone())
        .default_service(web::to(dispatch));
    HttpService::build()
        .keep_alive(Duration::from_secs(http.keep_alive_secs))
        .client_request_timeout(Duration::from_millis(http.request_head_timeout_ms))
        // A client that hangs up is gone: its request is dropped, and with
        // it any argon2 verification queued for it alone (issue 28, item 3).
        // HTTP/1 clients do not half-close and wait for an answer.
        .h1_allow_half_closed(false)
        .local_addr(local)
        .graceful_shutdown_signal(move || {
            let shutdown = shutdown.clone();
            async move { shutdown.notified().await }
        })
        .on_connect_ext(on_connect)
        .h1(map_config(app, |_| AppConfig::default()))
        .map_err(|e| tracing::debug!(error = %e, "connection ended with an error"))
}

fn plain(_: &PlainConn, _: &mut Extensions) {}

fn client_cert(io: &TlsConn, trust: &tls::ClientTrust, ext: &mut Extensions) {
    tls::on_connect(io.get_ref().get_ref().get_ref().1, trust, ext)
}

fn head_limits(http: &HttpSettings) -> HeadLimits {
    HeadLimits {
        head: Duration::from_millis(http.request_head_timeout_ms),
        idle: Duration::from_millis(http.read_idle_timeout_ms),
    }
}

/// The plain HTTP server and, with `http.tls`, the HTTPS one.
pub struct Servers {
    http: Server,
    https: Option<Server>,
}

#[derive(Clone)]
pub struct ServersHandle {
    http: ServerHandle,
    https: Option<ServerHandle>,
}

impl ServersHandle {
    /// Stops both (gracefully: in-flight requests finish first).
    pub fn stop(&self, graceful: bool) -> impl std::future::Future<Output = ()> {
        let http = self.http.stop(graceful);
        let https = self.https.as_ref().map(|h| h.stop(graceful));
        async move {
            http.await;
            if let Some(https) = https {
                https.await;
            }
        }
    }
}

impl Servers {
    pub fn handle(&self) -> ServersHandle {
        ServersHandle {
            http: self.http.handle(),
            https: self.https.as_ref().map(Server::handle),
        }
    }

    /// Until both have stopped (SIGTERM stops both).
    pub async fn run(self) -> std::io::Result<()> {
        match self.https {
            Some(https) => {
                let (a, b) = futures_util::future::join(self.http, https).await;
                a.and(b)
            }
            None => self.http.await,
        }
    }
}

pub fn serve(
    listener: TcpListener,
    tls: Option<(TcpListener, ServerConfig, tls::ClientTrust)>,
    state: web::Data<AppState>,
    http: &HttpSettings,
    workers: usize,
) -> std::io::Result<Servers> {
    let plain_server = {
        let local = listener.local_addr()?;
        let mut builder = Server::build()
            .workers(workers)
            .shutdown_timeout(http.shutdown_timeout_secs);
        // Idle keep-alive connections close at once on shutdown instead of
        // holding it up until they time out (as HttpServer does, through the
        // same doc-hidden actix-http hook).
        let shutdown = builder.graceful_shutdown_signal();
        let (state, http) = (state.clone(), http.clone());
        let limit = ConnLimit::new(http.max_connections_per_address);
        builder = builder.listen("loyalty-http", listener, move || {
            let h1 = h1(&state, &http, local, shutdown.clone(), plain);
            let (limit, limits) = (limit.clone(), head_limits(&http));
            fn_service(move |io: TcpStream| {
                let limit = limit.clone();
                async move {
                    // Socket options as HttpServer left them (Nagle on): the
                    // load-test numbers stay comparable.
                    let peer = io.peer_addr().map_err(|_| ())?;
                    let Some(slot) = limit.acquire(peer.ip()) else {
                        m::connection_refused("http", "per_address");
                        return Err(());
                    };
                    let io = ReadDeadline::new(Counted::new(io, slot), limits);
                    Ok((EnvelopeIo::new(io, Some(peer)), Some(peer)))
                }
            })
            .and_then(h1)
        })?;
        builder.run()
    };
    let https_server = match tls {
        None => None,
        Some((listener, config, trust)) => {
            let local = listener.local_addr()?;
            let mut builder = Server::build()
                .workers(workers)
                .shutdown_timeout(http.shutdown_timeout_secs);
            let shutdown = builder.graceful_shutdown_signal();
            let http = http.clone();
            let limit = ConnLimit::new(http.max_connections_per_address);
            let acceptor = TlsAcceptor::from(Arc::new(config));
            let handshake = Duration::from_millis(http.tls.handshake_timeout_ms);
            builder = builder.listen("loyalty-https", listener, move || {
                let trust = trust.clone();
                let on_connect =
                    move |io: &TlsConn, ext: &mut Extensions| client_cert(io, &trust, ext);
                let h1 = h1(&state, &http, local, shutdown.clone(), on_connect);
                let (limit, limits, acceptor) =
                    (limit.clone(), head_limits(&http), acceptor.clone());
                // Capped per address before any TLS work, then the handshake
                // under its timeout, then the same wraps and service as plain
                // HTTP on the decrypted stream.
                fn_service(move |io: TcpStream| {
                    let (limit, acceptor) = (limit.clone(), acceptor.clone());
                    async move {
                        let peer = io.peer_addr().map_err(|_| ())?;
                        let Some(slot) = limit.acquire(peer.ip()) else {
                            m::connection_refused("https", "per_address");
                            return Err(());
                        };
                        let tls = match tokio::time::timeout(
                            handshake,
                            acceptor.accept(Counted::new(io, slot)),
                        )
                        .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                m::connection_refused("https", "handshake_failed");
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return Err(());
                            }
                            Err(_) => {
                                m::connection_refused("https", "handshake_timeout");
                                return Err(());
                            }
                        };
                        let io = ReadDeadline::new(tls, limits);
                        Ok((EnvelopeIo::new(io, Some(peer)), Some(peer)))
                    }
                })
                .and_then(h1)
            })?;
            Some(builder.run())
        }
    };
    Ok(Servers {
        http: plain_server,
        https: https_server,
    })
}
