//! `loyalty-loadtest`: see `loadtest/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loyalty_loadtest::client::{Api, Creds};
use loyalty_loadtest::dataset::{Dataset, DatasetArgs};
use loyalty_loadtest::{capacity, compare, report, runner, usersfile};

/// Load tests of the loyalty server: open model (arrival rate) by default,
/// goose's closed model with --model closed.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args)]
struct PrepareArgs {
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
    /// Where the data set flags are left for `run` to check.
    #[arg(long, default_value = "loadtest-runs/datasets")]
    manifest_dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load the data set through the public API and print what was made.
    Prepare(Box<PrepareArgs>),
    /// Run a scenario (after the /health yardstick) and write its report.
    /// Open model by default (--rate, --steps); --model closed takes goose's
    /// options (--users, --threshold, --test-plan...). --host, --run-time,
    /// --output-dir and --notes serve both.
    Run(Box<runner::RunArgs>),
    /// Step the arrival rate until the p99 (from the due time) or the error
    /// rate breaks its SLO; report the highest rate that held, with client
    /// and server CPU per step.
    Capacity(Box<capacity::CapacityArgs>),
    /// Write a users file with N distinct till logins (restart-storm).
    UsersFile(usersfile::UsersFileArgs),
    /// The performance tables from run folders (capacity.json or
    /// summary.json).
    Table { runs: Vec<PathBuf> },
    /// Runs of two builds side by side: each round, mean and spread per
    /// side, B/A. `compare A B`, or `compare --a A1 --a A2 --b B1 --b B2`.
    /// Refuses runs made with different settings (--allow-mismatch: flag
    /// them instead); exits 1 when a run had failed its gates.
    Compare {
        runs: Vec<PathBuf>,
        #[arg(long = "a", value_name = "RUN")]
        a: Vec<PathBuf>,
        #[arg(long = "b", value_name = "RUN")]
        b: Vec<PathBuf>,
        #[arg(long)]
        allow_mismatch: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("FAILED: a gate was broken (see the report)");
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
        Cmd::Prepare(p) => runtime()?.block_on(async {
            let PrepareArgs {
                host,
                dataset,
                creds,
                concurrency,
                manifest_dir,
            } = *p;
            let ds = Dataset::new(&dataset)?;
            let host = host.trim_end_matches('/').to_owned();
            let api = Api::new(&host)?;
            let p = runner::prepare_and_record(&api, &creds, &ds, concurrency, &manifest_dir, &host)
                .await?;
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
        Cmd::Capacity(args) => runtime()?.block_on(capacity::run(*args)),
        Cmd::UsersFile(args) => usersfile::write(&args).map(|()| true),
        Cmd::Table { runs } => {
            let (searches, single): (Vec<&PathBuf>, Vec<&PathBuf>) =
                runs.iter().partition(|p| p.join("capacity.json").exists());
            let searches = searches
                .iter()
                .map(|p| capacity::load(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let single = single
                .iter()
                .map(|p| report::load(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            print!("{}{}", capacity::table(&searches), report::table(&single));
            Ok(true)
        }
        Cmd::Compare {
            runs,
            a,
            b,
            allow_mismatch,
        } => {
            let (a, b) = match (runs.as_slice(), a.is_empty() && b.is_empty()) {
                ([x, y], true) => (vec![x.clone()], vec![y.clone()]),
                ([], false) => (a, b),
                _ => anyhow::bail!("compare A B, or compare --a A1 [--a A2...] --b B1 [--b B2...]"),
            };
            let load = |v: &[PathBuf]| v.iter().map(|p| report::load(p)).collect::<anyhow::Result<Vec<_>>>();
            let (a, b) = (load(&a)?, load(&b)?);
            print!("{}", compare::compare(&a, &b, allow_mismatch)?);
            Ok(a.iter().chain(&b).all(|r| r.passed))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
