//! The pure Marathon and Consul models of `consular-sim` served over real HTTP on loopback, for
//! end-to-end tests and `consular demo`; and [`http1`], the HTTP/1.1 helper the simulators share
//! with the workspace's tests. Behind the `simulator` feature, off by default: a production build
//! of the adapters (and of `consular --no-default-features`) holds none of it.
//!
//! **What lives here:** [`MarathonServer`] (the REST API, the `/v2/events` stream with heartbeats,
//! and HTTP callback delivery), [`ConsulServer`] (one listener per agent address, so a request's
//! local address picks the agent), the thread each server runs on, the loop that serves one
//! connection (`connection`), and [`http1`].
//!
//! **What doesn't:** what Marathon or Consul answer. Every answer comes from
//! [`consular_sim::SimMarathon::handle`] / [`consular_sim::SimConsul::handle`]; the servers only
//! add what a pure handler cannot do: streaming, pushing events, timers, and closing connections.
//!
//! Why not tide, like [`crate::server`]: Marathon's event stream has neither `Content-Length` nor
//! chunked framing (it ends when the connection closes), and a down Consul agent must drop the
//! connection without answering. tide can do neither, so the simulators speak HTTP/1.1 themselves,
//! through [`http1`], which checks heads with the production [`crate::http_guard`].
//!
//! Every listener binds a loopback address; anything else is refused.

mod connection;
mod consul;
pub mod http1;
mod marathon;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::thread::JoinHandle;

use smol::channel::{self, Sender};
use smol::net::TcpStream;
use smol::{future, Async, Executor};

pub use consul::ConsulServer;
pub use marathon::{MarathonServer, SSE_HEARTBEAT_PERIOD};

/// A server's background thread with its own executor. Dropping it stops the executor, which
/// drops every task and so closes every listener and connection the tasks own.
#[derive(Debug)]
struct ServerThread {
    /// Closed on drop; the thread stops when it sees that.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Starts thread `name` accepting on every listener; each connection runs as
    /// `handle(connection, tag of its listener)`. `background` runs alongside until the stop.
    fn spawn<T, H, F>(
        name: &str,
        listeners: Vec<(TcpListener, T)>,
        background: impl Future<Output = ()> + Send + 'static,
        handle: H,
    ) -> io::Result<ServerThread>
    where
        T: Clone + Send + 'static,
        H: Fn(TcpStream, T) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let listeners = listeners
            .into_iter()
            .map(|(listener, tag)| Ok((Async::new(listener)?, tag)))
            .collect::<io::Result<Vec<_>>>()?;
        let (stop, stopped) = channel::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let executor = Executor::new();
                let (accepted_tx, accepted) = channel::unbounded();
                for (listener, tag) in listeners {
                    let accepted_tx = accepted_tx.clone();
                    executor
                        .spawn(async move {
                            while let Ok((connection, _)) = listener.accept().await {
                                let _ = accepted_tx
                                    .send((TcpStream::from(connection), tag.clone()))
                                    .await;
                            }
                        })
                        .detach();
                }
                executor.spawn(background).detach();
                let serving = async {
                    while let Ok((connection, tag)) = accepted.recv().await {
                        executor.spawn(handle(connection, tag)).detach();
                    }
                };
                let stop = async {
                    // Err once the sender is dropped: that is the stop.
                    let _ = stopped.recv().await;
                };
                smol::block_on(executor.run(future::or(serving, stop)));
            })?;
        Ok(ServerThread {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread has already been reported there.
            let _ = thread.join();
        }
    }
}

/// Binds `addr` if it is a loopback address; the simulators never listen anywhere else.
fn bind_loopback(addr: SocketAddr) -> io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the simulators listen on loopback addresses only, not {addr}"),
        ));
    }
    TcpListener::bind(addr)
}

/// `addr` as it appears in a URL (IPv6 in brackets).
fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}
