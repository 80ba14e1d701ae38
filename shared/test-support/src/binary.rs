//! A service binary run as a child process, as an operator would run it: configured through
//! its environment, logging to stdout, stopped with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running service binary whose stdout is captured in a file.
#[derive(Debug)]
pub struct ServiceBinary {
    child: Child,
    stdout: PathBuf,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl ServiceBinary {
    /// Starts `binary` with exactly `env` (plus `PATH`).
    pub fn spawn(binary: &Path, env: &[(&str, String)]) -> Self {
        Self::spawn_with_args(binary, &[], env)
    }

    /// Starts `binary` with command-line `args` and exactly `env` (plus `PATH`).
    pub fn spawn_with_args(binary: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let stdout = dir.path().join("stdout.log");
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let child = Self::launch(binary, &args, &env, &stdout);
        Self {
            child,
            stdout,
            binary: binary.to_path_buf(),
            args,
            env,
            _dir: dir,
        }
    }

    /// Starts the same binary with the same environment again (after [`Self::kill`]); its
    /// output is appended to the same capture.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::launch(&self.binary, &self.args, &self.env, &self.stdout);
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    fn launch(binary: &Path, args: &[String], env: &[(String, String)], stdout: &Path) -> Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stdout)
            .expect("stdout file");
        let err = out.try_clone().expect("clone");
        let mut command = Command::new(binary);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        for (key, value) in env {
            command.env(key, value);
        }
        command.spawn().expect("service binary starts")
    }

    /// Everything written to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Sends SIGTERM (through `kill`, as an orchestrator would).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ServiceBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
