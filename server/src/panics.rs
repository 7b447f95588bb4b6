//! A panic while handling a request becomes a 500 in the API's error format, with the
//! panic's message in the access log (never in the response), instead of hyper
//! dropping the connection with no answer and no log line.

use std::any::Any;

use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::AppError;

pub type Answer = fn(Box<dyn Any + Send + 'static>) -> Response;

/// The layer to put around the router (inside the edge, which logs and counts it).
pub fn layer() -> CatchPanicLayer<Answer> {
    CatchPanicLayer::custom(answer as Answer)
}

fn answer(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    AppError::internal(anyhow::anyhow!("the handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use crate::error::InternalErrorDetail;

    async fn boom() -> &'static str {
        let numbers: Vec<u32> = Vec::new();
        // Indexing out of bounds: the kind of bug the layer is for.
        if numbers[3] > 0 {
            "never"
        } else {
            "never either"
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_json_and_keeps_the_detail_for_the_log() {
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(super::layer());
        let request = Request::get("/boom").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = response.extensions().get::<InternalErrorDetail>().cloned();
        let detail = detail.expect("the panic's detail for the access log").0;
        assert!(detail.contains("index out of bounds"), "{detail}");
        let body = to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["message"], "internal server error");
        let request = Request::get("/fine").body(Body::empty()).unwrap();
        assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK);
    }
}
