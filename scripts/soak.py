"""The soak of scripts/soak: see that script's header. Loopback only."""

import atexit
import collections
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import boto3

BIN, MINUTES, SEED = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
STREAM = "soak"
AIRCRAFT = "500"
PACK_LINES = "10"
# A busy site packs: 10 lines of an aircraft in a record, 2 s to fill it.
LINGER = "2s"
STATS_S = 60
SAMPLE_S = 10
TMPFS_SIZE = "64m"

OUT = os.path.abspath(os.path.join("target", "soak", time.strftime("%Y%m%dT%H%M%S")))
os.makedirs(OUT)
CARD = os.path.join(OUT, "card")
SPOOL = os.path.join(CARD, "spool")
os.makedirs(CARD)
ENV = dict(
    os.environ,
    AWS_ACCESS_KEY_ID="soak",
    AWS_SECRET_ACCESS_KEY="soak",
    AWS_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    RUST_LOG=os.environ.get("RUST_LOG", "info"),
    NO_COLOR="1",
)
for k in list(ENV):
    if k.startswith("ADSB_KINESIS_"):
        del ENV[k]
T0 = time.monotonic()
rng = random.Random(SEED)


@atexit.register
def _cleanup():
    # A soak that dies halfway must not leave moto, the proxy or a daemon
    # behind.
    for p in children + [r.p for r in globals().get("runs", [])]:
        if p.poll() is None:
            p.kill()
events = open(os.path.join(OUT, "events.log"), "w")
children = []


def now():
    return time.monotonic() - T0


def note(what):
    line = "%7.1f %s" % (now(), what)
    print(line, flush=True)
    events.write(line + "\n")
    events.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, secs=60):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("soak: nothing listens on %d" % port)


# Kinesis: moto, a 2-shard stream, the fault proxy in front.
moto_port = free_port()
# moto's Kinesis finds a shard's newest sequence number by listing every
# record, once per record put: after an hour at 2 000 lines/s one
# PutRecords takes seconds and moto, not the daemon, is what is measured.
# The stand-in gets that one lookup made O(1) (dicts keep insertion order);
# nothing else of it changes.
MOTO = '''
import sys
from moto.kinesis import models
models.Shard.get_max_sequence_number = lambda self: next(reversed(self.records), 0)
models.Shard.get_min_sequence_number = lambda self: next(iter(self.records), 0)
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
'''
moto = subprocess.Popen(
    [sys.executable, "-c", MOTO, str(moto_port)],
    stdout=subprocess.DEVNULL,
    stderr=open(os.path.join(OUT, "moto.log"), "w"),
)
children.append(moto)
wait_port(moto_port)
moto_url = "http://127.0.0.1:%d" % moto_port
kinesis = boto3.client("kinesis", endpoint_url=moto_url, region_name="us-east-1",
                       aws_access_key_id="soak", aws_secret_access_key="soak")
kinesis.create_stream(StreamName=STREAM, ShardCount=2)
while kinesis.describe_stream(StreamName=STREAM)["StreamDescription"]["StreamStatus"] != "ACTIVE":
    time.sleep(0.2)
proxy = subprocess.Popen(
    [sys.executable, "tests/fault_kinesis.py", "--upstream", moto_url, "--listen-port", "0",
     "--seed", str(SEED), "--hang-seconds", "8"],
    stdout=subprocess.PIPE, stderr=open(os.path.join(OUT, "proxy.log"), "w"), text=True,
)
children.append(proxy)
proxy_port = int(proxy.stdout.readline().split()[1])
proxy_url = "http://127.0.0.1:%d" % proxy_port


def fault(**settings):
    req = urllib.request.Request(proxy_url + "/_fault/config", json.dumps(settings).encode(),
                                 method="POST")
    return json.load(urllib.request.urlopen(req, timeout=10))


NO_FAULTS = dict(outage=False, throttle=0, fail_records=0, drop=0, hang=0, error_500=0)

# The spool on a small tmpfs, as on an SD card that can fill up.
tmpfs = False
if os.geteuid() == 0:
    tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS_SIZE, "tmpfs", CARD]
                           ).returncode == 0
if not tmpfs:
    note("not root (or no tmpfs): the spool is a plain directory; full-disk episodes skipped")

PORTS = {k: free_port() for k in ("beast", "sbs", "raw", "http")}
log = open(os.path.join(OUT, "daemon.log"), "w")
runs = []  # one dict per run: stderr lines, exit status


class Run:
    def __init__(self, args):
        self.n = len(runs) + 1
        self.lines = []
        self.rc = None
        self.p = subprocess.Popen([BIN, "run"] + args, env=ENV, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  errors="replace")
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        runs.append(self)
        note("run %d started, pid %d" % (self.n, self.p.pid))

    def read(self):
        for line in self.p.stderr:
            line = line.rstrip("\n")
            self.lines.append(line)
            log.write("[run %d] %s\n" % (self.n, line))
        log.flush()

    def stop(self, sig, limit=90):
        self.p.send_signal(sig)
        try:
            self.rc = self.p.wait(limit)
        except subprocess.TimeoutExpired:
            note("run %d did not exit %d s after %s: SIGKILL" % (self.n, limit, sig.name))
            self.p.kill()
            self.rc = self.p.wait()
        self.reader.join(10)
        note("run %d exited %s after %s" % (self.n, self.rc, sig.name))


def daemon_args():
    return [
        "--sim-aircraft", AIRCRAFT,
        "--stream", STREAM,
        "--endpoint-url", proxy_url,
        "--spool-dir", SPOOL,
        "--pack-lines", PACK_LINES,
        "--linger", LINGER,
        "--stats-interval", str(STATS_S),
        "--beast-listen", "127.0.0.1:%d" % PORTS["beast"],
        "--sbs-listen", "127.0.0.1:%d" % PORTS["sbs"],
        "--raw-listen", "127.0.0.1:%d" % PORTS["raw"],
        "--http-listen", "127.0.0.1:%d" % PORTS["http"],
    ]


current = Run(daemon_args())
samples = open(os.path.join(OUT, "samples.csv"), "w")
samples.write("t_s,run,rss_kib,cpu_pct,card_free_kib\n")
series = []  # (t, run, rss_kib, cpu_pct)
stop_sampling = threading.Event()
TICK = os.sysconf("SC_CLK_TCK")


def sampler():
    last = {}
    while not stop_sampling.wait(SAMPLE_S):
        r = current
        try:
            status = open("/proc/%d/status" % r.p.pid).read()
            stat = open("/proc/%d/stat" % r.p.pid).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
        cpu_ticks = int(stat[11]) + int(stat[12])
        t = now()
        cpu = None
        if r.n in last:
            lt, lc = last[r.n]
            cpu = 100.0 * (cpu_ticks - lc) / TICK / (t - lt)
        last[r.n] = (t, cpu_ticks)
        st = os.statvfs(CARD)
        samples.write("%.0f,%d,%d,%s,%d\n" % (t, r.n, rss, "" if cpu is None else "%.1f" % cpu,
                                             st.f_bavail * st.f_frsize // 1024))
        samples.flush()
        if cpu is not None:
            series.append((t, r.n, rss, cpu))


threading.Thread(target=sampler, daemon=True).start()


# Episodes. Each takes its duration and leaves no fault behind.
def outage(d):
    fault(outage=True)
    time.sleep(d)
    fault(**NO_FAULTS)


def throttling(d):
    fault(throttle=0.4, fail_records=0.2)
    time.sleep(d)
    fault(**NO_FAULTS)


def flaky(d):
    fault(drop=0.1, hang=0.03, error_500=0.1, fail_records=0.05)
    time.sleep(d)
    fault(**NO_FAULTS)


def full_disk(d):
    # Kinesis away so that the spool grows, and the card filled by
    # something else: the spool must shrink its cap, drop the oldest and
    # keep running.
    fault(outage=True)
    junk = os.path.join(CARD, "junk")
    block = b"\0" * 65536
    try:
        # Unbuffered: the write that meets the full disk fails here, not
        # in a close.
        with open(junk, "wb", buffering=0) as f:
            while True:
                f.write(block)
    except OSError:
        pass
    note("card full: %d KiB free" % (os.statvfs(CARD).f_bavail * os.statvfs(CARD).f_frsize // 1024))
    time.sleep(d)
    if os.path.exists(junk):
        os.remove(junk)
    fault(**NO_FAULTS)


def churn(d):
    # LAN clients coming and going: bursts of connections past the
    # listeners' limit, some reading, some never reading, map polls.
    end = time.monotonic() + d
    made = 0
    while time.monotonic() < end:
        socks = []
        for _ in range(rng.randrange(20, 150)):
            kind = rng.choice(["beast", "sbs", "raw", "http"])
            try:
                s = socket.create_connection(("127.0.0.1", PORTS[kind]), timeout=2)
            except OSError:
                continue
            made += 1
            if kind == "http":
                s.sendall(b"GET /data/aircraft.json HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        time.sleep(rng.uniform(0.5, 5))
        for s in socks:
            if rng.random() < 0.5:
                try:
                    s.settimeout(0.05)
                    s.recv(65536)
                except OSError:
                    pass
            if rng.random() < 0.3:
                # A reset instead of a close.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            s.close()
        time.sleep(rng.uniform(0, 2))
    note("churn: %d connections" % made)


def signal_restart(_d):
    global current
    sig = rng.choice([signal.SIGHUP, signal.SIGTERM])
    current.stop(sig)
    time.sleep(2)  # RestartSec of the unit
    current = Run(daemon_args())


EPISODES = [(outage, 60, 240), (throttling, 60, 180), (flaky, 60, 180), (churn, 30, 120),
            (signal_restart, 0, 0)]
if tmpfs:
    EPISODES.append((full_disk, 60, 150))

end_at = MINUTES * 60 - 60
time.sleep(min(90, end_at / 4))
counts = collections.Counter()
while now() < end_at:
    f, lo, hi = rng.choice(EPISODES)
    d = min(rng.uniform(lo, hi), max(0, end_at - now()))
    note("%s for %.0f s" % (f.__name__, d))
    counts[f.__name__] += 1
    f(d)
    note("%s over" % f.__name__)
    time.sleep(min(rng.uniform(20, 90), max(0, end_at - now())))

fault(**NO_FAULTS)
time.sleep(30)
stop_sampling.set()
current.stop(signal.SIGTERM)
# A last run with nothing to decode sends what is left in the spool.
empty = os.path.join(OUT, "empty.cu8")
open(empty, "wb").close()
drain = Run(["--source", "file:" + empty, "--stream", STREAM, "--endpoint-url", proxy_url,
             "--spool-dir", SPOOL, "--pack-lines", PACK_LINES, "--shutdown-timeout", "900s"])
drain.rc = drain.p.wait(1000)
drain.reader.join(10)
note("drain run exited %s" % drain.rc)

proxy_stats = json.load(urllib.request.urlopen(proxy_url + "/_fault/stats", timeout=10))

# Read the stream back.
got = collections.Counter()
records = 0
for shard in kinesis.describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"]:
    it = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    while it:
        r = kinesis.get_records(ShardIterator=it, Limit=10000)
        for rec in r["Records"]:
            records += 1
            for line in rec["Data"].split(b"\n"):
                if line:
                    got[line] += 1
        if not r["Records"]:
            break
        it = r.get("NextShardIterator")
note("stream read back: %d records" % records)

for p in children:
    p.terminate()
    p.wait(30)
if tmpfs:
    subprocess.run(["umount", "-l", CARD])


def field(lines, marker, name):
    """`name` of the last line containing `marker`, or 0."""
    for line in reversed(lines):
        if marker in line:
            m = re.search(r"\b%s=(\d+)" % name, line)
            return int(m.group(1)) if m else 0
    return 0


made = sum(field(r.lines, "telemetry: finished", "lines_made") for r in runs)
lines_in = sum(field(r.lines, "kinesis finished", "lines_in") for r in runs)
dropped = sum(field(r.lines, "kinesis finished", "spool_dropped_lines") for r in runs)
refused = sum(field(r.lines, "kinesis finished", "lines_refused") for r in runs)
left = field(drain.lines, "kinesis finished", "spool_records")
unique, total = len(got), sum(got.values())
twice = [line.decode(errors="replace") for line, n in got.items() if n > 1]
unknown_requests = sum(field(r.lines, "kinesis finished", "unknown_outcome") for r in runs)
# Lines are counted, not matched: the sky itself makes a few identical
# lines (two all-call replies of one aircraft in one millisecond), so
# distinct lines undercount. What was made and not dropped must be in the
# stream; more than that only from requests whose outcome was unknown.
expected = made - dropped - refused
missing = max(0, expected - total)
extra = max(0, total - expected)
clean_exits = all(r.rc in (0, 129) for r in runs)

# Log lines repeated within a minute, per run, numbers masked.
TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+(.*)$")
repeats = []
for r in runs:
    seen = {}
    for line in r.lines:
        m = TS.match(line)
        if not m:
            continue
        t = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + float(
            "0" + m.group(1)[19:])
        key = re.sub(r"\d+(\.\d+)?", "#", m.group(2))
        if key in seen and t - seen[key] < 58:
            repeats.append("run %d, %.0f s apart: %s" % (r.n, t - seen[key], line[:200]))
        seen[key] = t

# RSS and CPU over time, in eighths of the run.
rows = []
if series:
    span = series[-1][0] - series[0][0]
    for i in range(8):
        lo = series[0][0] + span * i / 8
        hi = series[0][0] + span * (i + 1) / 8
        part = [s for s in series if lo <= s[0] <= hi]
        if part:
            rows.append((lo / 60, hi / 60, max(s[2] for s in part) / 1024,
                         statistics.median(s[3] for s in part), max(s[3] for s in part)))
# Flat: a process reaches its plateau (allocator arenas, the largest
# client set) early; the second half's peak may not pass the first's by
# more than 2 MiB.
flat = len(rows) >= 4 and max(r[2] for r in rows[4:]) <= max(r[2] for r in rows[:4]) + 2

out = []
out.append("# soak: %.0f min, seed %d, %s aircraft, pack-lines %s, spool on %s" % (
    MINUTES, SEED, AIRCRAFT, PACK_LINES, "a %s tmpfs" % TMPFS_SIZE if tmpfs else "a plain dir"))
out.append("")
out.append("episodes: " + ", ".join("%s x%d" % kv for kv in sorted(counts.items())))
out.append("runs: %d (exit codes %s)" % (len(runs), [r.rc for r in runs]))
out.append("")
out.append("| | lines |")
out.append("|---|---|")
for k, v in [("made (sum of lines_made)", made), ("reached the sink (lines_in)", lines_in),
             ("in the stream, distinct", unique), ("in the stream, total", total),
             ("dropped by the spool (spool_dropped_lines)", dropped),
             ("refused (lines_refused)", refused), ("left in the spool", left),
             ("missing (made - dropped - refused - total, if > 0)", missing),
             ("extra (total - made + dropped + refused, if > 0)", extra)]:
    out.append("| %s | %d |" % (k, v))
out.append("")
out.append("proxy: " + ", ".join("%s=%s" % (k, proxy_stats[k]) for k in (
    "put_records_requests", "throttled", "errored_500", "hung", "dropped", "outage_closed",
    "records_failed", "records_forwarded", "unknown_outcome_records")))
out.append("sender: requests with an unknown outcome (their records may be stored twice): %d"
           % unknown_requests)
# SD-card wear: what each run wrote to the spool (16 bytes, a header, for
# a run that could reach Kinesis throughout).
out.append("spool bytes written per run (SD-card wear): " + ", ".join(
    "%s: %d" % ("drain" if r is drain else "run %d" % r.n,
                field(r.lines, "kinesis finished", "spool_written_bytes"))
    for r in runs))
out.append("lines found more than once (first 5; a few are made twice by the sky):")
out.extend("  " + line for line in twice[:5])
out.append("")
out.append("| minutes | peak RSS MiB | CPU % median | CPU % max |")
out.append("|---|---|---|---|")
for lo, hi, rss, med, mx in rows:
    out.append("| %.0f-%.0f | %.1f | %.1f | %.1f |" % (lo, hi, rss, med, mx))
out.append("")
out.append("log lines repeated within a minute: %d" % len(repeats))
out.extend("  " + r for r in repeats[:20])
checks = [("every line in the stream or counted", missing == 0),
          ("spool empty at the end", left == 0),
          # A request whose response never came may be stored and sent
          # again: at most its records (500), each of PACK_LINES lines.
          ("extra lines within the requests of unknown outcome",
           extra <= (int(proxy_stats["unknown_outcome_records"]) + 500 * unknown_requests)
           * int(PACK_LINES)),
          ("RSS flat", flat), ("no log line repeated within a minute", not repeats),
          ("every run exited cleanly", clean_exits)]
out.append("")
for name, ok in checks:
    out.append("%s: %s" % ("PASS" if ok else "FAIL", name))
text = "\n".join(out)
print(text)
open(os.path.join(OUT, "summary.md"), "w").write(text + "\n")
print("soak: everything is in", OUT)
sys.exit(0 if all(ok for _, ok in checks) else 1)
