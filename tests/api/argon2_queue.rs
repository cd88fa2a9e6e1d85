//! The argon2 queue under send-and-hang-up floods (issue 28, item 3): 1,000
//! such requests made an uncached admin wait 8 s, because every one was
//! verified in turn after its client had gone.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::abuse_support::*;
use crate::helpers::*;

/// Sends one request with a wrong password from `from` and hangs up.
async fn send_and_hang_up(from: String, port: u16, i: usize) {
    let Ok(mut conn) = connect_from(&from, port).await else {
        return;
    };
    let credentials = base64_basic(&format!("user-{i}"), &format!("guess-{i}"));
    let request = format!(
        "GET /api/card/balance/by/7000000000001 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\n\r\n"
    );
    let _ = conn.write_all(request.as_bytes()).await;
    // Dropped: the client is gone.
}

fn base64_basic(login: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
}

#[tokio::test]
async fn a_real_login_succeeds_while_1000_hung_up_requests_are_queued() {
    // One argon2 thread: today's queue of 1,000 takes 20 s or more.
    let app = spawn_with(|s| s.auth.max_concurrent_verifications = 1).await;
    let port = port_of(&app);
    // 100 addresses, 10 requests each.
    let flood: Vec<_> = (0..1000)
        .map(|i| tokio::spawn(send_and_hang_up(format!("127.0.1.{}", 1 + i / 10), port, i)))
        .collect();
    for f in flood {
        f.await.unwrap();
    }
    // As a till does: a 503 Overloaded is retried after its Retry-After.
    // The server may not have seen every hang-up yet when the admin comes
    // (a loaded machine), so the queue can be full for a moment; what must
    // not happen is a wait for 1,000 verifications nobody wants.
    let login = async {
        loop {
            let answer = app
                .send(
                    app.client
                        .get(app.url("/api/card/balance/by/7000000000001"))
                        .basic_auth(ADMIN, Some(password(ADMIN))),
                )
                .await;
            if (answer.status, answer.key()) != (503, "Overloaded") {
                return answer;
            }
            let wait = answer
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    };
    let answer = tokio::time::timeout(Duration::from_secs(15), login)
        .await
        .expect("the admin was not answered within 15 s: the hung-up requests were verified first");
    answer.expect(404, "CannotFindCardNumber");
}
