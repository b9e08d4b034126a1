//! [`Outbound`] sends one core [`Request`] and reports its outcome as the core expects it:
//! a [`Response`] with any status and the whole body, or a [`TransportError`]. It also opens
//! Marathon's event stream, whose body is handed on piece by piece ([`StreamingResponse`]).
//!
//! It adds the JSON headers every consular request carries, the peer's credentials, and enforces
//! the request's timeout (connect, TLS, request and whole response; for a stream, the head).
//! Connections and pooling live in [`crate::h1_client`]; URLs in [`crate::endpoints`]. Retries and
//! fallbacks are the core's call.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use consular_core::{Method, Request, Response, TransportError};
use rustls::ClientConfig;
use smol::io::AsyncReadExt;
use smol::{future, Timer};
use surf::http::{Body, Method as HttpMethod};

use crate::endpoints::{Destination, Endpoints};
use crate::h1_client::{ConnectError, H1Client, ResponseLimit, ResponseTooLarge, StreamBody};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
/// Redirects followed when opening a stream (a standby Marathon 1.7+ redirects to the leader).
const MAX_STREAM_REDIRECTS: usize = 5;
/// Largest piece of a streaming body handed on at once.
const STREAM_CHUNK_BYTES: usize = 16 * 1024;
/// Largest buffer reserved up front from a response's `Content-Length`; a longer body grows it.
const MAX_RESERVED_BODY_BYTES: usize = 64 * 1024 * 1024;

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
        within(request.timeout, async {
            let mut http = self.http_request(request, JSON)?;
            http.set_ext(ResponseLimit(request.response_limit));
            let mut response = self.client.send(http).await.map_err(transport_error)?;
            // Reserved at its full length when known: Marathon's app list can be megabytes, and
            // a doubling buffer would hold up to twice that. One byte more, because `read_to_end`
            // doubles a full buffer before it can see the end of the body. The client already
            // refused a body longer than the limit.
            let reserve = response
                .len()
                .unwrap_or(0)
                .min(request.response_limit)
                .min(MAX_RESERVED_BODY_BYTES);
            let mut body = Vec::with_capacity(reserve + 1);
            response
                .take_body()
                .read_to_end(&mut body)
                .await
                .map_err(|e| TransportError::Io(e.to_string()))?;
            Ok(Response {
                status: response.status().into(),
                body,
            })
        })
        .await
    }

    /// Sends `request` asking for `text/event-stream` and waits at most `request.timeout` for the
    /// response head, following redirects (a standby Marathon sends the stream to its leader);
    /// the body then streams for as long as the peer keeps it open.
    pub async fn open_stream(
        &self,
        request: &Request,
    ) -> Result<StreamingResponse, TransportError> {
        within(request.timeout, async {
            let mut destination = self.destination(request)?;
            for _ in 0..=MAX_STREAM_REDIRECTS {
                let mut http = http_request(request, destination.clone(), EVENT_STREAM);
                http.set_ext(StreamBody);
                let mut response = self.client.send(http).await.map_err(transport_error)?;
                let status: u16 = response.status().into();
                let location = response.header("Location").map(|l| l.as_str().to_owned());
                match location.filter(|_| matches!(status, 301 | 302 | 303 | 307 | 308)) {
                    Some(location) => {
                        destination.url = destination.url.join(&location).map_err(|e| {
                            TransportError::Io(format!("bad redirect to {location:?}: {e}"))
                        })?;
                    }
                    None => {
                        return Ok(StreamingResponse {
                            status,
                            body: response.take_body(),
                        })
                    }
                }
            }
            Err(TransportError::Io(format!(
                "more than {MAX_STREAM_REDIRECTS} redirects"
            )))
        })
        .await
    }

    /// The surf request for `request`: URL and credentials of its target, JSON content type.
    fn http_request(
        &self,
        request: &Request,
        accept: &str,
    ) -> Result<surf::Request, TransportError> {
        Ok(http_request(request, self.destination(request)?, accept))
    }

    fn destination(&self, request: &Request) -> Result<Destination, TransportError> {
        self.endpoints
            .destination(&request.target, &request.path_and_query)
            .map_err(|e| TransportError::Connect(e.to_string()))
    }
}

/// `request` sent to `destination`, with its credentials and a JSON content type.
fn http_request(request: &Request, destination: Destination, accept: &str) -> surf::Request {
    let mut http = surf::Request::new(http_method(request.method), destination.url);
    if let Some(body) = &request.body {
        http.set_body(Body::from_bytes(body.clone()));
    }
    // After the body: setting a body would otherwise pick its own content type.
    http.insert_header("Content-Type", JSON);
    http.insert_header("Accept", accept);
    for (name, value) in destination.headers {
        http.insert_header(name, value);
    }
    http
}

/// A response whose body is still arriving, from [`Outbound::open_stream`].
#[derive(Debug)]
pub struct StreamingResponse {
    status: u16,
    body: Body,
}

impl StreamingResponse {
    /// The response's status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The next piece of the body as soon as some of it arrives; `None` once the body ended.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        let mut buffer = vec![0; STREAM_CHUNK_BYTES];
        let read = self
            .body
            .read(&mut buffer)
            .await
            .map_err(|e| TransportError::Io(e.to_string()))?;
        buffer.truncate(read);
        Ok((read > 0).then_some(buffer))
    }
}

/// `future`, or [`TransportError::Timeout`] once `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    future: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    let deadline = async {
        Timer::after(timeout).await;
        Err(TransportError::Timeout)
    };
    future::or(future, deadline).await
}

fn http_method(method: Method) -> HttpMethod {
    match method {
        Method::Get => HttpMethod::Get,
        Method::Put => HttpMethod::Put,
        Method::Post => HttpMethod::Post,
        Method::Delete => HttpMethod::Delete,
    }
}

/// Connect failures and oversized bodies are tagged by [`H1Client`]; everything else (including
/// a response head it refused) broke an open connection.
fn transport_error(error: surf::Error) -> TransportError {
    if let Some(connect) = error.downcast_ref::<ConnectError>() {
        return TransportError::Connect(connect.to_string());
    }
    if let Some(too_large) = error.downcast_ref::<ResponseTooLarge>() {
        return TransportError::TooLarge(too_large.limit);
    }
    TransportError::Io(error.to_string())
}
