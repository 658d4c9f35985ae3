//! Secrets never appear in errors, even when the identity call (whose URL carries the client
//! secret) fails at the network level. Needs no sandbox: it talks to a closed local port.

use std::sync::Arc;
use std::time::Duration;

use drover_map::{
    LeadQuery, MapConnector, MarketoClient, MarketoConfig, RetryPolicy, Secret, Unlimited,
};

const SECRET: &str = "s3cr3t-VALUE-that-must-not-leak";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test]
async fn transport_errors_do_not_leak_the_secret() {
    install_crypto();
    // Bind then drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut config = MarketoConfig::new(
        format!("http://127.0.0.1:{port}"),
        "client-id",
        Secret::new(SECRET),
    );
    config.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    assert!(!format!("{config:?}").contains(SECRET));
    let client = MarketoClient::new(config, Arc::new(Unlimited)).expect("client");
    assert!(!format!("{client:?}").contains(SECRET));
    let err = client
        .fetch_leads(&LeadQuery {
            filter_type: "email".into(),
            values: vec!["a@example.com".into()],
            fields: vec![],
        })
        .await
        .expect_err("nobody listens");
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains(SECRET), "secret leaked: {shown}");
    assert!(!shown.contains("client_secret"), "URL leaked: {shown}");
    assert!(shown.contains("identity"), "{shown}");
    // The connector view says the same.
    let connector: Arc<dyn MapConnector> = Arc::new(client);
    assert_eq!(connector.usage().identity_calls, 2);
    assert_eq!(connector.usage().calls, 0);
}
