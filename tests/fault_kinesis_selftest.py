#!/usr/bin/env python3
"""Self-test of tests/fault_kinesis.py against a real moto server.

Run as ``python3 tests/fault_kinesis_selftest.py``. It starts moto and the proxy on free
127.0.0.1 ports, creates a 2-shard stream through the proxy and checks:

* delivery: 2000 records sent through 30 % record failures, 10 % throttles and a few 500s,
  hangs and drops, the client retrying only what it must, all arrive; any record stored
  twice was in a request whose outcome the client never learnt, and there are no more
  duplicates than the proxy's ``unknown_outcome_records``;
* outage: while on, requests are cut off and store nothing; once off, delivery resumes;
* the same with 6 sender threads at once;
* read faults: GetRecords throttled and iterators expired; a reader that retries the
  throttled call and gets a new iterator after the last sequence number it saw reads
  every record exactly once, in order;
* malformed input gets a 400 and the proxy keeps serving;
* the stats endpoint, config validation, and SIGTERM (exit 0 with a STATS line).

Needs moto with its server extra (``pip install 'moto[server]'``, which brings boto3).
Prints ``N passed, M failed`` last and exits non-zero if anything failed.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "fault_kinesis.py")

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    import moto.server  # noqa: F401 (the server extra: flask, werkzeug)
except ImportError as err:
    sys.stderr.write(
        f"fault_kinesis_selftest: moto with its server extra is required ({err}).\n"
        "Install it with: pip install 'moto[server]'\n"
    )
    sys.exit(2)

RECORDS = 2000
BATCH = 50
STREAM = "selftest-" + uuid.uuid4().hex[:8]
# Faults during delivery; the client's read timeout must be shorter than the hang.
FAULTS = {
    "fail_records": 0.3,
    "throttle": 0.1,
    "error_500": 0.05,
    "hang": 0.03,
    "drop": 0.05,
    "hang_seconds": 3,
}
QUIET = {
    "fail_records": 0,
    "throttle": 0,
    "error_500": 0,
    "hang": 0,
    "drop": 0,
    "read_throttle": 0,
    "expire_iterators": 0,
    "hang_seconds": 30,
    "outage": False,
}
CLIENT_READ_TIMEOUT = 1.0
ENV = dict(
    os.environ,
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
)
ENV.pop("AWS_PROFILE", None)

# Errors after which the request may or may not have been stored.
UNKNOWN_OUTCOME = (
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionError,
)


class Failed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failed(f"{what} exited with {proc.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise Failed(f"{what} did not listen on port {port} within {seconds} s")


def read_line(proc: subprocess.Popen, seconds: float) -> str:
    """One stdout line of proc, or Failed after a deadline (readline alone could block)."""
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    if not result:
        raise Failed(f"no output line from the proxy within {seconds} s")
    return result[0]


class Proxy:
    def __init__(self, upstream_port: int, seed: int):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                PROXY,
                "--upstream",
                f"http://127.0.0.1:{upstream_port}",
                "--listen-port",
                "0",
                "--seed",
                str(seed),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        line = read_line(self.proc, 10)
        check(
            line.startswith("LISTENING "), f"proxy's first line is {line!r}, not LISTENING <port>"
        )
        self.port = int(line.split()[1])

    def call(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def configure(self, **settings: object) -> dict:
        status, answer = self.call("POST", "/_fault/config", settings)
        check(status == 200, f"config {settings} answered {status} {answer}")
        return answer

    def stats(self) -> dict:
        status, answer = self.call("GET", "/_fault/stats")
        check(status == 200, f"stats answered {status}")
        return answer


def kinesis(port: int, read_timeout: float = 10.0):
    return boto3.client(
        "kinesis",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=botocore.config.Config(
            # One attempt in all (max_attempts would count retries only): this test does its
            # own retrying and must see every fault.
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=read_timeout,
        ),
    )


def read_stream(client, stream: str) -> list[tuple[str, bytes]]:
    """Every record in every shard from TRIM_HORIZON, as (partition key, data)."""
    out = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10000)
            if not page["Records"]:
                break
            out.extend((r["PartitionKey"], r["Data"]) for r in page["Records"])
            iterator = page.get("NextShardIterator")
    return out


def make_record(i: int) -> dict:
    # Like the daemon's: an SBS-ish line keyed by a 6-hex-digit ICAO address.
    icao = f"{(i * 7919) % 0xFFFFFF:06X}"
    return {"Data": f"MSG,3,1,1,{icao},1,,,,,,{i}\n".encode(), "PartitionKey": icao}


def record_id(data: bytes) -> int:
    return int(data.decode().rstrip("\n").rsplit(",", 1)[1])


def deliver(
    port: int, stream: str, ids, unknown_ids: set[int], outcomes: collections.Counter
) -> int:
    """Send records ids through the proxy until each got a SequenceNumber, retrying what
    failed, as the daemon must; returns the number of PutRecords calls. Ids sent in a call
    whose outcome stayed unknown go into unknown_ids."""
    client = kinesis(port, read_timeout=CLIENT_READ_TIMEOUT)
    pending = collections.deque(ids)
    attempts = 0
    deadline = time.monotonic() + 300
    while pending:
        check(time.monotonic() < deadline, f"delivery not done in 300 s, {len(pending)} left")
        batch = [pending.popleft() for _ in range(min(BATCH, len(pending)))]
        attempts += 1
        try:
            answer = client.put_records(StreamName=stream, Records=[make_record(i) for i in batch])
        except botocore.exceptions.ClientError as err:
            code = err.response["Error"]["Code"]
            check(
                code in ("ProvisionedThroughputExceededException", "InternalFailure"),
                f"unexpected error code {code!r}",
            )
            outcomes[code] += 1
            pending.extend(batch)
            time.sleep(0.01)
            continue
        except UNKNOWN_OUTCOME as err:
            outcomes[type(err).__name__] += 1
            unknown_ids.update(batch)
            pending.extend(batch)
            continue
        outcomes["ok"] += 1
        outcomes["entries_in_answered_calls"] += len(batch)
        results = answer["Records"]
        check(len(results) == len(batch), "PutRecords answered a different number of entries")
        failed = [i for i, r in zip(batch, results) if "ErrorCode" in r]
        check(
            answer["FailedRecordCount"] == len(failed),
            f"FailedRecordCount {answer['FailedRecordCount']} but {len(failed)} entries failed",
        )
        for r in results:
            if "ErrorCode" in r:
                outcomes["record:" + r["ErrorCode"]] += 1
            else:
                check(
                    r.get("SequenceNumber") and r.get("ShardId"),
                    f"a stored entry lacks SequenceNumber/ShardId: {r}",
                )
        pending.extend(failed)
    return attempts


def test_delivery(proxy: Proxy, moto_port: int, summary: dict) -> None:
    proxy.configure(**FAULTS)
    proxy.call("POST", "/_fault/reset")
    unknown_ids: set[int] = set()
    outcomes: collections.Counter = collections.Counter()
    attempts = deliver(proxy.port, STREAM, range(RECORDS), unknown_ids, outcomes)

    stats = proxy.stats()
    stored = read_stream(kinesis(moto_port), STREAM)
    counts = collections.Counter(record_id(data) for _key, data in stored)
    missing = sorted(set(range(RECORDS)) - set(counts))
    duplicated = {i: n for i, n in counts.items() if n > 1}
    extra_copies = sum(n - 1 for n in duplicated.values())
    summary.update(
        records=RECORDS,
        client_retries_of_unknown_outcome=len(unknown_ids),
        put_records_calls=attempts,
        outcomes=dict(outcomes),
        stored=len(stored),
        duplicate_copies=extra_copies,
        proxy=stats,
    )
    check(not missing, f"{len(missing)} records never arrived, e.g. {missing[:10]}")
    check(
        not set(duplicated) - unknown_ids,
        f"records stored twice although every request with them was answered: "
        f"{sorted(set(duplicated) - unknown_ids)[:10]}",
    )
    check(
        extra_copies <= stats["unknown_outcome_records"],
        f"{extra_copies} duplicate copies but only {stats['unknown_outcome_records']} "
        "records of unknown outcome",
    )
    check(
        stats["records_forwarded"] == len(stored),
        f"proxy says {stats['records_forwarded']} records stored, stream has {len(stored)}",
    )
    check(stats["put_records_requests"] == attempts, "proxy counted a different number of calls")
    check(
        stats["records_failed"]
        == outcomes["record:ProvisionedThroughputExceededException"]
        + outcomes["record:InternalFailure"],
        "records_failed disagrees with the client",
    )
    check(
        stats["throttled"] == outcomes["ProvisionedThroughputExceededException"],
        "throttled disagrees with the client",
    )
    check(stats["errored_500"] == outcomes["InternalFailure"], "errored_500 disagrees")
    for name in ("records_failed", "throttled", "errored_500", "hung", "dropped"):
        check(stats[name] > 0, f"the seed injected no {name}: pick another seed")
    # Only answered, un-faulted calls go through the per-record draw.
    rate = stats["records_failed"] / outcomes["entries_in_answered_calls"]
    check(0.25 < rate < 0.35, f"record failure rate {rate:.3f} is far from 0.3")


def test_concurrent_delivery(proxy: Proxy, moto_port: int, summary: dict) -> None:
    """The daemon may have several PutRecords in flight; the counters must still add up."""
    stream = STREAM + "-concurrent"
    setup = kinesis(proxy.port)
    setup.create_stream(StreamName=stream, ShardCount=2)
    setup.get_waiter("stream_exists").wait(
        StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
    )
    proxy.configure(**FAULTS)
    proxy.call("POST", "/_fault/reset")
    threads_n, total = 6, 1200
    unknown_ids: set[int] = set()
    outcomes: collections.Counter = collections.Counter()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        mine: set[int] = set()
        counts: collections.Counter = collections.Counter()
        try:
            deliver(proxy.port, stream, range(k, total, threads_n), mine, counts)
        except BaseException as err:  # reported below, in the main thread
            errors.append(err)
        with lock:
            unknown_ids.update(mine)
            outcomes.update(counts)

    lock = threading.Lock()
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise Failed(f"a sender thread failed: {errors[0]}")
    stats = proxy.stats()
    stored = read_stream(kinesis(moto_port), stream)
    counts = collections.Counter(record_id(data) for _key, data in stored)
    missing = sorted(set(range(total)) - set(counts))
    duplicated = {i for i, n in counts.items() if n > 1}
    extra_copies = sum(n - 1 for n in counts.values())
    summary["concurrent"] = {
        "threads": threads_n,
        "records": total,
        "stored": len(stored),
        "duplicate_copies": extra_copies,
        "unknown_outcome_records": stats["unknown_outcome_records"],
        "put_records_calls": stats["put_records_requests"],
    }
    check(not missing, f"{len(missing)} records never arrived, e.g. {missing[:10]}")
    check(not duplicated - unknown_ids, "records stored twice outside unknown-outcome calls")
    check(extra_copies <= stats["unknown_outcome_records"], "more duplicates than unknown outcomes")
    check(
        stats["records_forwarded"] == len(stored),
        f"proxy says {stats['records_forwarded']} records stored, stream has {len(stored)}",
    )


def test_outage(proxy: Proxy, moto_port: int, summary: dict) -> None:
    proxy.configure(fail_records=0, throttle=0, error_500=0, hang=0, drop=0, outage=True)
    before = proxy.stats()
    client = kinesis(proxy.port)
    marker = {"Data": b"outage-probe\n", "PartitionKey": "OUTAGE"}
    cut = 0
    for _ in range(3):
        try:
            client.put_records(StreamName=STREAM, Records=[marker])
        except UNKNOWN_OUTCOME:
            cut += 1
    check(cut == 3, f"only {cut} of 3 requests were cut off during the outage")
    # Non-PutRecords operations are cut off too.
    try:
        client.describe_stream_summary(StreamName=STREAM)
        raise Failed("DescribeStreamSummary succeeded during the outage")
    except UNKNOWN_OUTCOME:
        pass
    after = proxy.stats()
    check(after["outage_closed"] - before["outage_closed"] == 4, "outage_closed did not count 4")
    stored = read_stream(kinesis(moto_port), STREAM)
    check(not any(k == "OUTAGE" for k, _ in stored), "a record sent during the outage was stored")
    proxy.configure(outage=False)
    answer = client.put_records(StreamName=STREAM, Records=[marker])
    check(answer["FailedRecordCount"] == 0, "PutRecords failed after the outage ended")
    stored = read_stream(kinesis(moto_port), STREAM)
    check(
        sum(k == "OUTAGE" for k, _ in stored) == 1,
        "the record sent after the outage is not stored once",
    )
    summary["outage_cut_requests"] = after["outage_closed"] - before["outage_closed"]


def test_read_faults(proxy: Proxy, moto_port: int, summary: dict) -> None:
    stream = STREAM + "-read"
    direct = kinesis(moto_port)
    direct.create_stream(StreamName=stream, ShardCount=1)
    direct.get_waiter("stream_exists").wait(
        StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
    )
    want = [f"r{i}".encode() for i in range(60)]
    for i in range(0, len(want), 10):
        direct.put_records(
            StreamName=stream, Records=[{"Data": d, "PartitionKey": "K"} for d in want[i : i + 10]]
        )
    proxy.configure(read_throttle=0.3, expire_iterators=0.2)
    before = proxy.stats()
    client = kinesis(proxy.port)
    shard = client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]

    def new_iterator(after: str | None) -> str:
        if after is None:
            args = {"ShardIteratorType": "TRIM_HORIZON"}
        else:
            args = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        return client.get_shard_iterator(StreamName=stream, ShardId=shard, **args)["ShardIterator"]

    got: list[bytes] = []
    last: str | None = None
    iterator = new_iterator(None)
    errors: collections.Counter = collections.Counter()
    deadline = time.monotonic() + 60
    while len(got) < len(want):
        check(time.monotonic() < deadline, f"read {len(got)} of {len(want)} in 60 s")
        try:
            page = client.get_records(ShardIterator=iterator, Limit=7)
        except botocore.exceptions.ClientError as err:
            code = err.response["Error"]["Code"]
            errors[code] += 1
            if code == "ExpiredIteratorException":
                iterator = new_iterator(last)
            else:
                check(code == "ProvisionedThroughputExceededException", f"unexpected {code}")
            continue
        for r in page["Records"]:
            got.append(r["Data"])
            last = r["SequenceNumber"]
        iterator = page["NextShardIterator"]
    check(got == want, f"read back {len(got)} records, not the {len(want)} written in order")
    after = proxy.stats()
    throttled = after["get_records_throttled"] - before["get_records_throttled"]
    expired = after["iterators_expired"] - before["iterators_expired"]
    check(throttled > 0 and expired > 0, f"no read faults injected: {after}")
    check(
        throttled == errors["ProvisionedThroughputExceededException"]
        and expired == errors["ExpiredIteratorException"],
        f"the proxy counted {throttled} throttles, {expired} expiries; the client saw {errors}",
    )
    summary["get_records_throttled"] = throttled
    summary["iterators_expired"] = expired


def test_malformed(proxy: Proxy, _moto_port: int, summary: dict) -> None:
    headers = {
        "X-Amz-Target": "Kinesis_20131202.PutRecords",
        "Content-Type": "application/x-amz-json-1.1",
    }
    for body in (b"{not json", b"[1,2]", b'{"Records": 5}', b"\xff\xfe"):
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("POST", "/", body=body, headers=headers)
        response = conn.getresponse()
        check(response.status == 400, f"malformed body {body!r} answered {response.status}")
        error = json.loads(response.read())
        check("__type" in error, f"400 without __type: {error}")
        conn.close()
    # A broken request line, straight on the socket.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        reply = s.recv(200)
        check(
            reply.startswith(b"HTTP/1.") and b" 400 " in reply[:20], f"garbage got {reply[:40]!r}"
        )
    # Bad Content-Length.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\n"
            b"Content-Length: nope\r\n\r\n"
        )
        reply = s.recv(200)
        check(b" 400 " in reply[:20], f"bad Content-Length got {reply[:40]!r}")
    # Config validation: a bad change set changes nothing.
    before = proxy.call("GET", "/_fault/config")[1]
    for bad in (
        {"throttle": 2},
        {"hang": 0.6, "drop": 0.6},
        {"read_throttle": 0.6, "expire_iterators": 0.6},
        {"expire_iterators": -1},
        {"nope": 1},
        {"outage": "yes"},
        [1],
    ):
        status, _ = proxy.call("POST", "/_fault/config", bad)
        check(status == 400, f"config {bad} answered {status}, not 400")
    check(proxy.call("GET", "/_fault/config")[1] == before, "a rejected config changed settings")
    check(proxy.call("GET", "/_fault/nothing")[0] == 404, "unknown control path is not 404")
    check(proxy.proc.poll() is None, "the proxy died on malformed input")
    summary["malformed_counted"] = proxy.stats()["malformed"]


def test_stats_endpoint(proxy: Proxy, _moto_port: int, _summary: dict) -> None:
    stats = proxy.stats()
    for name in (
        "requests",
        "throttled",
        "errored_500",
        "hung",
        "dropped",
        "records_failed",
        "records_forwarded",
        "unknown_outcome_records",
        "get_records_requests",
        "get_records_throttled",
        "iterators_expired",
    ):
        check(isinstance(stats.get(name), int), f"stats lack integer {name}: {stats}")
    status, old = proxy.call("POST", "/_fault/reset")
    check(status == 200 and old == stats, "reset did not return the old counters")
    check(all(v == 0 for v in proxy.stats().values()), "counters not zero after reset")


def test_sigterm(proxy: Proxy, _moto_port: int, summary: dict) -> None:
    # A hang in progress must not hold up shutdown.
    proxy.configure(hang=1, hang_seconds=60)
    client = kinesis(proxy.port, read_timeout=30)
    hung = threading.Thread(
        target=lambda: _ignore(
            lambda: client.put_records(
                StreamName=STREAM, Records=[{"Data": b"x\n", "PartitionKey": "SIGTERM"}]
            )
        ),
        daemon=True,
    )
    hung.start()
    time.sleep(0.5)
    started = time.monotonic()
    proxy.proc.send_signal(signal.SIGTERM)
    try:
        code = proxy.proc.wait(10)
    except subprocess.TimeoutExpired:
        raise Failed("the proxy did not exit within 10 s of SIGTERM") from None
    took = time.monotonic() - started
    rest = proxy.proc.stdout.read()
    check(code == 0, f"the proxy exited with {code} on SIGTERM")
    line = next((l for l in rest.splitlines() if l.startswith("STATS ")), None)
    check(line is not None, f"no STATS line at exit: {rest!r}")
    check(json.loads(line[6:])["hung"] == 1, "the exit STATS line lacks the hang in progress")
    summary["sigterm_exit_seconds"] = round(took, 2)


def _ignore(fn) -> None:
    try:
        fn()
    except Exception:
        pass


def main() -> int:
    moto_port = free_port()
    moto_proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    proxy = None
    passed = failed = 0
    summary: dict = {}
    try:
        wait_for_port(moto_port, moto_proc, "moto server")
        proxy = Proxy(moto_port, seed=int(os.environ.get("FAULT_SEED", "3")))
        setup = kinesis(proxy.port)
        setup.create_stream(StreamName=STREAM, ShardCount=2)
        setup.get_waiter("stream_exists").wait(
            StreamName=STREAM, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50}
        )
        for test in (
            test_delivery,
            test_concurrent_delivery,
            test_outage,
            test_read_faults,
            test_malformed,
            test_stats_endpoint,
            test_sigterm,
        ):
            try:
                # Each test starts from no faults, whatever the one before left behind.
                proxy.configure(**QUIET)
                test(proxy, moto_port, summary)
                passed += 1
                print(f"ok   {test.__name__}", flush=True)
            except Failed as err:
                failed += 1
                print(f"FAIL {test.__name__}: {err}", flush=True)
            if proxy.proc.poll() is not None and test is not test_sigterm:
                print(f"FAIL the proxy exited with {proxy.proc.returncode}", flush=True)
                failed += 1
                break
    except Failed as err:
        print(f"FAIL setup: {err}", flush=True)
        failed += 1
    finally:
        for proc in (proxy.proc if proxy else None, moto_proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print("summary " + json.dumps(summary, sort_keys=True), flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
