//! Helpers shared by the end-to-end tests: run the real binary, find the
//! shared test data.
#![allow(dead_code)]

#[cfg(feature = "aws")]
pub mod kinesis;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata")
        .join(rel)
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_adsb-kinesis"))
}

pub fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run adsb-kinesis")
}

/// Frames (lower-case hex) printed with `--output avr`.
pub fn avr_frames(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches('*')
                .trim_end_matches(';')
                .to_ascii_lowercase()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

pub fn reference(name: &str) -> Vec<String> {
    std::fs::read_to_string(shared(&format!("reference/{name}.hex")))
        .expect("reference file")
        .lines()
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A moto server (`python3 -m moto.server`) on 127.0.0.1, on a port chosen
/// at run time; killed when dropped. Its state lives in memory only.
pub struct Moto {
    pub port: u16,
    child: std::process::Child,
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Moto {
    /// Start moto on a free port and wait until it answers.
    pub fn start() -> Moto {
        Moto::start_on(free_port())
    }

    /// Start moto on `port` and wait until it answers. Fails the test (no
    /// skipping) if moto is not installed.
    pub fn start_on(port: u16) -> Moto {
        let check = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            check.is_ok_and(|s| s.success()),
            "moto is not installed: run `python3 -m pip install --user 'moto[server]'` \
             (scripts/test does this)"
        );
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m moto.server");
        let mut moto = Moto { port, child };
        let t0 = std::time::Instant::now();
        loop {
            if let Some(status) = moto.child.try_wait().expect("moto status") {
                panic!("moto exited at start: {status}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(60),
                "moto did not listen on port {port} within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment an AWS test run gets: dummy credentials and region,
/// nothing from the host's AWS files or metadata service.
pub fn aws_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("ADSB_KINESIS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        // Empty files: no profile, no region, no keys from them.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "adsbk-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An SBS line with its four time fields (7-10) blanked; `None` if it is
/// not an SBS line.
pub fn untimed(line: &str) -> Option<String> {
    let mut f: Vec<&str> = line.split(',').collect();
    if f.len() < 22 || f[0] != "MSG" {
        return None;
    }
    for t in &mut f[6..10] {
        *t = "";
    }
    Some(f.join(","))
}

/// SIGTERM to `child`, as systemd stops the service.
pub fn sigterm(child: &Child) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

/// `child`'s exit within `limit`; past it, kill it and panic.
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t0.elapsed() > limit {
            child.kill().ok();
            panic!("no exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
