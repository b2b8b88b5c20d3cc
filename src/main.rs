//! The `adsb-kinesis` command: clap arguments -> library calls.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use adsb_kinesis::config::units::{parse_lat, parse_lon};
use adsb_kinesis::config::{ConfigError, ConfigFile, ReceiverConfig, RunConfig};
use adsb_kinesis::daemon::{self, RunError};
use adsb_kinesis::decoder::{Decoded, IqDecoder};
use adsb_kinesis::demod::Rate;
use adsb_kinesis::hexin;
use adsb_kinesis::iq::SampleFormat;
use adsb_kinesis::json::frame_json;
use adsb_kinesis::modes::Hex;
use adsb_kinesis::modes::{self, Frame};
use adsb_kinesis::sbs::{generated_ms, unix_ms_now, SbsLine};
use adsb_kinesis::sim::{simulate, SimConfig, Simulator};
use adsb_kinesis::track::Tracker;

#[cfg(feature = "aws")]
#[path = "main_tail.rs"]
mod tail_cmd;

#[derive(Parser)]
#[command(
    name = "adsb-kinesis",
    version,
    about = "1090 MHz Mode S / ADS-B receiver feeding Amazon Kinesis"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a recording (or hex frames) and print SBS, AVR or JSON to stdout.
    Decode(DecodeArgs),
    /// Synthesize Mode S IQ (cu8/cs16) with ground-truth frames beside it.
    Simulate(SimulateArgs),
    /// Simulate a sky and decode it live through the full demodulator:
    /// SBS lines on stdout, no dongle needed.
    Demo(DemoArgs),
    /// The daemon: read a source, decode, track and ship SBS lines to a
    /// Kinesis stream (--stream) or stdout until the input ends or
    /// SIGTERM/SIGINT. Every option can also
    /// come from the --config file or an ADSB_KINESIS_<OPTION> variable
    /// (e.g. ADSB_KINESIS_STATS_INTERVAL); flags win over the environment,
    /// which wins over the file.
    Run(Box<RunArgs>),
    /// Read every shard of a Kinesis stream (following splits and merges)
    /// and print its SBS lines, or a live table of aircraft (--table).
    #[cfg(feature = "aws")]
    Tail(tail_cmd::TailArgs),
    /// Check the configuration `run` would use (same flags, --config file
    /// and ADSB_KINESIS_* variables) and the AWS settings: one line, exit 0
    /// if it can run, 78 if a setting is wrong (1 for other trouble). No
    /// network calls without --online.
    CheckConfig(Box<CheckConfigArgs>),
    /// List the RTL-SDR dongles on USB (index, USB ids, serial) for
    /// `--source rtlsdr:INDEX` or `rtlsdr:serial=SERIAL`.
    Devices,
}

#[derive(Args)]
struct CheckConfigArgs {
    /// Also look the stream up in Kinesis (DescribeStreamSummary).
    #[arg(long)]
    online: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum IqFormat {
    Cu8,
    Cs16,
}

#[derive(Args)]
struct SkyArgs {
    /// Aircraft in the air at any time.
    #[arg(long, default_value = "10")]
    aircraft: usize,
    /// Sample rate: 2000000 or 2400000 (also 2.0M, 2.4M).
    #[arg(long, default_value = "2400000", value_parser = parse_rate)]
    sample_rate: u32,
    /// Per-aircraft SNR in dB, or a range MIN:MAX drawn per aircraft. SNR is
    /// pulse power over the noise power in the whole sampled bandwidth.
    #[arg(long, default_value = "15:30", value_parser = parse_snr)]
    snr: (f64, f64),
    /// Fraction of replies made to overlap another reply (0..1).
    #[arg(long, default_value = "0")]
    overlap: f64,
    /// Mean replies per second per aircraft to ground interrogations, on
    /// top of the ~6.2 squitters a second; 10 with 150 aircraft makes a
    /// busy site's ~2 500 replies/s.
    #[arg(long, default_value = "1.25")]
    reply_rate: f64,
    /// Random seed: the same arguments give the same bytes.
    #[arg(long, default_value = "1")]
    seed: u64,
    /// Receiver latitude, degrees.
    #[arg(long, default_value = "37.5", allow_hyphen_values = true, value_parser = parse_lat)]
    lat: f64,
    /// Receiver longitude, degrees.
    #[arg(long, default_value = "14.0", allow_hyphen_values = true, value_parser = parse_lon)]
    lon: f64,
}

#[derive(Args)]
struct SimulateArgs {
    /// Output IQ file; the truth goes to OUTPUT.truth.
    #[arg(short, long)]
    output: PathBuf,
    /// Sample format of the output.
    #[arg(long, value_enum, default_value = "cu8")]
    format: IqFormat,
    /// Seconds of signal.
    #[arg(long, default_value = "10")]
    duration: f64,
    #[command(flatten)]
    sky: SkyArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// Seconds of simulated signal to decode (0 = forever).
    #[arg(long, default_value = "10")]
    duration: f64,
    #[command(flatten)]
    sky: SkyArgs,
}

fn parse_snr(s: &str) -> Result<(f64, f64), String> {
    let bad = || format!("{s:?} is not an SNR in dB or a range MIN:MAX");
    let (a, b) = match s.split_once(':') {
        Some((a, b)) => (
            a.parse::<f64>().map_err(|_| bad())?,
            b.parse::<f64>().map_err(|_| bad())?,
        ),
        None => {
            let v = s.parse::<f64>().map_err(|_| bad())?;
            (v, v)
        }
    };
    if a.is_finite() && b.is_finite() && a <= b {
        Ok((a, b))
    } else {
        Err(bad())
    }
}

fn sim_config(sky: &SkyArgs, duration: f64, format: SampleFormat) -> SimConfig {
    SimConfig {
        aircraft: sky.aircraft,
        duration_s: duration,
        sample_rate: sky.sample_rate,
        format,
        snr_db: sky.snr,
        seed: sky.seed,
        overlap: sky.overlap,
        reply_rate: sky.reply_rate,
        receiver: (sky.lat, sky.lon),
        ..SimConfig::default()
    }
}

fn simulate_cmd(a: SimulateArgs) -> Result<()> {
    if !(a.duration.is_finite() && a.duration > 0.0) {
        bail!("--duration must be a positive number of seconds");
    }
    let format = if a.format == IqFormat::Cu8 {
        SampleFormat::Cu8
    } else {
        SampleFormat::Cs16
    };
    let cfg = sim_config(&a.sky, a.duration, format);
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut truth_path = a.output.clone().into_os_string();
    truth_path.push(".truth");
    let create = |p: &std::path::Path| {
        File::create(p).with_context(|| format!("cannot create {}", p.display()))
    };
    let mut iq = BufWriter::new(create(&a.output)?);
    let mut truth = BufWriter::new(create(std::path::Path::new(&truth_path))?);
    let stats = simulate(&cfg, &mut iq, &mut truth)?;
    iq.flush()?;
    truth.flush()?;
    eprintln!(
        "wrote {} samples to {} and {} frames to {}",
        stats.samples,
        a.output.display(),
        stats.frames,
        std::path::Path::new(&truth_path).display()
    );
    Ok(())
}

fn demo(a: DemoArgs) -> Result<()> {
    if !(a.duration.is_finite() && a.duration >= 0.0) {
        bail!("--duration must be a number of seconds (0 = forever)");
    }
    let duration = if a.duration == 0.0 {
        f64::INFINITY
    } else {
        a.duration
    };
    let cfg = sim_config(&a.sky, duration, SampleFormat::Cu8);
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let rate = Rate::from_hz(cfg.sample_rate).context("unsupported sample rate")?;
    let hz = f64::from(rate.hz());
    let mut sim = Simulator::new(cfg.clone());
    let mut dec = IqDecoder::new(SampleFormat::Cu8, rate, 1);
    let stdout = io::stdout();
    let mut p = Printer {
        out: BufWriter::new(stdout.lock()),
        format: OutputFormat::Sbs,
        tracker: Tracker::new(Some(cfg.receiver)),
        start_ms: unix_ms_now(),
        frames_by_df: [0; 25],
        undecodable: 0,
        repaired: 0,
        late: 0,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut truth = Vec::new();
    let mut frames = Vec::new();
    let mut sent = 0u64;
    let flush = |p: &mut Printer<BufWriter<io::StdoutLock<'_>>>,
                 frames: &mut Vec<Decoded>|
     -> io::Result<()> {
        for d in frames.drain(..) {
            p.frame(&d.frame, d.sample as f64 / hz, Some(&d))?;
        }
        p.out.flush()
    };
    loop {
        let n = sim.fill(&mut buf, &mut truth);
        sent += truth.len() as u64;
        truth.clear();
        if n == 0 {
            break;
        }
        dec.push(&buf[..n], &mut frames);
        flush(&mut p, &mut frames)?;
    }
    dec.finish(&mut frames);
    flush(&mut p, &mut frames)?;
    let got: u64 = p.frames_by_df.iter().sum();
    eprintln!(
        "simulated {sent} frames, decoded {got}, aircraft {}, positions {}",
        p.tracker.len(),
        p.tracker.stats.positions
    );
    Ok(())
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum InputFormat {
    Cu8,
    Cs16,
    Hex,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Sbs,
    Avr,
    Json,
}

#[derive(Args)]
struct DecodeArgs {
    /// Input file, or - for standard input.
    input: PathBuf,
    /// Input format: cu8 (unsigned 8-bit I/Q), cs16 (signed 16-bit LE I/Q) or hex frames.
    #[arg(long, value_enum, default_value = "cu8")]
    iformat: InputFormat,
    /// Sample rate of IQ input: 2000000 or 2400000 (also 2.0M, 2.4M).
    #[arg(long, default_value = "2400000", value_parser = parse_rate)]
    sample_rate: u32,
    /// Output: sbs (BaseStation lines), avr (*HEX;) or json (one object per frame).
    #[arg(long, value_enum, default_value = "sbs")]
    output: OutputFormat,
    /// Where the receiver is and how much error repair.
    #[command(flatten)]
    receiver: ReceiverConfig,
}

fn parse_rate(s: &str) -> Result<u32, String> {
    s.parse::<Rate>().map(|r| r.hz())
}

/// CPU time (user + system) of this process, seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Everything after demodulation: parse, track, format, count.
struct Printer<W: Write> {
    out: W,
    format: OutputFormat,
    tracker: Tracker,
    start_ms: i64,
    frames_by_df: [u64; 25],
    undecodable: u64,
    repaired: u64,
    late: u64,
}

impl<W: Write> Printer<W> {
    fn frame(&mut self, frame: &Frame, t: f64, rx: Option<&Decoded>) -> io::Result<()> {
        self.frames_by_df[usize::from(frame.df.min(24))] += 1;
        if let Some(r) = rx {
            self.repaired += u64::from(r.repaired > 0);
            self.late += u64::from(r.late);
        }
        let position = self.tracker.update(frame, t);
        match self.format {
            OutputFormat::Avr => {
                writeln!(self.out, "*{};", Hex(frame.bytes()))
            }
            OutputFormat::Json => {
                let mut m = frame_json(frame, Some(t), position);
                if let Some(r) = rx {
                    m.insert("signal".into(), r.signal.into());
                    if r.repaired > 0 {
                        m.insert("repaired_bits".into(), r.repaired.into());
                    }
                    if r.late {
                        m.insert("late".into(), true.into());
                    }
                }
                writeln!(self.out, "{}", serde_json::Value::Object(m))
            }
            OutputFormat::Sbs => {
                let generated = generated_ms(self.start_ms, t);
                match SbsLine::from_frame(frame, position, generated, unix_ms_now()) {
                    Some(line) => write!(self.out, "{line}\r\n"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Bad input lines named one by one, then only counted (the summary
/// says how many): a file of junk must not become a flood on stderr.
const LINE_WARNINGS: u64 = 10;

fn warn_line(bad_so_far: u64, line: usize, e: &dyn std::fmt::Display) {
    if bad_so_far <= LINE_WARNINGS {
        eprintln!("warning: line {line}: {e}");
    }
    if bad_so_far == LINE_WARNINGS {
        eprintln!("warning: more bad lines are only counted");
    }
}

fn decode(args: DecodeArgs) -> Result<()> {
    args.receiver.validate().map_err(|e| match e {
        ConfigError::Invalid { field, message } => anyhow::anyhow!("--{field}: {message}"),
        e => e.into(),
    })?;
    let receiver = args.receiver.position();
    let input: Box<dyn Read> = if args.input.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            bail!("{} is a directory", args.input.display());
        }
        Box::new(f)
    };
    let stdout = io::stdout();
    let mut p = Printer {
        out: BufWriter::with_capacity(64 * 1024, stdout.lock()),
        format: args.output,
        tracker: Tracker::new(receiver),
        start_ms: unix_ms_now(),
        frames_by_df: [0; 25],
        undecodable: 0,
        repaired: 0,
        late: 0,
    };
    let mut signal_seconds = None;
    let mut io_err: Option<io::Error> = None;
    match args.iformat {
        InputFormat::Hex => {
            let mut t_last = 0.0;
            // Split on bytes, not UTF-8 lines: a stray binary byte is a bad
            // line to warn about, not a reason to stop.
            for (n, line) in BufReader::new(input).split(b'\n').enumerate() {
                let line = line.with_context(|| format!("reading {}", args.input.display()))?;
                let line = String::from_utf8_lossy(&line);
                match hexin::parse_line(&line) {
                    Ok(None) => {}
                    Ok(Some((t, bytes))) => {
                        let t = t.unwrap_or(t_last);
                        t_last = t;
                        match modes::parse(&bytes) {
                            Ok(frame) => p.frame(&frame, t, None)?,
                            Err(e) => {
                                p.undecodable += 1;
                                warn_line(p.undecodable, n + 1, &e);
                            }
                        }
                    }
                    Err(e) => {
                        p.undecodable += 1;
                        warn_line(p.undecodable, n + 1, &e);
                    }
                }
            }
        }
        InputFormat::Cu8 | InputFormat::Cs16 => {
            let fmt = if args.iformat == InputFormat::Cu8 {
                SampleFormat::Cu8
            } else {
                SampleFormat::Cs16
            };
            let rate = Rate::from_hz(args.sample_rate).context("unsupported sample rate")?;
            let mut dec = IqDecoder::new(fmt, rate, args.receiver.fix);
            let hz = f64::from(rate.hz());
            let leftover = dec
                .run(input, |d| {
                    if io_err.is_some() {
                        return;
                    }
                    if let Err(e) = p.frame(&d.frame, d.sample as f64 / hz, Some(&d)) {
                        io_err = Some(e);
                    }
                })
                .with_context(|| format!("reading {}", args.input.display()))?;
            if leftover > 0 {
                eprintln!("warning: input ends with {leftover} byte(s) short of a whole sample (truncated file?); decoded what was complete");
            }
            signal_seconds = Some(dec.demod().samples_seen as f64 / hz);
        }
    }
    if let Some(e) = io_err {
        return Err(e.into());
    }
    p.out.flush()?;
    let by_df: Vec<String> = p
        .frames_by_df
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(df, n)| format!("DF{df}:{n}"))
        .collect();
    let total: u64 = p.frames_by_df.iter().sum();
    let mut summary = format!(
        "frames {total} ({}), repaired {}, late {}, aircraft {}, positions {}",
        by_df.join(" "),
        p.repaired,
        p.late,
        p.tracker.len(),
        p.tracker.stats.positions
    );
    if p.undecodable > 0 {
        summary += &format!(", bad lines {}", p.undecodable);
    }
    if let Some(s) = signal_seconds {
        let cpu = cpu_seconds();
        summary += &format!(
            ", signal {s:.3} s, cpu {cpu:.3} s ({:.3} s per s of signal)",
            if s > 0.0 { cpu / s } else { 0.0 }
        );
    }
    eprintln!("{summary}");
    // 20 ms of samples hold a few frames anywhere near traffic: none at
    // all is more often a wrong rate or format than an empty sky.
    if total == 0 && signal_seconds.is_some_and(|s| s >= 0.02) {
        eprintln!(
            "hint: no frames in {:.1} s of samples. Is the rate right (--sample-rate 2.0M for \
             a file recorded at 2 MS/s)? The format (--iformat cs16 for 16-bit samples)? \
             An antenna and 1090 MHz?",
            signal_seconds.unwrap_or(0.0)
        );
    }
    Ok(())
}

/// `run`'s options: the file, and every option (config::RunConfig).
#[derive(Args)]
struct RunArgs {
    /// Fail (exit 78) if no Kinesis stream is configured, rather than
    /// print SBS lines on stdout (the systemd unit uses this).
    #[arg(long)]
    require_stream: bool,
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    config: RunConfig,
}

/// Logs to the journal under systemd, else to stderr (stdout carries only
/// SBS lines); RUST_LOG filters.
/// Runs `job` on a current-thread runtime, handing it a future that
/// resolves at SIGTERM or SIGINT. The handlers are installed before `job`
/// starts, so an early signal is not fatal.
fn until_signalled<F: std::future::Future>(
    job: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) -> F,
) -> Result<F::Output> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let shutdown = Box::pin(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = int.recv() => tracing::info!("SIGINT"),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: draining, then exit status 129 (restarted by systemd: the configuration is read again)");
                    HANGUP.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
        Ok(job(shutdown).await)
    })
}

fn init_tracing() {
    adsb_kinesis::service::init_tracing();
}

/// The config `run` and `check-config` use: file, environment, flags (the
/// flags as `m`, the subcommand's matches, tells which were given).
fn load_config(a: &RunArgs, m: &ArgMatches) -> Result<RunConfig> {
    adsb_kinesis::config::check_env(std::env::vars_os())?;
    Ok(RunConfig::load(&a.file, m, |k| std::env::var(k).ok())?)
}

fn check_config_cmd(a: CheckConfigArgs, m: &ArgMatches) -> Result<()> {
    // Before any thread: this may set AWS_SHARED_CREDENTIALS_FILE.
    adsb_kinesis::service::adopt_systemd_aws_credentials();
    let opts = adsb_kinesis::check::CheckOptions {
        online: a.online,
        require_stream: a.run.require_stream,
    };
    let config = load_config(&a.run, m)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let line = rt.block_on(adsb_kinesis::check::check(&config, opts))?;
    println!("{line}");
    Ok(())
}

fn run_cmd(a: RunArgs, m: &ArgMatches) -> Result<()> {
    // Before any thread: this may set AWS_SHARED_CREDENTIALS_FILE.
    let creds = adsb_kinesis::service::adopt_systemd_aws_credentials();
    let config = load_config(&a, m)?;
    config.validate()?;
    if a.require_stream && config.kinesis.stream_id().is_none() {
        return Err(adsb_kinesis::check::CheckError::NoStream.into());
    }
    init_tracing();
    if let Some(f) = creds {
        tracing::info!(file = %f.display(), "AWS credentials from systemd (LoadCredential=)");
    }
    let result = until_signalled(|shutdown| daemon::run(config, shutdown))?;
    match result {
        Ok(_) => Ok(()),
        // Closing a pipe early (| head) is not an error worth a message.
        Err(RunError::Write(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `adsb-kinesis devices`: the dongles rtl-sdr-rs can see.
fn devices() -> Result<()> {
    use adsb_kinesis::source::rtlsdr;
    let list = rtlsdr::list().map_err(anyhow::Error::msg)?;
    if list.is_empty() {
        println!("no RTL-SDR found: plug the dongle in; if it is plugged in, check `lsusb` for 0bda:2838 or 0bda:2832 and the udev rule from systemd/");
        return Ok(());
    }
    for d in list {
        println!(
            "{}: {:04x}:{:04x} {} {} serial={}",
            d.index, d.vendor_id, d.product_id, d.manufacturer, d.product, d.serial
        );
    }
    Ok(())
}

/// SIGHUP came: after the same drain as SIGTERM, exit 129 (128 + SIGHUP)
/// rather than 0, so that the unit's `Restart=on-failure` starts it again
/// and it reads its configuration anew, as a reload would; by hand in a
/// terminal that hangs up, it simply stops without losing what it held.
static HANGUP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The exit status of a setting that cannot work (sysexits.h EX_CONFIG).
/// The unit's `RestartPreventExitStatus=78` then leaves the service
/// `failed` after one try, with the reason in the journal, instead of
/// restarting it every 10 s; any other failure (a dongle away, the network
/// down) is restarted.
const EXIT_CONFIG: u8 = 78;

/// True when `e` comes from a setting: the config itself, or region,
/// credentials, endpoint or a stream that Kinesis says is missing or not
/// ours, found at start.
fn is_config_error(e: &anyhow::Error) -> bool {
    use adsb_kinesis::check::CheckError;
    use adsb_kinesis::output::kinesis::KinesisError;
    #[cfg(feature = "aws")]
    fn start(e: &adsb_kinesis::aws::StartError) -> bool {
        use adsb_kinesis::aws::StartError;
        use adsb_kinesis::kinesis::batch::ErrorClass;
        match e {
            StartError::Stream { failure, .. } => failure.class == ErrorClass::Configuration,
            _ => true,
        }
    }
    #[cfg(not(feature = "aws"))]
    fn start(_: &std::convert::Infallible) -> bool {
        true
    }
    e.chain().any(|c| {
        if c.is::<ConfigError>() {
            return true;
        }
        let kinesis = |k: &KinesisError| match k {
            #[cfg(feature = "aws")]
            KinesisError::Aws(s) => start(s),
            #[cfg(not(feature = "aws"))]
            KinesisError::NoAws => true,
            _ => false,
        };
        if let Some(r) = c.downcast_ref::<RunError>() {
            return match r {
                RunError::Config(_) => true,
                RunError::Kinesis(k) => kinesis(k),
                _ => false,
            };
        }
        if let Some(k) = c.downcast_ref::<KinesisError>() {
            return kinesis(k);
        }
        #[cfg(feature = "aws")]
        if let Some(s) = c.downcast_ref::<adsb_kinesis::aws::StartError>() {
            return start(s);
        }
        match c.downcast_ref::<CheckError>() {
            #[cfg(feature = "aws")]
            Some(CheckError::Aws(s)) => start(s),
            Some(CheckError::Spool { .. }) | None => false,
            Some(_) => true,
        }
    })
}

/// The last words of a failed command, one line. Under systemd (stderr
/// is the journal) the `<3>` prefix files it at PRIORITY=3, so that
/// `systemctl status` and `journalctl -p err` show it.
fn print_fatal(e: &anyhow::Error) {
    let journal =
        adsb_kinesis::service::stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref());
    let text = format!("{e:#}").replace('\n', " ");
    if journal {
        eprintln!("<3>error: {text}");
    } else {
        eprintln!("error: {text}");
    }
}

fn main() -> ExitCode {
    // Before any thread starts (this edits the environment).
    adsb_kinesis::service::drop_empty_aws_vars();
    // The matches are kept: the config layers ask them which flags were
    // given on the command line.
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line naming the problem; clap's usage hints stay out of logs.
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            eprintln!("{first}");
            return ExitCode::from(2);
        }
    };
    let sub = |name: &str| {
        matches
            .subcommand_matches(name)
            .cloned()
            .unwrap_or_default()
    };
    let result = match cli.command {
        Command::Decode(a) => decode(a),
        Command::Simulate(a) => simulate_cmd(a),
        Command::Demo(a) => demo(a),
        Command::Run(a) => run_cmd(*a, &sub("run")),
        #[cfg(feature = "aws")]
        Command::Tail(a) => tail_cmd::tail(a, &sub("tail")),
        Command::CheckConfig(a) => check_config_cmd(*a, &sub("check-config")),
        Command::Devices => devices(),
    };
    match result {
        Ok(()) if HANGUP.load(std::sync::atomic::Ordering::Relaxed) => ExitCode::from(129),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Closing a pipe early (| head) is not an error worth a message.
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            print_fatal(&e);
            if is_config_error(&e) {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
