use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use loyalty::store::Store;
use loyalty::{config::Settings, telemetry, Application};

// Every request allocates many small, short-lived objects (JSON, labels,
// futures) across threads; mimalloc does that markedly cheaper than glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Loyalty-card processing engine.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Configuration file over config/default.toml; repeat to layer more.
    #[arg(long = "config", global = true)]
    config: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Move the change streams into the PostgreSQL archive
    /// (`archive.postgres_url`), until stopped.
    Archive,
    /// Read a password on standard input and print its argon2id PHC hash.
    HashPassword,
    /// Write an NDJSON dump of the configured Redis store (docs/export.md).
    Export {
        /// The dump file (standard output when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Load a dump into the configured Redis store: an empty one, unless
    /// --merge (then only what is missing is created).
    Import {
        file: PathBuf,
        #[arg(long)]
        merge: bool,
    },
    /// Print a new till token (`lt1_` and 43 base64url characters: a
    /// 256-bit random secret, shown once) and the users-file entry that
    /// accepts it (only its SHA-256 is stored). Only secrets of this shape
    /// are checked as tokens.
    IssueTillToken {
        /// The till's login in the printed entry.
        #[arg(long, default_value = "till-0001")]
        login: String,
        /// The role in the printed entry.
        #[arg(long, default_value = "pos")]
        role: String,
    },
}

fn main() -> anyhow::Result<()> {
    loyalty::tls::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::HashPassword => hash_password(),
        Cmd::IssueTillToken { login, role } => {
            issue_till_token(&login, &role);
            Ok(())
        }
        Cmd::Serve => serve(cli.config),
        Cmd::Archive => archive(cli.config),
        Cmd::Export { out } => transfer(cli.config, |store, settings| async move {
            loyalty::bulk::cli::export(store, &settings, out.as_deref()).await
        }),
        Cmd::Import { file, merge } => transfer(cli.config, |store, settings| async move {
            loyalty::bulk::cli::import(store, &settings, &file, merge).await
        }),
    }
}

fn archive(config: Vec<PathBuf>) -> anyhow::Result<()> {
    let settings = Settings::load(&config).context("loading the configuration")?;
    telemetry::init(&settings.log);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(loyalty::archive::run(&settings))
}

fn hash_password() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let password = input.strip_suffix('\n').unwrap_or(&input);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(!password.is_empty(), "an empty password cannot be hashed");
    let hash = loyalty::api::auth::hash_password(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{hash}");
    Ok(())
}

fn issue_till_token(login: &str, role: &str) {
    let (token, sha256) = loyalty::api::till_token::issue();
    println!("# The till's secret (its HTTP Basic password), shown only now:");
    println!("{token}");
    println!("# The users-file entry (only the SHA-256 is stored):");
    println!("[[users]]\nlogin = {login:?}\nrole = {role:?}\ntoken_sha256 = \"{sha256}\"");
}

/// Runs an export or import against the configured store, without HTTP.
fn transfer<F, Fut>(config: Vec<PathBuf>, run: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<dyn Store>, Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let settings = Settings::load(&config).context("loading the configuration")?;
    // Standard output may carry the dump.
    telemetry::init_to_stderr(&settings.log);
    actix_rt::System::new().block_on(async move {
        let store = loyalty::startup::connect_store(&settings).await?;
        run(store, settings).await
    })
}

fn serve(config: Vec<PathBuf>) -> anyhow::Result<()> {
    let settings = Settings::load(&config).context("loading the configuration")?;
    telemetry::init(&settings.log);
    actix_rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        tracing::info!(port = app.port(), "listening");
        app.run_until_stopped().await?;
        tracing::info!("stopped");
        Ok(())
    })
}
