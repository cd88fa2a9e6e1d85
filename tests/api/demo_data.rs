//! The demo data set goes into the embedded store, so that a try-out's
//! first `curl` works, and into Redis only when `demo.load_into_redis`
//! asks: the default config left in a production deployment must not write
//! demo cards into the production store (issue 21, item 6). Runs on every
//! backend; the refusal is what the Redis runs check.

use crate::helpers::*;

const DEMO_CARD: &str = "7000000000001";

fn demo_file() -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("config/demo-data.json")
        .display()
        .to_string()
}

#[tokio::test]
async fn demo_data_goes_into_the_embedded_store_and_into_redis_only_when_asked() {
    let app = spawn_with(|s| s.demo.data_file = demo_file()).await;
    let r = app.balance(DEMO_CARD).await;
    if shared_store() {
        r.expect(404, "CannotFindCardNumber");
    } else {
        r.ok();
    }

    let app = spawn_with(|s| {
        s.demo.data_file = demo_file();
        s.demo.load_into_redis = true;
    })
    .await;
    app.balance(DEMO_CARD).await.ok();
}
