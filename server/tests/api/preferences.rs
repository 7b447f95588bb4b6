use reqwest::Method;
use serde_json::json;

use crate::backend_tests;
use crate::common::{Backend, TestServer, error_code};

backend_tests!(preferences_round_trip_and_validation);

async fn preferences_round_trip_and_validation(backend: Backend) {
    let Some(srv) = TestServer::start(backend, |_| {}).await else {
        return;
    };
    let key = srv.tenant("Acme").await;
    let path = "/api/users/ana@example.com/preferences";

    let (status, defaults) = srv.get(path, &key).await;
    assert_eq!(status, 200);
    assert_eq!(
        defaults,
        json!({"theme": "system", "locale": "en-US", "currency": "USD", "notifications": {"email": true, "sms": false, "push": true}})
    );

    let wanted = json!({"theme": "dark", "locale": "de-DE", "currency": "EUR", "notifications": {"email": false, "sms": true, "push": false}});
    let (status, saved) = srv.send(Method::PUT, path, &key, wanted.clone()).await;
    assert_eq!((status, &saved), (200, &wanted));
    // Visible at once despite the 15-minute cache, and stored (a second PUT updates).
    assert_eq!(srv.get(path, &key).await.1, wanted);
    let lighter = json!({"theme": "light", "locale": "de-DE", "currency": "EUR", "notifications": {"email": false, "sms": true, "push": false}});
    srv.send(Method::PUT, path, &key, lighter.clone()).await;
    assert_eq!(srv.get(path, &key).await.1, lighter);
    // Another user of the same tenant still has defaults.
    assert_eq!(
        srv.get("/api/users/bob/preferences", &key).await.1,
        defaults
    );

    let invalid = [
        json!({"theme": "neon", "locale": "en", "currency": "USD", "notifications": {"email": true, "sms": true, "push": true}}),
        json!({"theme": "dark", "locale": "english!", "currency": "USD", "notifications": {"email": true, "sms": true, "push": true}}),
        json!({"theme": "dark", "locale": "en", "currency": "dollars", "notifications": {"email": true, "sms": true, "push": true}}),
        json!({"theme": "dark", "locale": "en", "currency": "USD"}),
        json!({"theme": "dark", "locale": "en", "currency": "USD", "notifications": {"email": "yes", "sms": true, "push": true}}),
    ];
    for body in invalid {
        let (status, error) = srv.send(Method::PUT, path, &key, body.clone()).await;
        assert_eq!(
            (status, error_code(&error)),
            (422, "validation_failed"),
            "{body}"
        );
    }
    assert_eq!(
        srv.get(path, &key).await.1,
        lighter,
        "rejected updates change nothing"
    );
    let (status, error) = srv.get("/api/users/bad%20id/preferences", &key).await;
    assert_eq!((status, error_code(&error)), (400, "invalid_user_id"));
    srv.stop().await.unwrap();
}
