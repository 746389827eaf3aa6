//! Real parts for the integration tests, started on loopback by the tests themselves: an RTSP
//! camera (gst-rtsp-server), the classproof binary as a child process, temporary data dirs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// Tests that load both cores for minutes (the .deb build with lintian, classroom inference)
/// run while no real-time test camera does: a starved x264 in the camera sends late or broken
/// access units, and a test asserting on recording then fails for the machine's sake, not the
/// code's. Camera tests share the lock; heavy tests take it alone, through [`heavy`].
static LOAD: RwLock<()> = RwLock::new(());

thread_local! {
    /// Whether this test thread holds [`LOAD`] alone (its own cameras then need no share).
    static HEAVY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// This thread's share of [`LOAD`], while one of its cameras runs: a second camera of the
    /// same test joins it instead of queueing behind a waiting heavy test (which would wait
    /// for the first share: a deadlock).
    static SHARE: std::cell::RefCell<std::rc::Weak<CameraShare>> =
        const { std::cell::RefCell::new(std::rc::Weak::new()) };
}

/// Held by a heavy test for its whole body: no test camera runs meanwhile.
pub struct Heavy(#[allow(dead_code)] RwLockWriteGuard<'static, ()>);

pub fn heavy() -> Heavy {
    let guard = LOAD.write().unwrap_or_else(|e| e.into_inner());
    HEAVY.with(|h| h.set(true));
    Heavy(guard)
}

impl Drop for Heavy {
    fn drop(&mut self) {
        HEAVY.with(|h| h.set(false));
    }
}

/// A test thread's share of [`LOAD`].
struct CameraShare(#[allow(dead_code)] RwLockReadGuard<'static, ()>);

/// A test camera's share of [`LOAD`] (the thread's own if it has one), or nothing on a heavy
/// test's own thread.
fn camera_share() -> Option<std::rc::Rc<CameraShare>> {
    if HEAVY.with(|h| h.get()) {
        return None;
    }
    SHARE.with(|cell| {
        if let Some(held) = cell.borrow().upgrade() {
            return Some(held);
        }
        let share = std::rc::Rc::new(CameraShare(LOAD.read().unwrap_or_else(|e| e.into_inner())));
        *cell.borrow_mut() = std::rc::Rc::downgrade(&share);
        Some(share)
    })
}

/// A path as a command-line argument.
pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The installed face models: `CLASSPROOF_MODELS_DIR` when set (deploy/setup.sh test sets it),
/// else the default install folder.
pub fn models_dir() -> String {
    std::env::var("CLASSPROOF_MODELS_DIR")
        .unwrap_or_else(|_| ::classproof::vision::config::DEFAULT_MODELS_DIR.to_string())
}

/// Runs the ffmpeg CLI (to compose test videos), failing the test with its error.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-y", "-v", "error"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The binary under test: the one cargo built, or `$CLASSPROOF_BIN` (to run the suite against
/// another build, e.g. the previous release, to see a new test fail before its fix).
/// `classproof verify` of the store passes, then `export --session` writes the session's
/// bundle into `out`.
pub fn verify_then_export(config: &Path, session: &str, out: &Path) {
    let verify = classproof(&["verify", "--config", &path_str(config)]);
    assert!(
        verify.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let export = classproof(&[
        "export",
        "--config",
        &path_str(config),
        "--session",
        session,
        "--out",
        &path_str(out),
    ]);
    assert!(
        export.status.success(),
        "export: {}",
        String::from_utf8_lossy(&export.stderr)
    );
}

/// A real webcam-style video of one person (faces-dev `videos/`), and a frame of it 2 s in
/// written under `dir` to enroll them from: the door camera of the check-in tests.
pub fn door_person(dir: &Path) -> (PathBuf, PathBuf) {
    let video = shared().join("faces-dev/videos/liveportrait_d9.mp4");
    let photo = dir.join("door-person.jpg");
    ffmpeg(&[
        "-ss",
        "2",
        "-i",
        &path_str(&video),
        "-frames:v",
        "1",
        &path_str(&photo),
    ]);
    (video, photo)
}

pub fn bin() -> PathBuf {
    std::env::var_os("CLASSPROOF_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_classproof")))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the repository (models, photos, videos).
pub fn shared() -> PathBuf {
    repo().join("../shared")
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Runs `classproof ARGS…` to completion.
pub fn classproof(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run classproof")
}

/// Polls `cond` every 50 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = cond() {
            return t;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a signal to a process.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we started.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// A loopback RTSP camera at `rtsp://127.0.0.1:{port}/cam`.
pub struct RtspServer {
    pub port: u16,
    codec: String,
    file: Option<PathBuf>,
    /// Extra arguments of tests/support/rtsp_server.py (e.g. `--overlay`).
    extra: Vec<String>,
    child: Option<Child>,
    /// Dropped after the camera is killed (fields drop after `Drop::drop`).
    _share: Option<std::rc::Rc<CameraShare>>,
}

/// How long a test camera may take to say READY (its pre-roll included).
const CAMERA_START: Duration = Duration::from_secs(20);

impl RtspServer {
    /// A live generated stream: `codec` is "h264" or "h265"; 25 fps, a keyframe every second.
    pub fn start(codec: &str) -> RtspServer {
        Self::start_with(codec, None, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Replays an MP4 (H.264) file.
    pub fn start_file(file: &Path) -> RtspServer {
        Self::start_with("h264", Some(file), &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a camera with extra arguments of tests/support/rtsp_server.py; `Err` carries
    /// what the server printed on stderr when it could not start its pipeline (it checks the
    /// pipeline before it listens, so this comes at once).
    pub fn start_with(codec: &str, file: Option<&Path>, extra: &[&str]) -> Result<RtspServer, String> {
        let mut s = RtspServer {
            port: free_port(),
            codec: codec.to_string(),
            file: file.map(Path::to_path_buf),
            extra: extra.iter().map(|a| a.to_string()).collect(),
            child: None,
            _share: camera_share(),
        };
        s.spawn()?;
        Ok(s)
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// Starts the server and waits for its READY line; `Err` with its stderr (GStreamer's own
    /// error) when it exits first.
    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(repo().join("tests/support/rtsp_server.py")).args([
            "--port",
            &self.port.to_string(),
            "--codec",
            &self.codec,
        ]);
        if let Some(f) = &self.file {
            cmd.arg("--file").arg(f);
        }
        cmd.args(&self.extra);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start tests/support/rtsp_server.py with /usr/bin/python3: {e} \
                     (deploy/setup.sh installs python3-gi and gst-rtsp-server)"
                )
            })?;
        // stderr: passed on to the test's own stderr line by line, and kept for the error.
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let keep = stderr_text.clone();
        let stderr_done = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("rtsp_server: {line}");
                let mut t = keep.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
        });
        // stdout: the READY line, or end of file when the server exits.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(CAMERA_START).unwrap_or_default();
        if line.starts_with("READY") {
            self.child = Some(child);
            return Ok(());
        }
        let _ = child.kill();
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        let _ = stderr_done.join();
        let stderr = stderr_text.lock().unwrap().clone();
        Err(if line.is_empty() && stderr.is_empty() {
            format!("the test camera did not say READY within {CAMERA_START:?} ({status})")
        } else {
            format!("the test camera did not start ({status}): {line}{stderr}")
        })
    }

    /// Kills the server (SIGKILL): the camera disappears.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        // The port may linger briefly; retry until it binds.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = TcpListener::bind(("127.0.0.1", self.port));
            if probe.is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Err(e) = self.spawn() {
            panic!("{e}");
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, no packets flow.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            signal(c.id(), libc::SIGSTOP);
        }
    }

    /// Thaws a frozen server (SIGCONT).
    pub fn thaw(&self) {
        if let Some(c) = &self.child {
            signal(c.id(), libc::SIGCONT);
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.thaw();
        self.kill();
    }
}

/// `classproof run` as a child process, with its stderr collected line by line.
pub struct Daemon {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    rx: Receiver<String>,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_env(config, &[])
    }

    /// Started with more environment variables (e.g. systemd's `NOTIFY_SOCKET`).
    pub fn start_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start classproof run");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("CLASSPROOF_TEST_ECHO").is_some() {
                    eprintln!("daemon: {line}");
                }
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Daemon {
            child: Some(child),
            lines,
            rx,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no log line with {needle:?} within {timeout:?}; log so far:\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then wait (at most `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "daemon did not exit within {timeout:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status, once it exited by itself.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILL: the crash the recovery code must survive.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A temporary directory with a data dir and a config file in it.
pub struct Scene {
    pub dir: tempfile::TempDir,
}

impl Scene {
    pub fn new() -> Scene {
        Scene {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes `classproof.toml` with `[device]` pointing at this scene's data dir, followed by
    /// `rest`; vision is off unless `rest` configures it, and the status server listens on a
    /// free loopback port unless `rest` has a `[status]` section.
    pub fn config(&self, rest: &str) -> PathBuf {
        let path = self.dir.path().join("classproof.toml");
        let vision = if rest.contains("[vision]") {
            ""
        } else {
            "\n[vision]\nenabled = false\n"
        };
        // Every daemon serves its status page on a port of its own (tests run in parallel).
        let status = if rest.contains("[status]") {
            String::new()
        } else {
            format!("\n[status]\nlisten = \"127.0.0.1:{}\"\n", free_port())
        };
        let text = format!(
            "[device]\nid = \"test-box\"\ndata_dir = \"{}\"\ntimezone = \"Asia/Shanghai\"\n{vision}{status}\n{rest}",
            self.data_dir().display()
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// `classproof segments --json` for this scene, parsed.
    pub fn segments(&self, config: &Path) -> Vec<serde_json::Value> {
        let out = classproof(&["segments", "--json", "--config", &config.to_string_lossy()]);
        assert!(
            out.status.success(),
            "segments failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("segments --json prints JSON lines"))
            .collect()
    }
}

/// ffprobe's view of a media file: (decodable, duration in seconds).
pub fn ffprobe_duration(path: &Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Decodes the whole file with ffmpeg and reports whether it decoded without errors, and how
/// many frames it had.
pub fn ffmpeg_decode_frames(path: &Path) -> Result<u64, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() || !stderr.trim().is_empty() {
        return Err(stderr);
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(&out.stdout)))
}

/// A tmpfs of `size` mounted for the life of the value (needs root, as the tests run in CI).
pub struct TinyDisk {
    pub path: PathBuf,
}

impl TinyDisk {
    pub fn mount(path: PathBuf, size: &str) -> TinyDisk {
        std::fs::create_dir_all(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test fills a real (tmpfs) disk and needs root to mount one: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TinyDisk { path }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// The daemon's health registry as it writes it to `[daemon] health_file`.
pub fn health(file: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}

/// Waits until the health file says job `job` is in `state`; returns the job's entry.
pub fn wait_for_job_state(file: &Path, job: &str, state: &str, timeout: Duration) -> serde_json::Value {
    wait_for(
        &format!("job {job} {state} in {}", file.display()),
        timeout,
        || {
            let h = health(file)?;
            let j = h["jobs"][job].clone();
            (j["state"] == state).then_some(j)
        },
    )
}

/// `classproof ARGS… --json` parsed: JSON lines (or one document) on stdout.
pub fn json_lines(args: &[&str]) -> Vec<serde_json::Value> {
    let out = classproof(args);
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => vec![v],
        Err(_) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {l}")))
            .collect(),
    }
}

/// Fills the file system under `dir` to the last byte; returns the filler file.
pub fn fill_disk(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    let small = [0u8; 512];
    while std::io::Write::write_all(&mut f, &small).is_ok() {}
    drop(f);
    filler
}

/// Certificates made at test time with the openssl CLI: a CA, a server certificate for
/// 127.0.0.1, client certificates, and a second, unrelated CA with a client certificate of
/// its own (the wrong ones).
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// The TLS client of the platform's side (the tests' subscriber): pinned to this CA, with
    /// the platform's client certificate, through the box's own TLS code.
    pub fn platform_tls(&self, port: u16, prefix: &str) -> Arc<rustls::ClientConfig> {
        let cfg = ::classproof::sync::UpstreamConfig {
            broker: ::classproof::sync::config::parse_broker(&format!("mqtts://127.0.0.1:{port}")).unwrap(),
            topic_prefix: prefix.into(),
            ca_file: Some(self.file("ca.pem")),
            client_cert_file: Some(self.file("platform.pem")),
            client_key_file: Some(self.file("platform.key")),
            platform_key_file: None,
            username: None,
            password_file: None,
            insecure_plaintext: false,
            keepalive: Duration::from_secs(5),
            status_interval: Duration::from_secs(60),
            backlog_alarm: Duration::from_secs(60),
            live_max: Duration::from_secs(60),
        };
        ::classproof::sync::tls::client_config(&cfg).unwrap()
    }

    pub fn make(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "wrong-ca"] {
            let mut a = vec!["req", "-x509"];
            a.extend(ec);
            let (key, pem, subj) = (
                format!("{ca}.key"),
                format!("{ca}.pem"),
                format!("/CN=classproof test {ca}"),
            );
            a.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
            run(&a);
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, ca, ext) in [
            ("server", "ca", "server.ext"),
            ("device", "ca", "client.ext"),
            ("platform", "ca", "client.ext"),
            ("rogue", "wrong-ca", "client.ext"),
        ] {
            let mut a = vec!["req"];
            a.extend(ec);
            let (key, csr, subj) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("/CN={name}"),
            );
            a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            run(&a);
            let (pem, cacert, cakey) = (format!("{name}.pem"), format!("{ca}.pem"), format!("{ca}.key"));
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &cacert,
                "-CAkey",
                &cakey,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                ext,
            ]);
        }
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    /// A server certificate for 127.0.0.1 from the right CA that expired long ago
    /// (`expired.pem`, with `server.key`), made with `openssl ca` and fixed dates.
    pub fn make_expired_server(&self) {
        let d = &self.dir;
        std::fs::write(
            d.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
             policy = p\ndefault_md = sha256\ncopy_extensions = none\n[p]\ncommonName = supplied\n",
        )
        .unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        let out = Command::new("openssl")
            .args([
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-in",
                "server.csr",
                "-out",
                "expired.pem",
                "-cert",
                "ca.pem",
                "-keyfile",
                "ca.key",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
                "-extfile",
                "server.ext",
                "-notext",
            ])
            .current_dir(d)
            .output()
            .expect("openssl ca");
        assert!(
            out.status.success(),
            "openssl ca: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A real mosquitto on a free loopback port with a TLS listener that requires client
/// certificates from the test CA, persistence on (so a stopped broker keeps the platform's
/// queued messages, as a production broker would).
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start(dir: &Path, pki: &Pki) -> Mosquitto {
        let port = free_port();
        std::fs::create_dir_all(dir.join("persist")).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nlistener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
                 allow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\n\
                 log_dest stderr\n",
                pki.file("ca.pem").display(),
                pki.file("server.pem").display(),
                pki.file("server.key").display(),
                dir.join("persist").display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            port,
            conf,
            child: None,
        };
        m.restart();
        m
    }

    /// Serves another certificate of `pki` (with `server.key`) from the next start on.
    pub fn use_cert(&self, pki: &Pki, cert: &str) {
        let text = std::fs::read_to_string(&self.conf).unwrap();
        let text: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("certfile ") {
                    format!("certfile {}", pki.file(cert).display())
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&self.conf, text.join("\n") + "\n").unwrap();
    }

    /// Starts it again (same port, same persistence).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "mosquitto already running");
        let log = self.conf.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        wait_for("mosquitto listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
    }

    /// SIGTERM (it saves its persistence file) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
