//! Certificates made at test time (rcgen), TLS clients, and users files
//! written to temp dirs, for the HTTPS, client-certificate and reload tests.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, SanType};

use crate::helpers::*;

pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for 127.0.0.1 and localhost.
    pub fn server_cert(&self, expired: bool) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        self.issue(params, expired)
    }

    /// A till's client certificate with this subject CN.
    pub fn client_cert(&self, cn: &str, expired: bool) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        self.issue(params, expired)
    }

    fn issue(&self, mut params: CertificateParams, expired: bool) -> Issued {
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Writes the server's certificate files; returns (cert, key) paths.
pub fn write_server_files(dir: &Path, issued: &Issued) -> (String, String) {
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

/// A TLS client that trusts only `ca`, optionally presenting `identity`.
pub fn tls_client(ca: &Ca, identity: Option<&Issued>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap());
    if let Some(id) = identity {
        let pem = format!("{}{}", id.cert_pem, id.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The demo users plus `extra` TOML, in a file of its own.
pub fn users_file_with(dir: &Path, extra: &str) -> PathBuf {
    let demo = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-users.toml"),
    )
    .unwrap();
    let path = dir.join("users.toml");
    std::fs::write(&path, format!("{demo}\n{extra}")).unwrap();
    path
}

/// Replaces a file the way deploy tools do: write a new one, rename it in.
pub fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Status of a balance request over `client` (HTTPS), or the error text.
pub async fn https_balance(
    client: &reqwest::Client,
    port: u16,
    number: &str,
    basic: Option<(&str, &str)>,
) -> Result<(u16, serde_json::Value), String> {
    let mut req = client.get(format!(
        "https://127.0.0.1:{port}/api/card/balance/by/{number}"
    ));
    if let Some((login, pw)) = basic {
        req = req.basic_auth(login, Some(pw));
    }
    let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let body = resp.json().await.map_err(|e| format!("{e:?}"))?;
    Ok((status, body))
}

pub fn pos() -> (&'static str, String) {
    (POS, password(POS))
}
