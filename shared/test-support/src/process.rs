//! A child server process bound to a port: start, wait until it accepts connections, kill.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port the OS considers free right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// Finds `name` on `PATH` (or in the variable `override_var`), with install advice if absent.
pub(crate) fn find_binary(name: &str, override_var: &str, install_hint: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not on PATH. {install_hint} (or set {override_var}); `just test` installs it")
        })
}

/// A running server process.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Option<Child>,
    pub(crate) port: u16,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` (its output goes to `log`) and waits until `port` accepts connections.
    pub(crate) fn spawn(mut command: Command, port: u16, log: &Path) -> std::io::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()?;
        let mut process = Self {
            child: Some(child),
            port,
            log: log.to_path_buf(),
        };
        process.wait_until_listening(Duration::from_secs(15))?;
        Ok(process)
    }

    fn wait_until_listening(&mut self, limit: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + limit;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(std::io::Error::other(format!(
                    "server exited with {status} before listening on {}; log:\n{}",
                    self.port,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "server not listening on {} after {limit:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, as a crash would; waits for the process to be gone and the port to be free.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is running.
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
