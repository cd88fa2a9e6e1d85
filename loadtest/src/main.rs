//! `loyalty-loadtest`: see `loadtest/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loyalty_loadtest::client::{Api, Creds};
use loyalty_loadtest::dataset::{Dataset, DatasetArgs};
use loyalty_loadtest::{prepare, report, runner, usersfile};

/// Load tests of the loyalty server (goose).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load the data set through the public API and print what was made.
    Prepare {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        host: String,
        #[command(flatten)]
        dataset: DatasetArgs,
        #[command(flatten)]
        creds: Creds,
        /// Requests in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Run a scenario (after the /health yardstick) and write its report.
    /// Every goose option is accepted too (--host, --users, --run-time,
    /// --throttle-requests, --co-mitigation, --baseline-file, --notes...).
    Run(Box<runner::RunArgs>),
    /// Write a users file with N distinct till logins (restart-storm).
    UsersFile(usersfile::UsersFileArgs),
    /// The README's performance tables from run folders (summary.json).
    Table { runs: Vec<PathBuf> },
    /// Two runs side by side: A, B and B/A.
    Compare { a: PathBuf, b: PathBuf },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("FAILED: a threshold was broken (see the report)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Cmd::Prepare {
            host,
            dataset,
            creds,
            concurrency,
        } => runtime()?.block_on(async {
            let ds = Dataset::new(&dataset)?;
            let api = Api::new(&host)?;
            let p = prepare::prepare(&api, &creds, &ds, concurrency).await?;
            println!(
                "prepared on {host}: cards {} created, {} existing; active {} ({} activated now, {} already, {} unblocked); \
                 contacts written {}; bonus lots {} ({} each of {}); New cards left for issue/bind/activate {}; {:.1} s",
                p.cards_created, p.cards_existing, ds.active, p.activated, p.already_active, p.unblocked,
                p.contacts, p.bonus_lots, ds.args.bonuses_per_card, ds.args.bonus_amount, p.new_pool_left, p.seconds
            );
            println!("layout: purchases on cards 0..{}, hot set 0..{}, call centre {}..{}, New pool {}..{}",
                ds.purchase_end, ds.hot, ds.cc_start, ds.active, ds.active, ds.cards);
            Ok(true)
        }),
        Cmd::Run(args) => runtime()?.block_on(runner::run(*args)),
        Cmd::UsersFile(args) => usersfile::write(&args).map(|()| true),
        Cmd::Table { runs } => {
            let runs = runs.iter().map(|p| report::load(p)).collect::<anyhow::Result<Vec<_>>>()?;
            print!("{}", report::table(&runs));
            Ok(true)
        }
        Cmd::Compare { a, b } => {
            print!("{}", report::compare(&report::load(&a)?, &report::load(&b)?));
            Ok(true)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
