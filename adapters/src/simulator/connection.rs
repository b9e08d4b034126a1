//! One simulator connection: [`serve`] reads requests with [`super::http1`], asks a handler what
//! to do with each ([`HandlerAction`]), and writes `Content-Length` framed answers, keeping the
//! connection alive unless the client asks to close, until the handler hangs up or takes the
//! connection over (an event stream).
//!
//! Not here: what to answer (the models), streaming (`super::marathon`), parsing and writing
//! HTTP/1.1 (`super::http1`), or anything a real server needs beyond loopback tests: there are
//! no timeouts and no connection limits. A request that cannot be read is answered with
//! [`Http1Error::status`] and the connection closed.

use consular_sim::SimResponse;
use smol::io::{AsyncWriteExt, BufReader};
use smol::net::TcpStream;

use super::http1::{self, Http1Error, HttpRequest};

/// What a handler does with one request.
#[derive(Debug)]
pub(super) enum HandlerAction {
    /// Send this response; more requests may follow on the connection.
    Respond(SimResponse),
    /// Close the connection without answering.
    HangUp,
    /// Hand the connection to the caller of [`serve`] (e.g. for an event stream).
    TakeOver,
}

/// A connection a handler took over, with the request that asked for it.
#[derive(Debug)]
pub(super) struct TakenOver {
    pub request: HttpRequest,
    /// For writing.
    pub connection: TcpStream,
    /// For reading: may hold bytes the client sent after the request.
    pub reader: BufReader<TcpStream>,
}

/// Serves requests on `connection` with `handle` (also given the extra headers every response
/// carries) until the client leaves, the handler hangs up, or it takes the connection over.
pub(super) async fn serve(
    connection: TcpStream,
    extra_headers: &[(&str, &str)],
    mut handle: impl FnMut(&HttpRequest) -> HandlerAction,
) -> Option<TakenOver> {
    let mut reader = BufReader::new(connection.clone());
    let mut connection = connection;
    loop {
        let request = match http1::read_request(&mut reader).await {
            Ok(Some(request)) => request,
            Ok(None) | Err(Http1Error::Io(_) | Http1Error::Truncated(_)) => return None,
            Err(bad) => {
                let response = plain(bad.status(), &bad.to_string());
                let _ = write(&mut connection, &response, extra_headers, true).await;
                return None;
            }
        };
        let response = match handle(&request) {
            HandlerAction::Respond(response) => response,
            HandlerAction::HangUp => return None,
            HandlerAction::TakeOver => {
                return Some(TakenOver {
                    request,
                    connection,
                    reader,
                })
            }
        };
        let written = write(&mut connection, &response, extra_headers, request.close);
        if written.await.is_err() || request.close {
            return None;
        }
    }
}

/// Writes `response` in one piece and flushes it.
async fn write(
    connection: &mut TcpStream,
    response: &SimResponse,
    extra_headers: &[(&str, &str)],
    close: bool,
) -> std::io::Result<()> {
    let bytes = http1::sim_response_bytes(response, extra_headers, close);
    connection.write_all(&bytes).await?;
    connection.flush().await
}

/// A plain-text response from the simulator itself (not from a model).
pub(super) fn plain(status: u16, message: &str) -> SimResponse {
    SimResponse {
        status,
        content_type: "text/plain; charset=utf-8",
        body: format!("{message}\n").into_bytes(),
        headers: Vec::new(),
    }
}
