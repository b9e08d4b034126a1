//! [`Outbound`] sends one core [`Request`] and reports its outcome as the core expects it:
//! a [`Response`] with any status and the whole body, or a [`TransportError`]. It also opens
//! Marathon's event stream, whose body is handed on piece by piece ([`StreamingResponse`]), and
//! follows a standby's redirect of it only to the configured Marathon or the leader it names.
//!
//! It adds the JSON headers every consular request carries, the peer's credentials and TLS settings
//! (Consul's for the main Consul and every agent, Marathon's for Marathon), and enforces
//! the request's timeout (connect, TLS, request and whole response; for a stream, the head).
//! Connections and pooling live in [`crate::h1_client`]; URLs in [`crate::endpoints`]. Retries and
//! fallbacks are the core's call.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use consular_core::{Method, Request, Response, Target, TransportError};
use smol::io::AsyncReadExt;
use smol::{future, Timer};
use surf::http::url::Url;
use surf::http::{Body, Method as HttpMethod};

use crate::endpoints::{
    leader_verdict, redact_userinfo, Destination, Endpoints, LeaderAnswer, StreamRedirect,
};
use crate::h1_client::{ConnectError, H1Client, ResponseLimit, ResponseTooLarge, StreamBody};
use crate::tls::{PeerKind, PeerTls};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
/// Redirects followed when opening a stream (a standby Marathon 1.7+ redirects to the leader).
const MAX_STREAM_REDIRECTS: usize = 5;
/// Where Marathon names its leader, asked before the stream follows a redirect to another host.
const LEADER_PATH: &str = "/v2/leader";
/// Largest `/v2/leader` answer read; Marathon's is one short JSON object.
const MAX_LEADER_ANSWER_BYTES: usize = 4 * 1024;
/// Largest piece of a streaming body handed on at once.
const STREAM_CHUNK_BYTES: usize = 16 * 1024;
/// Largest buffer reserved up front from a response's `Content-Length`; a longer body grows it.
const MAX_RESERVED_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Sends the core's requests over surf with the [`H1Client`] backend. Cheap to clone.
///
/// Each kind of peer has a client of its own, with its own TLS settings and connection pool, so a
/// client certificate goes only to the peers of its kind, and a connection opened for one kind
/// (with its certificate) is never reused for the other, even on the same host and port.
#[derive(Debug, Clone)]
pub struct Outbound {
    consul: surf::Client,
    marathon: surf::Client,
    endpoints: Arc<Endpoints>,
}

impl Outbound {
    /// A sender for `endpoints`, speaking TLS to Consul and its agents with `consul_tls` and to
    /// Marathon with `marathon_tls`.
    pub fn new(endpoints: Endpoints, consul_tls: PeerTls, marathon_tls: PeerTls) -> Self {
        Outbound {
            consul: surf::Client::with_http_client(H1Client::new(consul_tls)),
            marathon: surf::Client::with_http_client(H1Client::new(marathon_tls)),
            endpoints: Arc::new(endpoints),
        }
    }

    /// The client for the kind of peer `target` is.
    fn client(&self, target: &Target) -> &surf::Client {
        match PeerKind::of(target) {
            PeerKind::Consul => &self.consul,
            PeerKind::Marathon => &self.marathon,
        }
    }

    /// Sends `request` and waits for the whole response, at most `request.timeout`.
    pub async fn execute(&self, request: &Request) -> Result<Response, TransportError> {
        within(request.timeout, async {
            let mut http = self.http_request(request, JSON)?;
            http.set_ext(ResponseLimit(request.response_limit));
            let client = self.client(&request.target);
            let mut response = client.send(http).await.map_err(transport_error)?;
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
    ///
    /// The request carries Marathon's credentials, so a redirect is followed only where
    /// [`Endpoints::stream_redirect`] allows: never from https to http, and only to the configured
    /// Marathon's host:port or to the leader the configured Marathon names at `GET /v2/leader`
    /// (asked at most once per call, with its credentials). Anything else is a
    /// [`TransportError::Connect`] saying why, and the refused host sees no request at all.
    pub async fn open_stream(
        &self,
        request: &Request,
    ) -> Result<StreamingResponse, TransportError> {
        within(request.timeout, async {
            let mut destination = self.destination(request)?;
            let mut leader = None;
            for _ in 0..=MAX_STREAM_REDIRECTS {
                let mut http = http_request(request, destination.clone(), EVENT_STREAM);
                http.set_ext(StreamBody);
                let client = self.client(&request.target);
                let mut response = client.send(http).await.map_err(transport_error)?;
                let status: u16 = response.status().into();
                let location = response.header("Location").map(|l| l.as_str().to_owned());
                match location.filter(|_| matches!(status, 301 | 302 | 303 | 307 | 308)) {
                    Some(location) => {
                        let next = destination.url.join(&location).map_err(|e| {
                            let location = redact_userinfo(&location);
                            TransportError::Io(format!("bad redirect to {location:?}: {e}"))
                        })?;
                        self.allow_redirect(request, &destination.url, &next, &mut leader)
                            .await?;
                        // The credentials stay: `next` is the configured Marathon or its leader.
                        destination.url = next;
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

    /// `Ok` if the stream may follow the redirect from `from` to `to` with its credentials;
    /// asks the configured Marathon for its leader when `to` is another host, keeping the answer
    /// in `leader` for later hops.
    async fn allow_redirect(
        &self,
        request: &Request,
        from: &Url,
        to: &Url,
        leader: &mut Option<LeaderAnswer>,
    ) -> Result<(), TransportError> {
        let verdict = match self.endpoints.stream_redirect(&request.target, from, to) {
            StreamRedirect::ToConfigured => Ok(()),
            StreamRedirect::Refused(refusal) => Err(refusal),
            StreamRedirect::ToOtherHost(host_port) => {
                let answer = match leader.take() {
                    Some(answer) => answer,
                    None => self.ask_leader().await,
                };
                let verdict = leader_verdict(&host_port, to.scheme(), &answer);
                *leader = Some(answer);
                verdict
            }
        };
        verdict.map_err(|refusal| TransportError::Connect(refusal.to_string()))
    }

    /// `GET /v2/leader` at the configured Marathon (its path prefix and credentials included).
    async fn ask_leader(&self) -> LeaderAnswer {
        let destination = match self.endpoints.destination(&Target::Marathon, LEADER_PATH) {
            Ok(destination) => destination,
            Err(e) => return LeaderAnswer::Unknown(e.to_string()),
        };
        let mut http = surf::Request::new(HttpMethod::Get, destination.url);
        http.set_ext(ResponseLimit(MAX_LEADER_ANSWER_BYTES));
        http.insert_header("Accept", JSON);
        for (name, value) in destination.headers {
            http.insert_header(name, value);
        }
        let mut response = match self.marathon.send(http).await {
            Ok(response) => response,
            Err(e) => {
                return LeaderAnswer::Unknown(format!("GET {LEADER_PATH}: {}", transport_error(e)))
            }
        };
        let status: u16 = response.status().into();
        // One byte more than allowed, to tell a full answer from a cut one.
        let mut body = Vec::new();
        let read = response
            .take_body()
            .take(MAX_LEADER_ANSWER_BYTES as u64 + 1)
            .read_to_end(&mut body)
            .await;
        if let Err(e) = read {
            return LeaderAnswer::Unknown(format!("GET {LEADER_PATH}: {e}"));
        }
        if status != 200 {
            return LeaderAnswer::Unknown(format!("GET {LEADER_PATH} answered {status}"));
        }
        if body.len() > MAX_LEADER_ANSWER_BYTES {
            return LeaderAnswer::Unknown(format!(
                "GET {LEADER_PATH} answered more than {MAX_LEADER_ANSWER_BYTES} bytes"
            ));
        }
        // Marathon answers `{"leader": "host:port"}` and nothing else.
        match Body::from_bytes(body)
            .into_json::<BTreeMap<String, String>>()
            .await
        {
            Ok(mut fields) => match fields.remove("leader") {
                Some(leader) => LeaderAnswer::Named(leader),
                None => LeaderAnswer::Unknown(format!("GET {LEADER_PATH} named no leader")),
            },
            Err(_) => LeaderAnswer::Unknown(format!(
                "GET {LEADER_PATH} answered something other than {{\"leader\": \"host:port\"}}"
            )),
        }
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
