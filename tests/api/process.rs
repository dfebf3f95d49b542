//! The gateway as a process of its own: the real binary, started with a
//! user's flags, killed with SIGKILL (no shutdown, no flush) and restarted
//! on the same store and address.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The gateway binary, started and killed by a test.
pub struct GatewayProcess {
    /// `http://127.0.0.1:PORT`: the same across restarts.
    pub address: String,
    args: Vec<String>,
    /// Where its logs are written.
    pub dir: PathBuf,
    child: Option<Child>,
    /// Starts so far.
    pub starts: usize,
    /// SIGKILLs so far.
    pub kills: usize,
    /// Its `RUST_LOG` (`info` unless a test wants more).
    pub log_filter: &'static str,
}

impl GatewayProcess {
    /// `backup-gateway serve` with `flags` (everything but `--listen`,
    /// which is a free port chosen here); its logs go to `dir`.
    pub fn new(dir: &Path, flags: Vec<String>) -> GatewayProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve".to_owned(), "--listen".to_owned(), listen.clone()];
        args.extend(flags);
        GatewayProcess {
            address: format!("http://{listen}"),
            args,
            dir: dir.to_owned(),
            child: None,
            starts: 0,
            kills: 0,
            log_filter: "info",
        }
    }

    /// Starts the binary (its output in `gateway-N.log`) and waits until it
    /// answers `/healthz`.
    pub async fn start(&mut self) {
        let log_path = self.dir.join(format!("gateway-{}.log", self.starts));
        let log = std::fs::File::create(&log_path).expect("create log");
        let child = Command::new(env!("CARGO_BIN_EXE_backup-gateway"))
            .args(&self.args)
            .env("RUST_LOG", self.log_filter)
            .env_remove("BACKUP_GATEWAY_TENANTS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("the gateway starts");
        // For `bench/chaos`, which must end it if the test is stopped.
        let _ = std::fs::write(self.dir.join("gateway.pid"), child.id().to_string());
        self.child = Some(child);
        self.starts += 1;
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = client
                .get(format!("{}/healthz", self.address))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("the gateway did not come up ({exited:?}):\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything every start of it logged.
    pub fn logs(&self) -> String {
        (0..self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("gateway-{n}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// SIGTERM, as an orchestrator stops it: waits (at most 30 s) for it
    /// to exit and gives its exit code.
    pub async fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM not sent");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("status") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, whatever was in flight is cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.kills += 1;
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
