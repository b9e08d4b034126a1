//! [`Outbound`] sends one core [`Request`] and reports its outcome as the core expects it:
//! a [`Response`] with any status and the whole body, or a [`TransportError`].
//!
//! It adds the JSON headers every consular request carries, the peer's credentials, and enforces
//! the request's timeout (connect, TLS, request and whole response). Connections and pooling live
//! in [`crate::h1_client`]; URLs in [`crate::endpoints`]. Retries and fallbacks are the core's call.

use std::sync::Arc;

use consular_core::{Method, Request, Response, TransportError};
use rustls::ClientConfig;
use smol::future;
use smol::Timer;
use surf::http::{Body, Method as HttpMethod};

use crate::endpoints::Endpoints;
use crate::h1_client::{ConnectError, H1Client};

/// Sends the core's requests over surf with the [`H1Client`] backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: surf::Client,
    endpoints: Arc<Endpoints>,
}

impl Outbound {
    /// A sender for `endpoints`, trusting the roots in `tls` for https peers.
    pub fn new(endpoints: Endpoints, tls: Arc<ClientConfig>) -> Self {
        Outbound {
            client: surf::Client::with_http_client(H1Client::new(tls)),
            endpoints: Arc::new(endpoints),
        }
    }

    /// Sends `request` and waits for the whole response, at most `request.timeout`.
    pub async fn execute(&self, request: &Request) -> Result<Response, TransportError> {
        let exchange = self.exchange(request);
        let deadline = async {
            Timer::after(request.timeout).await;
            Err(TransportError::Timeout)
        };
        future::or(exchange, deadline).await
    }

    async fn exchange(&self, request: &Request) -> Result<Response, TransportError> {
        let destination = self
            .endpoints
            .destination(&request.target, &request.path_and_query)
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        let mut http = surf::Request::new(http_method(request.method), destination.url);
        if let Some(body) = &request.body {
            http.set_body(Body::from_bytes(body.clone()));
        }
        // After the body: setting a body would otherwise pick its own content type.
        http.insert_header("Content-Type", "application/json");
        http.insert_header("Accept", "application/json");
        for (name, value) in destination.headers {
            http.insert_header(name, value);
        }
        let mut response = self.client.send(http).await.map_err(transport_error)?;
        let body = response.body_bytes().await.map_err(transport_error)?;
        Ok(Response {
            status: response.status().into(),
            body,
        })
    }
}

fn http_method(method: Method) -> HttpMethod {
    match method {
        Method::Get => HttpMethod::Get,
        Method::Put => HttpMethod::Put,
        Method::Post => HttpMethod::Post,
        Method::Delete => HttpMethod::Delete,
    }
}

/// Connect failures are tagged by [`H1Client`]; everything else broke an open connection.
fn transport_error(error: surf::Error) -> TransportError {
    match error.downcast_ref::<ConnectError>() {
        Some(connect) => TransportError::Connect(connect.to_string()),
        None => TransportError::Io(error.to_string()),
    }
}
