//! Two real server instances (HTTP on port 0, in this process) sharing one
//! Redis deployment, as behind a till fleet's load balancer.

use std::path::PathBuf;

use loyalty::config::Settings;
use loyalty::RunningApp;

pub struct Pair {
    pub apps: Vec<RunningApp>,
    pub bases: Vec<String>,
}

/// Settings as an operator would run them (record cache on, the default
/// timeouts), on the Redis at `urls`, under `prefix`.
pub fn settings(urls: Vec<String>, prefix: &str) -> Settings {
    let mut s = Settings::defaults();
    s.http.bind = "127.0.0.1:0".into();
    s.http.workers = 2;
    s.engine.threads = 2;
    s.engine.shards = 4;
    s.auth.users_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/demo-users.toml");
    s.demo.data_file = String::new();
    s.store.backend = loyalty::config::StoreBackend::Redis;
    s.store.url = urls;
    s.store.key_prefix = prefix.into();
    s
}

/// Starts two instances with `settings` (each gets its own copy).
pub async fn spawn_pair(settings: Settings) -> Pair {
    let mut apps = Vec::new();
    for _ in 0..2 {
        let s = settings.clone();
        let app = tokio::task::spawn_blocking(move || RunningApp::spawn(s))
            .await
            .expect("join")
            .expect("the server starts");
        apps.push(app);
    }
    let bases = apps
        .iter()
        .map(|a| format!("http://127.0.0.1:{}", a.port))
        .collect();
    Pair { apps, bases }
}

impl Pair {
    pub fn stop(self) {
        for app in self.apps {
            app.stop();
        }
    }
}
