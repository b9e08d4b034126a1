//! Where each [`Target`] of the core lives on the network: parsing the `--marathon` and `--consul`
//! URLs, building the URL of one request, and the credentials headers that go with it.
//!
//! Of `--consul` only the scheme and authority are used, as consular 1.3.0 did. `--marathon` keeps its
//! path as a prefix too (DC/OS serves Marathon under `/service/marathon`). Userinfo on `--marathon`
//! becomes `Authorization: Basic`, or a DC/OS token `Authorization: token=…`; userinfo on `--consul`
//! is dropped, and an optional ACL token becomes `X-Consul-Token` on Consul and agent requests. Sending requests lives in [`crate::outbound`]; nothing here does IO.

use std::fmt;

use consular_core::Target;
use surf::http::auth::BasicAuth;
use surf::http::url::{Host, Url};

/// Header carrying the Consul ACL token.
const CONSUL_TOKEN_HEADER: &str = "X-Consul-Token";

/// Why a `--marathon`/`--consul` URL or an agent host cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The text is not a URL at all.
    #[error("expected an http or https URL, got {input:?} ({reason})")]
    NotAUrl {
        /// What was given.
        input: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A URL with a scheme other than `http` or `https`.
    #[error("expected an http or https URL, got {input:?} (scheme {scheme:?} is not supported)")]
    UnsupportedScheme {
        /// What was given.
        input: String,
        /// Its scheme.
        scheme: String,
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
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        let scheme = match url.scheme() {
            "http" => "http",
            "https" => "https",
            other => {
                return Err(EndpointError::UnsupportedScheme {
                    input: input.to_owned(),
                    scheme: other.to_owned(),
                })
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
    /// Basic auth from the `--marathon` userinfo.
    pub fn with_marathon_token(mut self, token: Option<String>) -> Self {
        self.marathon_token = token;
        self
    }

    /// Sends `token` as `X-Consul-Token` to the main Consul endpoint and to every agent.
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
                headers.push((CONSUL_TOKEN_HEADER, token.clone()));
            }
        }
        // Concatenating (rather than `Url::join`) keeps the origin even for a path like `//x`.
        let url = Url::parse(&format!("{origin}{path_and_query}")).map_err(|e| {
            EndpointError::NotAUrl {
                input: format!("{origin}{path_and_query}"),
                reason: e.to_string(),
            }
        })?;
        Ok(Destination { url, headers })
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
