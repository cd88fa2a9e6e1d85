use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    /// Print a new till token (a 256-bit random secret, shown once) and the
    /// users-file entry that accepts it (only its SHA-256 is stored).
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
    let cli = Cli::parse();
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::HashPassword => hash_password(),
        Cmd::IssueTillToken { login, role } => {
            issue_till_token(&login, &role);
            Ok(())
        }
        Cmd::Serve => serve(cli.config),
        Cmd::Archive => archive(cli.config),
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
