//! A users file for restart-storm: the server's users (copied from an
//! existing users file, e.g. the demo users) plus N distinct till logins,
//! each with its own argon2id hash made by the server's own
//! `hash_password` — on every core, since each hash takes tens of ms.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct UsersFileArgs {
    /// Where to write the users file.
    #[arg(long)]
    pub out: PathBuf,
    /// Users file whose users are kept (the prepare step's admin, marketer,
    /// pos and cc_operator).
    #[arg(long, default_value = "config/demo-users.toml")]
    pub base: PathBuf,
    /// Till logins `<prefix>00001`… with role pos.
    #[arg(long, default_value_t = 2000)]
    pub tills: usize,
    #[arg(long, default_value = "till-")]
    pub till_prefix: String,
    /// A till's password is its login followed by this.
    #[arg(long, default_value = "-storm")]
    pub till_password_suffix: String,
    /// Hashing threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn write(args: &UsersFileArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let base = std::fs::read_to_string(&args.base)
        .with_context(|| format!("reading {}", args.base.display()))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicUsize::new(1);
    let mut entries: Vec<(usize, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i > args.tills {
                            return Ok::<_, anyhow::Error>(out);
                        }
                        let login = format!("{}{i:05}", args.till_prefix);
                        let password = format!("{login}{}", args.till_password_suffix);
                        let hash = loyalty::api::auth::hash_password(&password)
                            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
                        out.push((
                            i,
                            format!("[[users]]\nlogin = \"{login}\"\nrole = \"pos\"\npassword_hash = \"{hash}\"\n"),
                        ));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a hashing thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<Vec<_>>>>()
            .map(|v| v.into_iter().flatten().collect())
    })?;
    entries.sort_by_key(|e| e.0);
    let mut text = base;
    text.push_str(&format!(
        "\n# {} till logins for restart-storm (loyalty-loadtest users-file)\n",
        args.tills
    ));
    for (_, e) in entries {
        text.push('\n');
        text.push_str(&e);
    }
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "users file {}: {} tills hashed on {threads} threads in {:.1} s",
        args.out.display(),
        args.tills,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
