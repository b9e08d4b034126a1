//! Where each [`Target`] of the core lives on the network: parsing the `--marathon` and `--consul`
//! URLs, building the URL of one request, the credentials headers that go with it, and which
//! redirects of Marathon's event stream those credentials may follow.
//!
//! Of `--consul` only the scheme and authority are used, as consular 1.3.0 did. `--marathon` keeps its
//! path as a prefix too (DC/OS serves Marathon under `/service/marathon`). Userinfo on `--marathon`
//! becomes `Authorization: Basic`, or a DC/OS token `Authorization: token=…`; userinfo on `--consul`
//! is dropped, and an optional ACL token becomes `X-Consul-Token` on Consul and agent requests.
//! Tokens are checked before any header is built from them ([`check_token`]), and no error or
//! `Debug`/`Display` text of this module shows userinfo or a token ([`redact_userinfo`]).
//!
//! A stream redirect is judged by [`Endpoints::stream_redirect`] (no downgrade to http; the
//! configured Marathon's host:port, or another host only if it is the leader the configured
//! Marathon names, see [`leader_verdict`]). Sending requests, and asking for the leader, lives in
//! [`crate::outbound`]; nothing here does IO.

use std::fmt;

use consular_core::Target;
use surf::http::auth::BasicAuth;
use surf::http::url::{Host, Url};

/// Header carrying the Consul ACL token.
const CONSUL_TOKEN_HEADER: &str = "X-Consul-Token";

/// Why a `--marathon`/`--consul` URL, an agent host or a token cannot be used. The inputs these
/// carry are redacted ([`redact_userinfo`]) when the error is made, so no message holds a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The text is not a URL at all.
    #[error("expected an http or https URL, got {input:?} ({reason})")]
    NotAUrl {
        /// What was given, userinfo redacted.
        input: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A URL with a scheme other than `http` or `https`.
    #[error("expected an http or https URL, got {input:?} (scheme {scheme:?} is not supported)")]
    UnsupportedScheme {
        /// What was given, userinfo redacted.
        input: String,
        /// Its scheme, or `***` when it may be part of the userinfo (`alice:pw@host` parses with
        /// the scheme `alice`).
        scheme: String,
    },
    /// A token that cannot go into a header; the token itself is never part of the error.
    #[error("{kind} {problem}")]
    InvalidToken {
        /// Which token.
        kind: TokenKind,
        /// What is wrong with it.
        problem: TokenProblem,
    },
    /// A task host that is not a valid host name or IP address, so no agent URL can be built.
    #[error("cannot build an agent URL for host {host:?} ({reason})")]
    InvalidAgentHost {
        /// The host from the Marathon task.
        host: String,
        /// The parser's complaint.
        reason: String,
    },
}

/// Why [`BaseUrl::with_password`] refused a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRefusal {
    /// The URL names no user the password could belong to.
    #[error("the URL names no user (give it as http://user@host:port)")]
    NoUser,
    /// The URL carries a password of its own.
    #[error("the URL already has a password")]
    HasPassword,
}

/// Which credential a token is, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `X-Consul-Token`, for Consul and the agents.
    Consul,
    /// The DC/OS token sent to Marathon as `Authorization: token=…`.
    Marathon,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::Consul => "the Consul ACL token",
            TokenKind::Marathon => "the Marathon token",
        })
    }
}

/// What makes a token unusable in a header. Says where, never what: the text is a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    /// No characters at all.
    #[error("is empty")]
    Empty,
    /// A character outside `!`..=`~`: a space, a control character (a newline would start a new
    /// header), or non-ASCII.
    #[error("has a character that is not visible ASCII (0x21-0x7e) at position {position}")]
    NotVisibleAscii {
        /// 1-based position of the first such character.
        position: usize,
    },
}

/// Whether `token` may go into a header as is: non-empty, visible ASCII only (0x21–0x7e).
pub fn check_token(token: &str) -> Result<(), TokenProblem> {
    if token.is_empty() {
        return Err(TokenProblem::Empty);
    }
    match token.chars().position(|c| !matches!(c, '\x21'..='\x7e')) {
        Some(index) => Err(TokenProblem::NotVisibleAscii {
            position: index + 1,
        }),
        None => Ok(()),
    }
}

/// `input` with whatever may be userinfo replaced by `***`, for messages that echo a URL someone
/// gave: everything between `scheme://` (or the start, when there is none before it) and the last
/// `@` is hidden. The URL parser takes the last `@` as the end of the userinfo, and anything can
/// be in a password (`/`, `?`, `#`, more `@`), so this may hide a path too, but never shows a
/// password or a user name. Text without `@` is returned as is.
pub fn redact_userinfo(input: &str) -> String {
    let Some(at) = input.rfind('@') else {
        return input.to_owned();
    };
    let start = match input.find("://") {
        Some(separator) if separator + 3 <= at => separator + 3,
        _ => 0,
    };
    format!("{}***{}", &input[..start], &input[at..])
}

/// The scheme and authority of a configured peer, plus its userinfo.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl {
    scheme: &'static str,
    /// As it appears in a URL: lower-cased, IPv6 in brackets.
    host: String,
    /// `None` when the URL had no port or the scheme's default one.
    port: Option<u16>,
    /// Username and password, percent-decoded. Never printed.
    userinfo: Option<(String, String)>,
    /// The path without its trailing `/` (empty for none); only Marathon's is used.
    path: String,
}

impl BaseUrl {
    /// Parses an `http` or `https` URL. Its query and fragment are ignored.
    pub fn parse(input: &str) -> Result<Self, EndpointError> {
        let url = Url::parse(input).map_err(|e| EndpointError::NotAUrl {
            input: redact_userinfo(input),
            reason: e.to_string(),
        })?;
        let scheme = match url.scheme() {
            "http" => "http",
            "https" => "https",
            other => {
                let input = redact_userinfo(input);
                // Shown only while the redacted text still starts with it.
                let shown = input
                    .get(..other.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(other));
                return Err(EndpointError::UnsupportedScheme {
                    scheme: if shown {
                        other.to_owned()
                    } else {
                        "***".to_owned()
                    },
                    input,
                });
            }
        };
        // The URL parser rejects http(s) URLs without a host, so this is always `Some`.
        let host = url.host_str().unwrap_or_default().to_owned();
        let userinfo = (!url.username().is_empty() || url.password().is_some()).then(|| {
            (
                percent_decode(url.username()),
                percent_decode(url.password().unwrap_or_default()),
            )
        });
        Ok(BaseUrl {
            scheme,
            host,
            port: url.port(),
            userinfo,
            path: url.path().trim_end_matches('/').to_owned(),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme
    }

    /// The host as written in a URL (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, if the URL had a non-default one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The URL as configured, path included, with any userinfo shown as `***@`: for showing the
    /// effective settings.
    pub fn to_redacted_string(&self) -> String {
        let userinfo = if self.userinfo.is_some() { "***@" } else { "" };
        let authority = self.origin_with_host(&format!("{userinfo}{}", self.host));
        format!("{authority}{}", self.path)
    }

    /// This URL with `password` for the user its userinfo names (Basic auth for Marathon), for a
    /// password kept in a file rather than in the URL. Refused when there is no user to go with
    /// it, or when the URL has its own password already: one password, in one place.
    pub fn with_password(mut self, password: String) -> Result<Self, PasswordRefusal> {
        match &mut self.userinfo {
            None => Err(PasswordRefusal::NoUser),
            Some((user, _)) if user.is_empty() => Err(PasswordRefusal::NoUser),
            Some((_, given)) if !given.is_empty() => Err(PasswordRefusal::HasPassword),
            Some((_, given)) => {
                *given = password;
                Ok(self)
            }
        }
    }

    /// `scheme://host[:port]` with `host` swapped in, so agent URLs keep this scheme and port.
    fn origin_with_host(&self, host: &str) -> String {
        match self.port {
            Some(port) => format!("{}://{host}:{port}", self.scheme),
            None => format!("{}://{host}", self.scheme),
        }
    }

    fn origin(&self) -> String {
        self.origin_with_host(&self.host)
    }

    /// Host and port, the scheme's default port if none was given.
    fn host_port(&self) -> HostPort {
        let default = if self.scheme == "https" { 443 } else { 80 };
        HostPort {
            host: self.host.clone(),
            port: self.port.unwrap_or(default),
        }
    }
}

impl fmt::Debug for BaseUrl {
    /// Shows the origin only: the userinfo may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseUrl")
            .field("origin", &self.origin())
            .field("has_userinfo", &self.userinfo.is_some())
            .finish()
    }
}

impl fmt::Display for BaseUrl {
    /// The origin without userinfo, safe for logs and error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin())
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// A request's absolute URL and the extra headers its peer needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Destination {
    /// Origin of the peer followed by the core's path and query.
    pub url: Url,
    /// Credentials headers (`Authorization`, `X-Consul-Token`), name and value.
    pub headers: Vec<(&'static str, String)>,
}

impl fmt::Debug for Destination {
    /// Header values are credentials, so only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Destination")
            .field("url", &self.url.as_str())
            .field("headers", &names)
            .finish()
    }
}

/// The peers of one consular process: Marathon, the main Consul endpoint, and how to reach a
/// Consul agent on a task's host.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoints {
    marathon: BaseUrl,
    consul: BaseUrl,
    consul_token: Option<String>,
    marathon_token: Option<String>,
}

impl Endpoints {
    /// Endpoints without a Consul ACL token.
    pub fn new(marathon: BaseUrl, consul: BaseUrl) -> Self {
        Endpoints {
            marathon,
            consul,
            consul_token: None,
            marathon_token: None,
        }
    }

    /// Sends `token` to Marathon as DC/OS does (`Authorization: token=<token>`), instead of any
    /// Basic auth from the `--marathon` userinfo. A token that fails [`check_token`] makes every
    /// Marathon [`Endpoints::destination`] an [`EndpointError::InvalidToken`]: no header is built
    /// from it. Check it up front with [`check_token`] to report it at start.
    pub fn with_marathon_token(mut self, token: Option<String>) -> Self {
        self.marathon_token = token;
        self
    }

    /// Sends `token` as `X-Consul-Token` to the main Consul endpoint and to every agent. As with
    /// [`Endpoints::with_marathon_token`], a token failing [`check_token`] is never sent: the
    /// Consul and agent destinations become [`EndpointError::InvalidToken`].
    pub fn with_consul_token(mut self, token: Option<String>) -> Self {
        self.consul_token = token;
        self
    }

    /// The Marathon endpoint.
    pub fn marathon(&self) -> &BaseUrl {
        &self.marathon
    }

    /// The main Consul endpoint.
    pub fn consul(&self) -> &BaseUrl {
        &self.consul
    }

    /// Where a request for `target` with `path_and_query` (percent-encoded, starting with `/`) goes.
    pub fn destination(
        &self,
        target: &Target,
        path_and_query: &str,
    ) -> Result<Destination, EndpointError> {
        let mut headers = Vec::new();
        let origin = match target {
            Target::Marathon => {
                if let Some(token) = &self.marathon_token {
                    valid_token(TokenKind::Marathon, token)?;
                    headers.push(("Authorization", format!("token={token}")));
                } else if let Some((user, password)) = &self.marathon.userinfo {
                    let auth = BasicAuth::new(user, password);
                    headers.push(("Authorization", auth.value().as_str().to_owned()));
                }
                format!("{}{}", self.marathon.origin(), self.marathon.path)
            }
            Target::Consul => self.consul.origin(),
            Target::Agent(host) => self.consul.origin_with_host(&agent_host(host)?),
        };
        if matches!(target, Target::Consul | Target::Agent(_)) {
            if let Some(token) = &self.consul_token {
                valid_token(TokenKind::Consul, token)?;
                headers.push((CONSUL_TOKEN_HEADER, token.clone()));
            }
        }
        // Concatenating (rather than `Url::join`) keeps the origin even for a path like `//x`.
        let url = Url::parse(&format!("{origin}{path_and_query}")).map_err(|e| {
            // Without the query: the callback subscription's carries the events secret.
            let path = path_and_query.split('?').next().unwrap_or_default();
            EndpointError::NotAUrl {
                input: format!("{origin}{path}"),
                reason: e.to_string(),
            }
        })?;
        Ok(Destination { url, headers })
    }

    /// Whether Marathon's event stream, requested from `target` at `from`, may follow a redirect
    /// to `to` and take the request's credentials there. Only Marathon's stream is redirected
    /// (a standby Marathon 1.7+ sends it to the leader); `to` must keep https if `from` had it,
    /// carry no userinfo, and be the configured Marathon's host:port, or else
    /// [`StreamRedirect::ToOtherHost`], to be followed only after [`leader_verdict`] agrees.
    pub fn stream_redirect(&self, target: &Target, from: &Url, to: &Url) -> StreamRedirect {
        if !matches!(target, Target::Marathon) {
            return StreamRedirect::Refused(RedirectRefusal::NotMarathon);
        }
        let origin = origin_of(to);
        match (from.scheme(), to.scheme()) {
            ("https", "https") | ("http", "http" | "https") => {}
            ("https", "http") => {
                return StreamRedirect::Refused(RedirectRefusal::Downgrade { to: origin })
            }
            (_, other) => {
                return StreamRedirect::Refused(RedirectRefusal::UnsupportedScheme {
                    scheme: other.to_owned(),
                })
            }
        }
        if !to.username().is_empty() || to.password().is_some() {
            return StreamRedirect::Refused(RedirectRefusal::Userinfo { to: origin });
        }
        let Some(host_port) = HostPort::of_url(to) else {
            return StreamRedirect::Refused(RedirectRefusal::NoHost);
        };
        if host_port == self.marathon.host_port() {
            StreamRedirect::ToConfigured
        } else {
            StreamRedirect::ToOtherHost(host_port)
        }
    }
}

/// Whether `token` may be sent; [`EndpointError::InvalidToken`] names `kind` if not.
fn valid_token(kind: TokenKind, token: &str) -> Result<(), EndpointError> {
    check_token(token).map_err(|problem| EndpointError::InvalidToken { kind, problem })
}

/// A peer as a redirect is judged: lower-cased host (IPv6 in brackets) and port, the scheme's
/// default port when none is written, so `http://m` and `http://M:80` are the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// The host and port `url` connects to; `None` for a URL without a host or known port.
    pub fn of_url(url: &Url) -> Option<HostPort> {
        Some(HostPort {
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// Marathon's `/v2/leader` answer (`"host:port"`) read for a URL of `scheme`, whose default
    /// port applies if the answer has none. Anything but a bare host and port (userinfo, a path,
    /// a query) is not a leader: `None`.
    pub fn of_leader(leader: &str, scheme: &str) -> Option<HostPort> {
        let url = Url::parse(&format!("{scheme}://{leader}/")).ok()?;
        let bare = url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none();
        bare.then(|| HostPort::of_url(&url)).flatten()
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// What [`Endpoints::stream_redirect`] makes of a redirect, before anyone is asked who leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRedirect {
    /// To the configured Marathon's host:port: follow, with its credentials.
    ToConfigured,
    /// To another host: follow, with the credentials, only if the configured Marathon names it
    /// as its leader ([`leader_verdict`]).
    ToOtherHost(HostPort),
    /// Never follow.
    Refused(RedirectRefusal),
}

/// What the configured Marathon said at `GET /v2/leader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderAnswer {
    /// `{"leader": "host:port"}`.
    Named(String),
    /// No usable answer (404 "There is no leader", another status, an unreadable body, or the
    /// request failed); the text says which, without credentials.
    Unknown(String),
}

/// Whether a redirect to `to` (a host:port of a URL with `scheme`) goes to the leader `answer`
/// names; host names compare case-insensitively.
pub fn leader_verdict(
    to: &HostPort,
    scheme: &str,
    answer: &LeaderAnswer,
) -> Result<(), RedirectRefusal> {
    match answer {
        LeaderAnswer::Named(leader) => match HostPort::of_leader(leader, scheme) {
            Some(leader) if leader == *to => Ok(()),
            Some(leader) => Err(RedirectRefusal::NotTheLeader {
                to: to.to_string(),
                leader: leader.to_string(),
            }),
            None => Err(RedirectRefusal::LeaderUnknown {
                to: to.to_string(),
                why: "its /v2/leader answer is not a host:port".to_owned(),
            }),
        },
        LeaderAnswer::Unknown(why) => Err(RedirectRefusal::LeaderUnknown {
            to: to.to_string(),
            why: why.clone(),
        }),
    }
}

/// Why a redirect of the event stream is not followed. The texts name hosts and ports only,
/// never userinfo or a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefusal {
    /// Only Marathon's event stream follows redirects.
    #[error("refused a redirect of a stream that is not Marathon's")]
    NotMarathon,
    /// From https to http: the credentials would cross the network in clear text.
    #[error("refused a redirect from https to {to}: it would send the credentials unencrypted")]
    Downgrade {
        /// Scheme, host and port of the target.
        to: String,
    },
    /// Neither http nor https.
    #[error("refused a redirect to a {scheme:?} URL")]
    UnsupportedScheme {
        /// The target's scheme.
        scheme: String,
    },
    /// The target carries its own userinfo.
    #[error("refused a redirect to {to}: the URL carries userinfo")]
    Userinfo {
        /// Scheme, host and port of the target.
        to: String,
    },
    /// A target URL without a host or port.
    #[error("refused a redirect to a URL without a host")]
    NoHost,
    /// Another host than the one the configured Marathon names as its leader.
    #[error(
        "refused a redirect to {to}: neither the configured Marathon nor its leader ({leader})"
    )]
    NotTheLeader {
        /// Host and port of the target.
        to: String,
        /// Host and port of the leader.
        leader: String,
    },
    /// The configured Marathon did not say who leads.
    #[error("refused a redirect to {to}: not the configured Marathon, and its leader is unknown ({why})")]
    LeaderUnknown {
        /// Host and port of the target.
        to: String,
        /// Why the leader is unknown.
        why: String,
    },
}

/// `scheme://host:port` of `url`, without userinfo or path, for messages.
fn origin_of(url: &Url) -> String {
    match HostPort::of_url(url) {
        Some(host_port) => format!("{}://{host_port}", url.scheme()),
        None => format!("{}://", url.scheme()),
    }
}

impl fmt::Debug for Endpoints {
    /// The token is a credential, so only its presence is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoints")
            .field("marathon", &self.marathon)
            .field("consul", &self.consul)
            .field("has_consul_token", &self.consul_token.is_some())
            .field("has_marathon_token", &self.marathon_token.is_some())
            .finish()
    }
}

/// A Marathon task host as a URL host: validated (a host like `a@b` or `a/b` would otherwise
/// change the URL's meaning), lower-cased, IPv6 in brackets.
fn agent_host(host: &str) -> Result<String, EndpointError> {
    Host::parse(&with_brackets(host))
        .map(|parsed| parsed.to_string())
        .map_err(|e| EndpointError::InvalidAgentHost {
            host: host.to_owned(),
            reason: e.to_string(),
        })
}

/// `host` as it goes before `:port`: an IPv6 address gets brackets, anything else stays as is.
pub(crate) fn with_brackets(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(marathon: &str, consul: &str) -> Endpoints {
        Endpoints::new(
            BaseUrl::parse(marathon).unwrap(),
            BaseUrl::parse(consul).unwrap(),
        )
    }

    fn url(e: &Endpoints, target: Target, path: &str) -> String {
        e.destination(&target, path).unwrap().url.to_string()
    }

    #[test]
    fn consul_drops_its_path_and_marathon_keeps_it_as_a_prefix() {
        let e = endpoints(
            "http://marathon.example:8080/marathon?x=1#frag",
            "https://consul.example:8501/ui/",
        );
        assert_eq!(
            url(&e, Target::Marathon, "/v2/apps"),
            "http://marathon.example:8080/marathon/v2/apps"
        );
        assert_eq!(
            url(&e, Target::Consul, "/v1/kv/consular/?keys&separator=/"),
            "https://consul.example:8501/v1/kv/consular/?keys&separator=/"
        );
    }

    #[test]
    fn agent_urls_use_consul_scheme_and_port() {
        let e = endpoints("http://m:8080", "https://127.0.0.1:8501");
        assert_eq!(
            url(
                &e,
                Target::Agent("slave-1.acme.org".into()),
                "/v1/agent/services"
            ),
            "https://slave-1.acme.org:8501/v1/agent/services"
        );
    }

    #[test]
    fn agent_urls_have_no_port_when_consul_had_none() {
        let e = endpoints("http://m:8080", "http://consul.example");
        assert_eq!(
            url(&e, Target::Agent("10.0.0.7".into()), "/v1/agent/services"),
            "http://10.0.0.7/v1/agent/services"
        );
        // An explicit default port is the same as none.
        let e = endpoints("http://m:8080", "http://consul.example:80");
        assert_eq!(url(&e, Target::Agent("h".into()), "/x"), "http://h/x");
    }

    #[test]
    fn ipv6_agent_hosts_get_brackets() {
        let e = endpoints("http://m:8080", "http://[::1]:8500");
        assert_eq!(url(&e, Target::Consul, "/x"), "http://[::1]:8500/x");
        assert_eq!(
            url(&e, Target::Agent("fe80::1".into()), "/x"),
            "http://[fe80::1]:8500/x"
        );
        assert_eq!(
            url(&e, Target::Agent("[fe80::2]".into()), "/x"),
            "http://[fe80::2]:8500/x"
        );
    }

    #[test]
    fn marathon_keeps_its_path_prefix_and_takes_a_dcos_token() {
        let e = endpoints(
            "https://u:p@master.example/service/marathon/",
            "http://c:8500/ignored",
        )
        .with_marathon_token(Some("eyJ0".into()));
        let d = e
            .destination(&Target::Marathon, "/v2/apps?embed=apps.tasks")
            .unwrap();
        assert_eq!(
            d.url.as_str(),
            "https://master.example/service/marathon/v2/apps?embed=apps.tasks"
        );
        assert_eq!(d.headers, vec![("Authorization", "token=eyJ0".to_owned())]);
        assert!(
            !format!("{e:?}").contains("eyJ0"),
            "the token never reaches logs"
        );
        let d = e.destination(&Target::Consul, "/v1/kv/x").unwrap();
        assert_eq!(d.url.as_str(), "http://c:8500/v1/kv/x");
    }

    #[test]
    fn agent_hosts_that_would_change_the_url_are_rejected() {
        let e = endpoints("http://m:8080", "http://c:8500");
        for host in ["evil@host", "host/path", "host:1234", "", "a b"] {
            let err = e
                .destination(&Target::Agent(host.into()), "/x")
                .unwrap_err();
            assert!(
                matches!(err, EndpointError::InvalidAgentHost { .. }),
                "{host:?}: {err}"
            );
        }
    }

    #[test]
    fn a_password_from_a_file_joins_the_user_in_the_url_and_only_there() {
        let url = BaseUrl::parse("http://alice@m:8080/marathon").unwrap();
        let e = Endpoints::new(
            url.with_password("p:ss".to_owned()).unwrap(),
            BaseUrl::parse("http://c:8500").unwrap(),
        );
        let d = e.destination(&Target::Marathon, "/v2/apps").unwrap();
        // base64("alice:p:ss")
        assert_eq!(
            d.headers,
            vec![("Authorization", "Basic YWxpY2U6cDpzcw==".to_owned())]
        );
        let refusal = |url: &str| {
            BaseUrl::parse(url)
                .unwrap()
                .with_password("pw".to_owned())
                .unwrap_err()
        };
        assert_eq!(refusal("http://m:8080"), PasswordRefusal::NoUser);
        assert_eq!(refusal("http://:x@m:8080"), PasswordRefusal::NoUser);
        assert_eq!(
            refusal("http://alice:pw@m:8080"),
            PasswordRefusal::HasPassword
        );
    }

    #[test]
    fn the_redacted_url_keeps_the_path_and_hides_the_userinfo() {
        let shown = |url: &str| BaseUrl::parse(url).unwrap().to_redacted_string();
        assert_eq!(
            shown("https://alice:hunter2@Master:8443/service/marathon/"),
            "https://***@master:8443/service/marathon"
        );
        assert_eq!(shown("http://c:8500"), "http://c:8500");
        assert_eq!(shown("http://[::1]:80"), "http://[::1]");
    }

    #[test]
    fn marathon_userinfo_becomes_basic_auth_and_consul_userinfo_is_dropped() {
        let e = endpoints("http://us%40er:p%3Ass@m:8080/", "http://cu:cp@c:8500");
        let d = e.destination(&Target::Marathon, "/v2/apps").unwrap();
        assert_eq!(d.url.as_str(), "http://m:8080/v2/apps");
        // base64("us@er:p:ss")
        assert_eq!(
            d.headers,
            vec![("Authorization", "Basic dXNAZXI6cDpzcw==".to_owned())]
        );
        let d = e.destination(&Target::Consul, "/v1/kv/x").unwrap();
        assert_eq!(d.url.as_str(), "http://c:8500/v1/kv/x");
        assert!(d.headers.is_empty());
    }

    #[test]
    fn consul_token_goes_to_consul_and_agents_only() {
        let e =
            endpoints("http://m:8080", "http://c:8500").with_consul_token(Some("s3cret".into()));
        let token = vec![(CONSUL_TOKEN_HEADER, "s3cret".to_owned())];
        assert_eq!(e.destination(&Target::Consul, "/").unwrap().headers, token);
        assert_eq!(
            e.destination(&Target::Agent("h".into()), "/")
                .unwrap()
                .headers,
            token
        );
        assert!(e
            .destination(&Target::Marathon, "/")
            .unwrap()
            .headers
            .is_empty());
    }

    #[test]
    fn credentials_never_appear_in_debug_or_display() {
        let e = endpoints("http://alice:hunter2@m:8080", "http://c:8500")
            .with_consul_token(Some("t0ken".into()));
        let shown = format!(
            "{e:?} {} {:?}",
            e.marathon(),
            e.destination(&Target::Marathon, "/").unwrap()
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("alice"), "{shown}");
        assert!(!shown.contains("t0ken"), "{shown}");
        assert_eq!(e.marathon().to_string(), "http://m:8080");
    }

    #[test]
    fn bad_urls_are_rejected_with_a_reason() {
        assert_eq!(
            BaseUrl::parse("localhost:8500").unwrap_err().to_string(),
            "expected an http or https URL, got \"localhost:8500\" (scheme \"localhost\" is not supported)"
        );
        assert_eq!(
            BaseUrl::parse("nope").unwrap_err().to_string(),
            "expected an http or https URL, got \"nope\" (relative URL without a base)"
        );
        assert!(BaseUrl::parse("http://").is_err());
    }

    /// Inputs a user might give, each with `alice`/`hunter2` somewhere in its userinfo.
    const LEAKY_URLS: [&str; 10] = [
        "http://alice:hunter2@[bad",
        "http://alice:hunter2@m:99999",
        "http://alice:hunter2@m:port/x",
        "ftp://alice:hunter2@m:21",
        "alice:hunter2@m:8080",
        "http:alice:hunter2@m:bad",
        "http://alice:hun/ter2@m:8080",
        "http://alice:hun?ter2@m:8080",
        "http://alice:hu@nter2@[::1",
        "http://alice@:80",
    ];

    #[test]
    fn url_errors_never_show_userinfo() {
        for input in LEAKY_URLS {
            let err = BaseUrl::parse(input).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{input}: {shown}");
            assert!(!shown.contains("ter2"), "{input}: {shown}");
            assert!(!shown.contains("alice"), "{input}: {shown}");
            assert!(shown.contains("***@"), "{input}: {shown}");
        }
        assert_eq!(
            BaseUrl::parse("http://alice:hunter2@[bad")
                .unwrap_err()
                .to_string(),
            r#"expected an http or https URL, got "http://***@[bad" (invalid IPv6 address)"#
        );
        // `alice:` parses as a scheme; it is not echoed as one.
        assert_eq!(
            BaseUrl::parse("alice:hunter2@m:8080")
                .unwrap_err()
                .to_string(),
            r#"expected an http or https URL, got "***@m:8080" (scheme "***" is not supported)"#
        );
        assert_eq!(
            BaseUrl::parse("ftp://alice:hunter2@m")
                .unwrap_err()
                .to_string(),
            r#"expected an http or https URL, got "ftp://***@m" (scheme "ftp" is not supported)"#
        );
    }

    #[test]
    fn redaction_keeps_what_is_not_userinfo() {
        assert_eq!(redact_userinfo("http://m:8080/x"), "http://m:8080/x");
        assert_eq!(redact_userinfo("https://u:p@m/x"), "https://***@m/x");
        assert_eq!(redact_userinfo("u:p@m"), "***@m");
        assert_eq!(redact_userinfo("a@b://c"), "***@b://c");
        assert_eq!(redact_userinfo(""), "");
    }

    #[test]
    fn tokens_must_be_visible_ascii() {
        assert_eq!(check_token("eyJ0.a-b_c~!"), Ok(()));
        assert_eq!(check_token(""), Err(TokenProblem::Empty));
        for (token, position) in [
            ("a\nX-Evil: 1", 2),
            (" x", 1),
            ("ab\r", 3),
            ("caf\u{e9}", 4),
            ("a\tb", 2),
            ("x\u{7f}", 2),
        ] {
            assert_eq!(
                check_token(token),
                Err(TokenProblem::NotVisibleAscii { position }),
                "{token:?}"
            );
        }
    }

    #[test]
    fn no_header_is_built_from_a_bad_token() {
        let e = endpoints("http://m:8080", "http://c:8500")
            .with_consul_token(Some("t0ken\r\nX-Evil: yes".into()))
            .with_marathon_token(Some("".into()));
        for target in [Target::Consul, Target::Agent("h".into())] {
            let err = e.destination(&target, "/").unwrap_err();
            assert_eq!(
                err.to_string(),
                "the Consul ACL token has a character that is not visible ASCII (0x21-0x7e) at position 6"
            );
            assert!(!format!("{err:?}").contains("t0ken"));
        }
        assert_eq!(
            e.destination(&Target::Marathon, "/").unwrap_err(),
            EndpointError::InvalidToken {
                kind: TokenKind::Marathon,
                problem: TokenProblem::Empty
            }
        );
    }

    fn redirect(marathon: &str, from: &str, to: &str) -> StreamRedirect {
        endpoints(marathon, "http://c:8500").stream_redirect(
            &Target::Marathon,
            &Url::parse(from).unwrap(),
            &Url::parse(to).unwrap(),
        )
    }

    #[test]
    fn stream_redirects_to_the_configured_host_are_followed() {
        let same = [
            (
                "http://m:8080/prefix",
                "http://m:8080/prefix/v2/events",
                "http://M:8080/v2/events",
            ),
            ("http://m", "http://m/v2/events", "http://m:80/v2/events"),
            ("https://u:p@m", "https://m/v2/events", "https://m:443/x"),
            // An upgrade keeps the host:port rule: m:8080 is the configured one.
            (
                "http://m:8080",
                "http://m:8080/v2/events",
                "https://m:8080/v2/events",
            ),
        ];
        for (marathon, from, to) in same {
            assert_eq!(
                redirect(marathon, from, to),
                StreamRedirect::ToConfigured,
                "{to}"
            );
        }
        assert_eq!(
            redirect(
                "http://m:8080",
                "http://m:8080/v2/events",
                "http://m:8081/v2/events"
            ),
            StreamRedirect::ToOtherHost(HostPort {
                host: "m".into(),
                port: 8081
            })
        );
        assert_eq!(
            redirect("http://m", "http://m/v2/events", "https://m/v2/events"),
            StreamRedirect::ToOtherHost(HostPort {
                host: "m".into(),
                port: 443
            }),
            "https's default port is another port"
        );
    }

    #[test]
    fn stream_redirects_never_downgrade_or_carry_userinfo() {
        let refused = |from: &str, to: &str| match redirect("https://m", from, to) {
            StreamRedirect::Refused(why) => why.to_string(),
            other => panic!("{to}: {other:?}"),
        };
        assert_eq!(
            refused("https://m/v2/events", "http://m:443/v2/events"),
            "refused a redirect from https to http://m:443: it would send the credentials unencrypted"
        );
        assert_eq!(
            refused("https://m/v2/events", "ftp://m/v2/events"),
            r#"refused a redirect to a "ftp" URL"#
        );
        let userinfo = refused("https://m/v2/events", "https://alice:hunter2@m/v2/events");
        assert_eq!(
            userinfo,
            "refused a redirect to https://m:443: the URL carries userinfo"
        );
        let e = endpoints("http://m", "http://c");
        let from = Url::parse("http://c/x").unwrap();
        assert_eq!(
            e.stream_redirect(&Target::Consul, &from, &from),
            StreamRedirect::Refused(RedirectRefusal::NotMarathon)
        );
    }

    #[test]
    fn other_hosts_are_followed_only_when_they_are_the_leader() {
        let to =
            HostPort::of_url(&Url::parse("http://Leader.Example:8080/v2/events").unwrap()).unwrap();
        let named = |leader: &str| LeaderAnswer::Named(leader.to_owned());
        assert_eq!(
            leader_verdict(&to, "http", &named("leader.example:8080")),
            Ok(())
        );
        assert_eq!(
            leader_verdict(&to, "http", &named("LEADER.example:8080")),
            Ok(())
        );
        let https =
            HostPort::of_url(&Url::parse("https://leader.example/v2/events").unwrap()).unwrap();
        assert_eq!(
            leader_verdict(&https, "https", &named("leader.example")),
            Ok(())
        );
        assert_eq!(
            leader_verdict(&to, "http", &named("other.example:8080")).unwrap_err().to_string(),
            "refused a redirect to leader.example:8080: neither the configured Marathon nor its leader (other.example:8080)"
        );
        for odd in [
            "leader.example:8080/x",
            "u@leader.example:8080",
            "leader.example:8080?q",
            "",
        ] {
            assert!(
                matches!(
                    leader_verdict(&to, "http", &named(odd)),
                    Err(RedirectRefusal::LeaderUnknown { .. })
                ),
                "{odd:?}"
            );
        }
        assert_eq!(
            leader_verdict(&to, "http", &LeaderAnswer::Unknown("404 There is no leader".into()))
                .unwrap_err()
                .to_string(),
            "refused a redirect to leader.example:8080: not the configured Marathon, and its leader is unknown (404 There is no leader)"
        );
    }

    #[test]
    fn hosts_are_lower_cased() {
        let b = BaseUrl::parse("HTTP://Consul.Example:8500").unwrap();
        assert_eq!(
            (b.scheme(), b.host(), b.port()),
            ("http", "consul.example", Some(8500))
        );
        let e = endpoints("http://m", "http://c");
        assert_eq!(
            url(&e, Target::Agent("Slave-1".into()), "/"),
            "http://slave-1/"
        );
    }
}
