//! HTTPS with rustls (ring provider; TLS 1.2 and 1.3 only). The certificate,
//! its key and the client CAs are read again on `reload()` (SIGHUP): the
//! server config asks a resolver and a verifier that we swap underneath, so
//! connections already open keep their session and only new handshakes see
//! the new files. A reload that fails keeps what was in force.
//!
//! A resumed session (TLS 1.2 session id, TLS 1.3 ticket) skips the client
//! certificate check and carries the certificate verified when the session
//! began: a reload therefore forgets every stored session, or a till of a
//! revoked CA would stay logged in by resuming. Tickets are stateful (the
//! default `NeverProducesTickets` ticketer): the session store is all there
//! is to forget.
//!
//! A connection already open carries the certificate it was verified with
//! (found by review: after a swap of the client CAs, a till's kept-alive
//! connection stayed logged in for as long as it kept sending): after a
//! reload, each request checks it again against the CAs then in force.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::dev::Extensions;
use parking_lot::RwLock;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
    WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::config::TlsSettings;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Read {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("{path} holds no {what}")]
    Empty { what: &'static str, path: String },
    #[error("the key in {key} does not fit the certificate in {cert}: {reason}")]
    KeyMismatch {
        cert: String,
        key: String,
        reason: String,
    },
    #[error("the client CAs in {path} are unusable: {reason}")]
    ClientCa { path: String, reason: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// The client CAs in force (none without `client_ca_file`), as each
/// connection checks its certificate against them.
#[derive(Clone, Default)]
pub struct ClientTrust(Option<Arc<ReloadingClientVerifier>>);

/// A connection's verified client certificate.
pub struct ClientCert {
    cn: String,
    chain: Vec<CertificateDer<'static>>,
    trust: Arc<ReloadingClientVerifier>,
    /// The client CAs it was last verified against.
    generation: u64,
}

impl ClientCert {
    /// Its subject CN while the client CAs in force accept it: checked
    /// again only when they were reloaded since.
    pub fn cn(&self) -> Option<&str> {
        if self.trust.generation() != self.generation {
            let (end, intermediates) = self.chain.split_first()?;
            self.trust
                .now()
                .verify_client_cert(end, intermediates, UnixTime::now())
                .ok()?;
        }
        Some(&self.cn)
    }
}

/// What SIGHUP reloads.
pub struct TlsReloader {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    cert: Arc<ReloadingCert>,
    clients: Option<Arc<ReloadingClientVerifier>>,
    sessions: Arc<ReloadingSessions>,
}

impl TlsReloader {
    /// Reads the files again; on any error nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.settings, &self.provider)?;
        let verifier = match &self.clients {
            Some(_) => Some(client_verifier(&self.settings, &self.provider)?),
            None => None,
        };
        *self.cert.current.write() = Arc::new(key);
        if let (Some(clients), Some(verifier)) = (&self.clients, verifier) {
            let mut current = clients.current.write();
            *current = verifier;
            // Under the lock: whoever sees the new verifier also sees that
            // the CAs changed.
            clients.generation.fetch_add(1, Ordering::SeqCst);
        }
        // After the new verifier is in force: a session stored in between
        // was verified by it.
        self.sessions.forget_all();
        Ok(())
    }

    /// The client CAs as reloads change them, for connections to check
    /// their certificate against.
    pub fn trust(&self) -> ClientTrust {
        ClientTrust(self.clients.clone())
    }
}

/// The rustls server config for `settings`, and what reloads its files.
pub fn server_config(settings: &TlsSettings) -> Result<(ServerConfig, TlsReloader), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = Arc::new(ReloadingCert {
        current: RwLock::new(Arc::new(load_certified_key(settings, &provider)?)),
    });
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let (builder, clients) = if settings.client_ca_file.is_empty() {
        (builder.with_no_client_auth(), None)
    } else {
        let clients = Arc::new(ReloadingClientVerifier {
            current: RwLock::new(client_verifier(settings, &provider)?),
            generation: AtomicU64::new(0),
            mandatory: settings.require_client_cert,
        });
        (
            builder.with_client_cert_verifier(clients.clone()),
            Some(clients),
        )
    };
    let mut config = builder.with_cert_resolver(cert.clone());
    let sessions = Arc::new(ReloadingSessions::new());
    config.session_storage = sessions.clone();
    Ok((
        config,
        TlsReloader {
            settings: settings.clone(),
            provider,
            cert,
            clients,
            sessions,
        },
    ))
}

/// Called for each HTTPS connection (`startup/http_server.rs`, through
/// actix-http's `on_connect_ext`) with its TLS session: remembers a verified
/// client certificate for the requests of that connection, verified once
/// more against the CAs in force now (a reload may have come after the
/// handshake), so that later requests need to check it again only after a
/// reload.
pub fn on_connect(tls: &rustls::ServerConnection, trust: &ClientTrust, ext: &mut Extensions) {
    let (Some(trust), Some(chain)) = (&trust.0, tls.peer_certificates()) else {
        return;
    };
    let Some((end, intermediates)) = chain.split_first() else {
        return;
    };
    let Some(cn) = subject_cn(end) else {
        return;
    };
    let generation = trust.generation();
    if trust
        .now()
        .verify_client_cert(end, intermediates, UnixTime::now())
        .is_err()
    {
        return;
    }
    ext.insert(ClientCert {
        cn,
        chain: chain.iter().map(|c| c.clone().into_owned()).collect(),
        trust: trust.clone(),
        generation,
    });
}

fn subject_cn(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

fn load_certified_key(
    settings: &TlsSettings,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs("certificate", &settings.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).map_err(|e| TlsError::Read {
        what: "private key",
        path: settings.key_file.clone(),
        reason: e.to_string(),
    })?;
    let mismatch = |reason: String| TlsError::KeyMismatch {
        cert: settings.cert_file.clone(),
        key: settings.key_file.clone(),
        reason,
    };
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| mismatch(e.to_string()))?;
    let certified = CertifiedKey::new(certs, signing);
    // A key that does not match would fail every handshake: refuse it now.
    certified
        .keys_match()
        .map_err(|e| mismatch(e.to_string()))?;
    Ok(certified)
}

fn read_certs(what: &'static str, path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |reason: String| TlsError::Read {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn client_verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let path = &settings.client_ca_file;
    let mut roots = RootCertStore::empty();
    for ca in read_certs("client CA certificate", path)? {
        roots.add(ca).map_err(|e| TlsError::ClientCa {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if settings.require_client_cert {
        builder
    } else {
        // Tills without a certificate still log in with HTTP Basic.
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| TlsError::ClientCa {
        path: path.clone(),
        reason: e.to_string(),
    })
}

/// How many sessions are kept for resumption (rustls' default).
const SESSIONS: usize = 256;

/// The sessions a client may resume, forgotten whole on a reload.
struct ReloadingSessions {
    current: RwLock<Arc<ServerSessionMemoryCache>>,
}

impl ReloadingSessions {
    fn new() -> ReloadingSessions {
        ReloadingSessions {
            current: RwLock::new(ServerSessionMemoryCache::new(SESSIONS)),
        }
    }

    fn forget_all(&self) {
        *self.current.write() = ServerSessionMemoryCache::new(SESSIONS);
    }

    fn now(&self) -> Arc<ServerSessionMemoryCache> {
        self.current.read().clone()
    }
}

impl fmt::Debug for ReloadingSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadingSessions")
    }
}

impl StoresServerSessions for ReloadingSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.now().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.now().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.now().take(key)
    }

    fn can_cache(&self) -> bool {
        self.now().can_cache()
    }
}

/// The server certificate in force; handshakes read it, reloads replace it.
struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadingCert")
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// The client-CA verifier in force. It gives clients no CA hints (the
/// hints would have to outlive a reload); a till sends the one certificate
/// it has anyway.
struct ReloadingClientVerifier {
    current: RwLock<Arc<dyn ClientCertVerifier>>,
    /// Counts the swaps of `current`.
    generation: AtomicU64,
    mandatory: bool,
}

impl fmt::Debug for ReloadingClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadingClientVerifier")
    }
}

impl ReloadingClientVerifier {
    fn now(&self) -> Arc<dyn ClientCertVerifier> {
        self.current.read().clone()
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.now()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.now().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.now().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.now().supported_verify_schemes()
    }
}

/// Makes ring the process-wide rustls provider, once. rustls picks one from
/// its crate features only when exactly one of ring and aws-lc-rs is on; a
/// workspace build can turn on both (other crates' defaults), and redis-rs's
/// `rediss://` client asks for the process default — which then panics. Our
/// listeners already name ring explicitly.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one first; that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
