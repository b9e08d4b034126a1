//! [`ConsulServer`]: a [`SimConsul`] served over HTTP, one listener per agent address, all on
//! one port (`127.0.0.1:8500` for the server, `127.0.0.2:8500` for a client agent, …), as a real
//! cluster on loopback would be. The local address a connection arrives on picks the agent that
//! answers ([`SimConsul::handle`]'s `agent`).
//!
//! An agent that the model says is down ([`SimConsul::is_up`]) drops its connections without
//! answering, so clients see a transport error as they would from a stopped agent (not the
//! model's placeholder `503`). Agents added to the model after [`ConsulServer::start`] have no
//! listener. Answers are entirely the model's.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use consular_sim::SimConsul;
use smol::net::TcpStream;

use super::connection::{self, HandlerAction};
use super::http1::HttpRequest;
use super::{bind_loopback, url_host, ServerThread};

/// Tries to find a port free on every agent address before giving up.
const PORT_ATTEMPTS: usize = 20;

/// A [`SimConsul`] served over HTTP at every agent address it has, on one port, on a background
/// thread with its own executor. Dropping it stops the thread and closes every listener.
#[derive(Debug)]
pub struct ConsulServer {
    // Dropped first: stopping the thread drops every connection task.
    _thread: ServerThread,
    port: u16,
    /// The first agent's (the server's) address.
    first_agent: IpAddr,
    model: Arc<Mutex<SimConsul>>,
}

impl ConsulServer {
    /// Serves `consul` on `port` at every agent address the model has (each a loopback IP
    /// address); `port` 0 picks one that is free on all of them.
    pub fn start(consul: SimConsul, port: u16) -> io::Result<ConsulServer> {
        let agents = consul
            .agents()
            .into_iter()
            .map(|(_, address)| {
                address.parse::<IpAddr>().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("agent address {address:?} is not an IP address"),
                    )
                })
            })
            .collect::<io::Result<Vec<IpAddr>>>()?;
        let Some(&first_agent) = agents.first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the simulated Consul has no agents",
            ));
        };
        let listeners = bind_all(&agents, port)?;
        let port = listeners[0].0.local_addr()?.port();
        let model = Arc::new(Mutex::new(consul));
        let serving = model.clone();
        let thread = ServerThread::spawn(
            "simulated-consul",
            listeners,
            async {},
            move |connection, agent: IpAddr| serve_connection(serving.clone(), connection, agent),
        )?;
        Ok(ConsulServer {
            _thread: thread,
            port,
            first_agent,
            model,
        })
    }

    /// The port every agent listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://<first agent address>:PORT`, the server agent.
    pub fn url(&self) -> String {
        format!("http://{}:{}", url_host(self.first_agent), self.port)
    }

    /// Runs `f` on the model. `f` must not call back into this server (the model is locked).
    pub fn with<R>(&self, f: impl FnOnce(&mut SimConsul) -> R) -> R {
        f(&mut lock(&self.model))
    }
}

fn lock(model: &Mutex<SimConsul>) -> MutexGuard<'_, SimConsul> {
    // A panic inside `with` leaves the model as the closure left it, which is still a model.
    model.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One listener per agent, all on the same port: `port`, or the first port free on all of them.
fn bind_all(agents: &[IpAddr], port: u16) -> io::Result<Vec<(TcpListener, IpAddr)>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let first = bind_loopback(SocketAddr::new(agents[0], port))?;
        let chosen = first.local_addr()?.port();
        let mut listeners = vec![(first, agents[0])];
        let mut taken = None;
        for &agent in &agents[1..] {
            match bind_loopback(SocketAddr::new(agent, chosen)) {
                Ok(listener) => listeners.push((listener, agent)),
                Err(error) => {
                    taken = Some(error);
                    break;
                }
            }
        }
        match taken {
            None => return Ok(listeners),
            // A port picked for us was free on the first address only: pick another.
            Some(error)
                if port == 0
                    && error.kind() == io::ErrorKind::AddrInUse
                    && attempt < PORT_ATTEMPTS => {}
            Some(error) => return Err(error),
        }
    }
}

/// Serves one connection to the agent at `agent`; a down agent hangs up.
async fn serve_connection(model: Arc<Mutex<SimConsul>>, connection: TcpStream, agent: IpAddr) {
    let agent = agent.to_string();
    if !lock(&model).is_up(&agent) {
        return;
    }
    let answer = |request: &HttpRequest| {
        let mut model = lock(&model);
        if !model.is_up(&agent) {
            return HandlerAction::HangUp;
        }
        match request.model_method() {
            Some(method) => {
                HandlerAction::Respond(model.handle(&agent, method, &request.target, &request.body))
            }
            None => HandlerAction::Respond(connection::plain(
                405,
                "method not supported by the simulator",
            )),
        }
    };
    // Consul never takes a connection over.
    let _ = connection::serve(connection, &[], answer).await;
}
