//! The text of `--help` and `consular demo --help`. What the options do is `resolve.rs`; which
//! options exist is `catalog.rs` (a test checks that every one of them is in [`USAGE`]).

/// `--help` output.
pub const USAGE: &str = "\
Usage: consular [OPTIONS]
       consular config [OPTIONS]
       consular demo [--help]

  Keeps Consul's service catalog in step with Marathon (a drop-in for consular 1.3.0).
  `consular config` prints every setting a run with these options would use, and where it
  comes from, and exits. `consular demo` shows it at work against a simulated Marathon and
  Consul.

  Every option can also be set in the environment, as CONSULAR_<OPTION> (CONSULAR_SYNC_INTERVAL=30,
  CONSULAR_PURGE=true), or in the JSON file of --config, keyed by the option's name without --
  (\"sync-interval\": 30, \"purge\": true). An option beats the environment, which beats the file.
  Consul's CONSUL_HTTP_ADDR, CONSUL_HTTP_SSL, CONSUL_HTTP_TOKEN(_FILE), CONSUL_CACERT,
  CONSUL_CAPATH, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY and CONSUL_TLS_SERVER_NAME are read too.

Options:
  --config FILE              Read settings from this JSON file.
  --scheme [http|https]      Scheme of the callback URL registered at Marathon.  [default: http]
  --host TEXT                Interface to listen on, also the host in the callback URL.
                             [default: localhost]
  --port INTEGER             Port to listen on, also the port in the callback URL.  [default: 7000]
  --consul TEXT              Consul's URL; its scheme and port also reach the agents.
                             [default: $CONSUL_HTTP_ADDR, else http://localhost:8500]
  --marathon TEXT            Marathon's URL; user:password@ in it becomes Basic auth.
                             [default: http://localhost:8080]
  --registration-id TEXT     Tags our services; must be unique for each consular process.
                             [default: consular]
  --sync-interval INTEGER    Seconds between full syncs; 0 turns them off.  [default: 0]
  --purge / --no-purge       During syncs, deregister our services whose tasks are gone and
                             delete the KV entries of deleted apps.  [default: no-purge]
  --logfile FILENAME         Append the log to this file instead of standard output.
  --log-format [text|json]   Log lines for people (local time, level word) or JSON lines.
                             [default: text on a terminal, else json]
  --log-level [error|warn|info|debug]
                             Least severe records logged.  [default: info]
  --debug / --no-debug       Log every request (implies --log-level debug).  [default: no-debug]
  --timeout INTEGER          Seconds to wait for each Marathon or Consul request.  [default: 5]
  --fallback / --no-fallback Register on --consul when the task host's agent fails.
                             ONLY USE IF YOU KNOW WHAT YOU ARE DOING.  [default: no-fallback]
  --fallback-timeout INTEGER Seconds to wait for that fallback registration.  [default: 2]
  --events [sse|callback|auto]
                             Where Marathon's events come from: the /v2/events stream (sse),
                             HTTP callbacks to /events, or the stream with callbacks if Marathon
                             has none.  [default: auto]
  --consul-token TEXT        Consul ACL token for every Consul request (visible ASCII);
                             @FILE reads it from FILE.  [default: $CONSUL_HTTP_TOKEN]
  --consul-token-file FILE   Read the Consul ACL token from FILE.
                             [default: $CONSUL_HTTP_TOKEN_FILE]
  --marathon-token TEXT      DC/OS ACS token, sent to Marathon as Authorization: token=...;
                             @FILE reads it from FILE.
  --marathon-password-file FILE
                             Basic-auth password for the user in --marathon (http://user@host).
  --events-secret TEXT       Secret every /events callback must carry; it goes into the
                             callback URL registered at Marathon. @FILE reads it from FILE.
  --accept-callbacks         Serve /events even while the event stream is the source.
  --max-listing-bytes INTEGER
                             Largest response read for a Marathon or Consul listing, at least
                             65536.  [default: 67108864]
  --ca-file FILENAME         Also trust the CA certificates in this PEM file for https, towards
                             both Consul and Marathon.
  --consul-ca-file FILE      Also trust these PEM CA certificates for Consul.  [$CONSUL_CACERT]
  --consul-ca-path DIR       Also trust the PEM CA certificates in DIR for Consul.
                             [$CONSUL_CAPATH]
  --consul-client-cert FILE  PEM client certificate presented to Consul; needs
                             --consul-client-key.  [$CONSUL_CLIENT_CERT]
  --consul-client-key FILE   Its PEM private key.  [$CONSUL_CLIENT_KEY]
  --consul-tls-server-name TEXT
                             Name Consul's certificates are checked against.
                             [$CONSUL_TLS_SERVER_NAME]
  --marathon-ca-file FILE    Also trust these PEM CA certificates for Marathon.
  --marathon-ca-path DIR     Also trust the PEM CA certificates in DIR for Marathon.
  --marathon-client-cert FILE
                             PEM client certificate presented to Marathon; needs
                             --marathon-client-key.
  --marathon-client-key FILE Its PEM private key.
  --require-label TEXT       Register only the apps that carry this label (marathon-consul:
                             consul); apps that lose it are deregistered by the next sync.
  --address [auto|host|task-ip]
                             Address of a task's services: the task's own IP and container port
                             on IP-per-task or a container network without host ports (auto),
                             always the host and host port (host), or the task's IP whenever
                             Marathon reports one (task-ip).  [default: auto]
  --health-checks [none|mirror|agent]
                             Consul checks on the services of apps with Marathon health checks:
                             none; one check whose status follows Marathon's results (mirror);
                             or the agent runs Marathon's HTTP and TCP checks (agent).
                             [default: none]
  --register-when-healthy    Register a task of an app with health checks only once Marathon
                             reports all its checks alive; deregister it when one fails.
  --fallback-mode [agent|catalog]
                             Where --fallback registers a task whose host has no reachable agent:
                             on the main agent, or in the catalog on an external node named
                             after the host, for consul-esm (catalog implies --fallback).
                             [default: agent]
  --agentless                Register every task on an external node named after its host (for
                             clusters without Consul agents on the Mesos hosts).
  --dry-run                  Read Marathon and Consul as a sync would, log every write it would
                             make (one line each, and a summary), make none, and exit.
  --ha                       Run as one of several instances: only the one holding a Consul
                             lock (a session on --ha-key) acts; the others stand by.
  --ha-ttl INTEGER           Seconds of the session's TTL (10 to 86400).  [default: 15]
  --ha-key TEXT              The lock key.  [default: service/consular/<registration-id>/leader]
  --instance-id TEXT         This instance's name in the lock and the logs.  [default: <host>:<port>]
  --migrate-marathon-consul  Deregister the services marathon-consul registered (tagged both
                             marathon and marathon-task:...), once: every sync until one has
                             listed every agent. Stop marathon-consul first.
  --version                  Show the version and exit.
  --help                     Show this message and exit.
";

/// `demo --help` output.
pub const DEMO_USAGE: &str = "\
Usage: consular demo [OPTIONS]

  Runs consular against a simulated Marathon 1.10 and a stand-in Consul (a server agent on
  127.0.0.1 and client agents on 127.0.0.2 and 127.0.0.3, one port), all on loopback, and plays
  a scripted scenario (apps, tasks, failures, scaling, labels) until Ctrl-C.

Options:
  --consul URL               Use this real Consul instead of the stand-in; demo tasks run on
                             host 127.0.0.1, so they register with the agent there.
  --consul-port INTEGER      Port of the stand-in Consul.  [default: 8500, else a free one]
  --port INTEGER             Port consular listens on.  [default: 7000, else a free one]
  --step-seconds INTEGER     Seconds between scenario steps.  [default: 2]
  --help                     Show this message and exit.
";
