#!/usr/bin/env python3
"""A fault-injecting reverse proxy for the Kinesis JSON 1.1 API, for delivery tests.

It sits between the code under test and a Kinesis stand-in (usually moto server) and
forwards every request unchanged, except ``PutRecords``, where it misbehaves the ways the
real service and the network do, chosen by a seeded RNG:

* per-record failures: each entry fails with probability ``--fail-records`` with
  ``ProvisionedThroughputExceededException`` or ``InternalFailure`` (half each). Failed
  entries are not forwarded; the others go upstream in one PutRecords call and their real
  ``SequenceNumber``/``ShardId`` are put back at their original positions, so the client
  sees an ordinary partial failure with a correct ``FailedRecordCount``.
* whole-request throttling (``--throttle``): HTTP 400, ``__type`` and ``X-Amzn-ErrorType``
  both ``ProvisionedThroughputExceededException``; nothing is forwarded.
* 500s (``--error-500``): HTTP 500 ``InternalFailure``; nothing is forwarded.
* hangs (``--hang``): the proxy waits ``--hang-seconds`` (past the client's timeout), then
  closes the connection without a response.
* dropped connections (``--drop``): the connection is closed (FIN or RST, at random)
  without a response.

And ``GetRecords``, for consumers (``adsb-kinesis tail``), one draw per request:

* read throttling (``--read-throttle``): HTTP 400
  ``ProvisionedThroughputExceededException``, as when a shard's 5 reads/s or 2 MiB/s are
  exceeded; nothing is forwarded, the iterator stays valid.
* expired iterators (``--expire-iterators``): HTTP 400 ``ExpiredIteratorException``, as
  Kinesis answers for an iterator older than 5 minutes; nothing is forwarded, the client
  must get a new iterator.

Hangs and drops happen either before forwarding (the records were not stored) or after
(they were: the client cannot know, so a retry legitimately duplicates them). Records
stored upstream in a request whose response the client never got are counted in
``unknown_outcome_records``; a test that finds a record twice in the stream may blame at
most that many duplicates on the proxy.

The request-level probabilities are exclusive and must sum to at most 1: one draw per
PutRecords request picks throttle, 500, hang, drop or "normal" (per-record failures).
With one client sending sequentially, a given ``--seed`` replays the same faults.

Usage::

    python3 -m moto.server -H 127.0.0.1 -p 5000 &
    python3 tests/fault_kinesis.py --upstream http://127.0.0.1:5000 --listen-port 0 \\
        --fail-records 0.3 --throttle 0.1 --seed 7
    # prints "LISTENING <port>" on stdout; point the client's endpoint URL at that port

Options (all probabilities in [0, 1], default 0)::

    --upstream URL        http://HOST:PORT of the real endpoint (required)
    --listen-host HOST    default 127.0.0.1
    --listen-port PORT    default 0: pick a free port; "LISTENING <port>" is printed,
                          flushed, on stdout either way
    --seed N              RNG seed (default 0)
    --fail-records P      per-entry failure probability in PutRecords
    --throttle P          whole-request 400 ProvisionedThroughputExceededException
    --error-500 P         whole-request 500 InternalFailure
    --hang P              hang then close, no response
    --hang-seconds S      how long a hang lasts (default 30)
    --drop P              close the connection, no response
    --read-throttle P     GetRecords answered 400 ProvisionedThroughputExceededException
    --expire-iterators P  GetRecords answered 400 ExpiredIteratorException
    --upstream-timeout S  timeout for calls to the upstream (default 30)
    --parallel-upstream   let PutRecord(s) reach the upstream concurrently; by default
                          they go one at a time because moto loses records otherwise
    --verbose             log every injected fault and every request on stderr

Control API, on the same port, never subject to faults or the outage::

    GET  /_fault/stats    JSON counters (see STAT_NAMES below)
    POST /_fault/reset    zero the counters; answers the counters as they were
    GET  /_fault/config   the current settings as JSON
    POST /_fault/config   JSON object with any of fail_records, throttle, error_500, hang,
                          drop, read_throttle, expire_iterators (probabilities),
                          hang_seconds (number >= 0), outage (bool),
                          seed (int: restart the RNG); answers the new settings.
                          Unknown keys or bad values: 400 and nothing changes.

While ``outage`` is on, every Kinesis request (any operation) has its connection closed
as soon as its headers are read, as if the endpoint had gone away.

Wire formats. ``aws-sdk-kinesis`` for Rust (checked in 1.130.0, whose client defaults
to ``AwsJsonRpcProtocol::aws_json_1_1``; its rpc-v2-CBOR code is generated but unused)
and boto3 both send ``application/x-amz-json-1.1`` with ``X-Amz-Target:
Kinesis_20131202.<Op>``. The Java SDK/KPL send ``application/x-amz-cbor-1.1`` instead;
such requests (and any rpc-v2-CBOR ones) are forwarded untouched, without faults, and
counted in ``cbor_passthrough``, since moto does not decode CBOR anyway.

What the Rust SDK makes of the faults (aws-sdk-kinesis 1.130, checked by hand against this
proxy): the throttle is ``PutRecordsError::ProvisionedThroughputExceededException``
(``code() == Some("ProvisionedThroughputExceededException")``); the 500 is an unhandled
error with ``code() == Some("InternalFailure")`` (not the modeled
``InternalFailureException``); a hang is a ``TimeoutError`` once the attempt timeout
passes; a drop or the outage is a ``DispatchFailure`` ("connection closed before message
completed"). Its standard retry strategy re-sends all four by itself (3 attempts unless
configured), so a sender that wants to see each fault sets ``max_attempts(1)``.

On SIGTERM or SIGINT the proxy stops accepting, cuts pending hangs short, prints
``STATS <json>`` on stdout and exits 0. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import struct
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGET_PREFIX = "Kinesis_20131202."
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
CONTROL_PREFIX = "/_fault/"
WRITE_TARGETS = frozenset(TARGET_PREFIX + op for op in ("PutRecords", "PutRecord"))
# A PutRecords body is at most 5 MiB of data, base64-encoded, plus JSON framing; anything
# far beyond that is refused rather than buffered.
MAX_BODY_BYTES = 16 * 1024 * 1024

PROBABILITY_KEYS = (
    "fail_records",
    "throttle",
    "error_500",
    "hang",
    "drop",
    "read_throttle",
    "expire_iterators",
)
REQUEST_FAULT_KEYS = ("throttle", "error_500", "hang", "drop")
# GetRecords faults: exclusive too, one draw per request, summing to at most 1.
READ_FAULT_KEYS = ("read_throttle", "expire_iterators")

STAT_NAMES = (
    "requests",  # Kinesis API requests received (any operation), outage ones included
    "put_records_requests",  # of which PutRecords
    "throttled",  # PutRecords answered 400 ProvisionedThroughputExceededException
    "errored_500",  # PutRecords answered 500 InternalFailure
    "hung",  # PutRecords hung then closed
    "hung_after_forward",  # of which forwarded upstream before hanging
    "dropped",  # PutRecords connections closed without a response
    "dropped_after_forward",  # of which forwarded upstream before closing
    "outage_closed",  # requests closed because outage was on
    "records_received",  # PutRecords entries received from the client
    "records_failed",  # entries the proxy failed with a per-record ErrorCode
    "records_forwarded",  # entries the upstream accepted (stored), whatever the client saw
    "unknown_outcome_records",  # stored upstream, but the client never got the response
    "upstream_errors",  # upstream unreachable or answering a PutRecords with an error
    "malformed",  # requests answered 400 by the proxy itself
    "cbor_passthrough",  # CBOR requests forwarded untouched
    "get_records_requests",  # GetRecords requests received
    "get_records_throttled",  # GetRecords answered 400 ProvisionedThroughputExceededException
    "iterators_expired",  # GetRecords answered 400 ExpiredIteratorException
)

# Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded; lengths are recomputed.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Content-Length",
        "Expect",
    )
)


class BadRequest(Exception):
    """The client sent something the proxy refuses to interpret: answered with a 400."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class Faults:
    """Settings, RNG and counters, shared by all handler threads under one lock."""

    def __init__(self, args: argparse.Namespace):
        self.lock = threading.Lock()
        self.settings = {
            "fail_records": args.fail_records,
            "throttle": args.throttle,
            "error_500": args.error_500,
            "hang": args.hang,
            "drop": args.drop,
            "read_throttle": args.read_throttle,
            "expire_iterators": args.expire_iterators,
            "hang_seconds": args.hang_seconds,
            "outage": False,
        }
        self.seed = args.seed
        self.rng = random.Random(args.seed)
        self.stats = dict.fromkeys(STAT_NAMES, 0)
        # Set at shutdown so hangs end early instead of holding the process.
        self.stopping = threading.Event()

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.stats[name] += n

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.stats)

    def reset_stats(self) -> dict:
        with self.lock:
            old = dict(self.stats)
            self.stats = dict.fromkeys(STAT_NAMES, 0)
            return old

    def describe(self) -> dict:
        with self.lock:
            return dict(self.settings, seed=self.seed)

    def outage(self) -> bool:
        with self.lock:
            return self.settings["outage"]

    def update(self, changes: object) -> dict:
        """Validate a whole change set first, then apply it, so a bad one changes nothing."""
        if not isinstance(changes, dict):
            raise BadRequest("ValidationException", "config body must be a JSON object")
        allowed = set(PROBABILITY_KEYS) | {"hang_seconds", "outage", "seed"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise BadRequest("ValidationException", f"unknown config keys: {unknown}")
        for key in PROBABILITY_KEYS:
            if key in changes:
                check_probability(key, changes[key])
        if "hang_seconds" in changes:
            value = changes["hang_seconds"]
            if not is_number(value) or value < 0:
                raise BadRequest("ValidationException", "hang_seconds must be a number >= 0")
        if "outage" in changes and not isinstance(changes["outage"], bool):
            raise BadRequest("ValidationException", "outage must be true or false")
        if "seed" in changes and (
            not isinstance(changes["seed"], int) or isinstance(changes["seed"], bool)
        ):
            raise BadRequest("ValidationException", "seed must be an integer")
        with self.lock:
            merged = dict(self.settings)
            merged.update({k: v for k, v in changes.items() if k != "seed"})
            total = sum(merged[k] for k in REQUEST_FAULT_KEYS)
            if total > 1.0:
                raise BadRequest(
                    "ValidationException",
                    f"throttle + error_500 + hang + drop = {total:g} exceeds 1",
                )
            read_total = sum(merged[k] for k in READ_FAULT_KEYS)
            if read_total > 1.0:
                raise BadRequest(
                    "ValidationException",
                    f"read_throttle + expire_iterators = {read_total:g} exceeds 1",
                )
            self.settings = merged
            if "seed" in changes:
                self.seed = changes["seed"]
                self.rng = random.Random(self.seed)
            return dict(self.settings, seed=self.seed)

    def draw_request_fault(self) -> tuple[str, bool, float]:
        """One PutRecords request's fate: (fault, forward_first, hang_seconds).

        fault is "throttle", "error_500", "hang", "drop" or "normal"; forward_first says
        whether a hang or drop happens after the request was forwarded upstream.
        """
        with self.lock:
            roll = self.rng.random()
            edge = 0.0
            for key in REQUEST_FAULT_KEYS:
                edge += self.settings[key]
                if roll < edge:
                    forward_first = key in ("hang", "drop") and self.rng.random() < 0.5
                    return key, forward_first, self.settings["hang_seconds"]
            return "normal", False, self.settings["hang_seconds"]

    def draw_read_fault(self) -> str:
        """One GetRecords request's fate: "read_throttle", "expire_iterators" or "normal"."""
        with self.lock:
            roll = self.rng.random()
            edge = 0.0
            for key in READ_FAULT_KEYS:
                edge += self.settings[key]
                if roll < edge:
                    return key
            return "normal"

    def draw_record_faults(self, n: int) -> list[str | None]:
        """For each of n entries, None (forward it) or the ErrorCode to fail it with."""
        with self.lock:
            p = self.settings["fail_records"]
            codes: list[str | None] = []
            for _ in range(n):
                if self.rng.random() < p:
                    if self.rng.random() < 0.5:
                        codes.append("ProvisionedThroughputExceededException")
                    else:
                        codes.append("InternalFailure")
                else:
                    codes.append(None)
            return codes

    def draw_bool(self) -> bool:
        with self.lock:
            return self.rng.random() < 0.5


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_probability(name: str, value: object) -> None:
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise BadRequest("ValidationException", f"{name} must be a number in [0, 1]")


def probability(text: str) -> float:
    """argparse type for a probability."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"not in [0, 1]: {text}")
    return value


def error_message(code: str) -> str:
    if code == "ProvisionedThroughputExceededException":
        return "Rate exceeded for shard in stream (injected by fault_kinesis)."
    return "Internal service failure (injected by fault_kinesis)."


class Handler(BaseHTTPRequestHandler):
    # Keep-alive as the SDKs expect; every response below carries Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "fault_kinesis"
    sys_version = ""
    # An idle or stalled client must not pin a thread forever.
    timeout = 120

    # Errors in a request line too broken to name a version still get a status line.
    default_request_version = "HTTP/1.0"

    server: "FaultServer"

    # ---- plumbing -------------------------------------------------------------------

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        if self.server.verbose:
            sys.stderr.write(f"fault_kinesis: {self.address_string()} {format % args}\n")

    def note(self, text: str) -> None:
        if self.server.verbose:
            sys.stderr.write(f"fault_kinesis: {text}\n")

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length_text = self.headers.get("Content-Length", "0")
        try:
            length = int(length_text)
        except ValueError:
            raise BadRequest("SerializationException", "bad Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise BadRequest("SerializationException", "Content-Length out of range")
        body = self.rfile.read(length)
        if len(body) != length:
            raise ConnectionError("client closed mid-body")
        return body

    def read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionError("client closed mid-body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest("SerializationException", "bad chunk size") from None
            total += size
            if size < 0 or total > MAX_BODY_BYTES:
                raise BadRequest("SerializationException", "body too large")
            if size == 0:
                # Trailer section, ended by an empty line.
                while True:
                    trailer = self.rfile.readline(8192)
                    if trailer in (b"\r\n", b"\n", b""):
                        return b"".join(parts)
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise ConnectionError("client closed mid-body")
            parts.append(chunk)
            self.rfile.readline(1024)  # the CRLF after the chunk

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's answer to an unparsable request, as JSON instead of an HTML page."""
        self.server.faults.count("malformed")
        self.close_connection = True
        short = message or self.responses.get(code, ("error",))[0]
        body = json.dumps({"__type": "SerializationException", "message": short}).encode()
        try:
            self.send_response(code, short)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass

    def respond(
        self,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def respond_json(self, status: int, obj: object) -> None:
        self.respond(status, json.dumps(obj).encode(), content_type="application/json")

    def respond_aws_error(self, status: int, error_type: str, message: str) -> None:
        """An awsJson1.1 error: the code both in __type and in X-Amzn-ErrorType, which the
        SDKs read first (smithy-rs takes the header, else `code`, else `__type`)."""
        body = json.dumps({"__type": error_type, "message": message}).encode()
        self.respond(
            status,
            body,
            headers=[("X-Amzn-ErrorType", error_type), ("X-Amzn-RequestId", "fault-kinesis")],
            content_type=JSON_CONTENT_TYPE,
        )

    def close_without_response(self, reset: bool = False) -> None:
        """End the exchange with no response bytes at all: FIN, or RST if reset."""
        self.close_connection = True
        if reset:
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            except OSError:
                pass

    def upstream_call(self, method: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request upstream as the client sent it, body possibly replaced.

        Writes go one at a time unless --parallel-upstream: moto numbers a shard's records
        by reading the highest sequence number and adding one, without a lock, so two
        concurrent PutRecords to one shard can overwrite each other's records (seen:
        15 of 4000 lost with 8 client threads), which a test would blame on the client.
        """
        target = self.headers.get("X-Amz-Target", "")
        if self.server.serialize_writes and target in WRITE_TARGETS:
            with self.server.write_lock:
                return self.upstream_call_unlocked(method, body)
        return self.upstream_call_unlocked(method, body)

    def upstream_call_unlocked(
        self, method: str, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(
            self.server.upstream_host,
            self.server.upstream_port,
            timeout=self.server.upstream_timeout,
        )
        try:
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in HOP_BY_HOP
            }
            headers["Content-Length"] = str(len(body))
            conn.request(method, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            out_headers = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in HOP_BY_HOP and name.lower() not in ("server", "date")
            ]
            return response.status, out_headers, data
        finally:
            conn.close()

    # ---- dispatch -------------------------------------------------------------------

    def handle_any(self) -> None:
        try:
            if self.path.startswith(CONTROL_PREFIX):
                self.handle_control()
            else:
                self.handle_kinesis()
        except BadRequest as err:
            self.server.faults.count("malformed")
            self.close_connection = True
            self.respond_aws_error(400, err.error_type, err.message)
        except (ConnectionError, TimeoutError, socket.timeout):
            # The client went away or stalled; nothing to answer.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any

    def handle_control(self) -> None:
        faults = self.server.faults
        body = self.read_body()
        route = (self.command, self.path.split("?", 1)[0].rstrip("/"))
        if route == ("GET", "/_fault/stats"):
            self.respond_json(200, faults.snapshot())
        elif route == ("POST", "/_fault/reset"):
            self.respond_json(200, faults.reset_stats())
        elif route == ("GET", "/_fault/config"):
            self.respond_json(200, faults.describe())
        elif route == ("POST", "/_fault/config"):
            try:
                changes = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("SerializationException", "config body is not JSON") from None
            settings = faults.update(changes)
            sys.stderr.write(f"fault_kinesis: config {json.dumps(settings)}\n")
            self.respond_json(200, settings)
        else:
            self.respond_json(404, {"message": f"no control endpoint {self.command} {self.path}"})

    def handle_kinesis(self) -> None:
        faults = self.server.faults
        faults.count("requests")
        if faults.outage():
            faults.count("outage_closed")
            self.note(f"outage: closed {self.headers.get('X-Amz-Target', self.path)}")
            self.close_without_response(reset=False)
            return
        body = self.read_body()
        target = self.headers.get("X-Amz-Target", "")
        content_type = self.headers.get("Content-Type", "").lower()
        if "cbor" in content_type or self.headers.get("smithy-protocol"):
            faults.count("cbor_passthrough")
            self.forward(body)
        elif self.command == "POST" and target == TARGET_PREFIX + "PutRecords":
            self.put_records(body)
        elif self.command == "POST" and target == TARGET_PREFIX + "GetRecords":
            self.get_records(body)
        else:
            self.forward(body)

    def forward(self, body: bytes) -> None:
        try:
            status, headers, data = self.upstream_call(self.command, body)
        except (OSError, http.client.HTTPException) as err:
            self.server.faults.count("upstream_errors")
            self.respond_aws_error(502, "InternalFailure", f"upstream unreachable: {err}")
            return
        self.respond(status, data, headers=headers)

    # ---- GetRecords -----------------------------------------------------------------

    def get_records(self, body: bytes) -> None:
        faults = self.server.faults
        faults.count("get_records_requests")
        fault = faults.draw_read_fault()
        if fault == "read_throttle":
            faults.count("get_records_throttled")
            self.note("throttle GetRecords")
            self.respond_aws_error(
                400,
                "ProvisionedThroughputExceededException",
                "Rate exceeded for shard (injected by fault_kinesis).",
            )
            return
        if fault == "expire_iterators":
            faults.count("iterators_expired")
            self.note("expire a GetRecords iterator")
            self.respond_aws_error(
                400,
                "ExpiredIteratorException",
                "Iterator expired (injected by fault_kinesis).",
            )
            return
        self.forward(body)

    # ---- PutRecords -----------------------------------------------------------------

    def put_records(self, body: bytes) -> None:
        faults = self.server.faults
        faults.count("put_records_requests")
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("SerializationException", "PutRecords body is not JSON") from None
        if not isinstance(request, dict) or not isinstance(request.get("Records"), list):
            raise BadRequest("ValidationException", "PutRecords needs a Records list")
        entries = request["Records"]
        faults.count("records_received", len(entries))

        fault, forward_first, hang_seconds = faults.draw_request_fault()
        if fault == "throttle":
            faults.count("throttled")
            self.note(f"throttle PutRecords of {len(entries)}")
            self.respond_aws_error(
                400,
                "ProvisionedThroughputExceededException",
                "Rate exceeded for stream (injected by fault_kinesis).",
            )
            return
        if fault == "error_500":
            faults.count("errored_500")
            self.note(f"500 PutRecords of {len(entries)}")
            self.respond_aws_error(500, "InternalFailure", error_message("InternalFailure"))
            return
        if fault in ("hang", "drop"):
            stored = 0
            if forward_first:
                stored = self.forward_unanswered(body)
            if fault == "hang":
                faults.count("hung")
                if forward_first:
                    faults.count("hung_after_forward")
                self.note(f"hang {hang_seconds}s PutRecords of {len(entries)}, stored {stored}")
                faults.stopping.wait(hang_seconds)
                self.close_without_response(reset=False)
            else:
                faults.count("dropped")
                if forward_first:
                    faults.count("dropped_after_forward")
                reset = faults.draw_bool()
                self.note(
                    f"drop ({'RST' if reset else 'FIN'}) PutRecords of {len(entries)}, "
                    f"stored {stored}"
                )
                self.close_without_response(reset=reset)
            return
        self.put_records_partial(request, entries)

    def forward_unanswered(self, body: bytes) -> int:
        """Forward a whole PutRecords whose response the client will never see; returns
        how many records the upstream stored (all of them unknown outcome)."""
        faults = self.server.faults
        try:
            status, _headers, data = self.upstream_call("POST", body)
        except (OSError, http.client.HTTPException):
            faults.count("upstream_errors")
            return 0
        if status != 200:
            faults.count("upstream_errors")
            return 0
        stored = stored_count(data)
        faults.count("records_forwarded", stored)
        faults.count("unknown_outcome_records", stored)
        return stored

    def put_records_partial(self, request: dict, entries: list) -> None:
        """Fail some entries here, forward the rest, and merge the two answers."""
        faults = self.server.faults
        codes = faults.draw_record_faults(len(entries))
        kept = [entry for entry, code in zip(entries, codes) if code is None]
        failed = len(entries) - len(kept)

        upstream_results: list = []
        upstream_failed = 0
        extra: dict = {}
        if kept:
            forwarded = dict(request, Records=kept)
            try:
                status, headers, data = self.upstream_call("POST", json.dumps(forwarded).encode())
            except (OSError, http.client.HTTPException) as err:
                faults.count("upstream_errors")
                self.respond_aws_error(502, "InternalFailure", f"upstream unreachable: {err}")
                return
            if status != 200:
                # The upstream refused the request as a whole (unknown stream, validation):
                # that is the client's answer; our per-record failures are moot.
                faults.count("upstream_errors")
                self.respond(status, data, headers=headers)
                return
            try:
                answer = json.loads(data)
                upstream_results = answer["Records"]
                upstream_failed = int(answer.get("FailedRecordCount", 0))
            except (ValueError, KeyError, TypeError):
                faults.count("upstream_errors")
                self.respond_aws_error(502, "InternalFailure", "upstream answer unreadable")
                return
            if len(upstream_results) != len(kept):
                faults.count("upstream_errors")
                self.respond_aws_error(502, "InternalFailure", "upstream answer has wrong length")
                return
            extra = {k: v for k, v in answer.items() if k not in ("Records", "FailedRecordCount")}
            faults.count("records_forwarded", len(kept) - upstream_failed)
        # With nothing to forward the upstream is not asked at all, so a PutRecords to an
        # unknown stream whose entries all fail here gets per-record errors, not a 400.
        faults.count("records_failed", failed)

        results = []
        upstream_iter = iter(upstream_results)
        for code in codes:
            if code is None:
                results.append(next(upstream_iter))
            else:
                results.append({"ErrorCode": code, "ErrorMessage": error_message(code)})
        if failed:
            self.note(f"PutRecords of {len(entries)}: failed {failed} here")
        answer = {"FailedRecordCount": failed + upstream_failed, "Records": results, **extra}
        self.respond(
            200,
            json.dumps(answer).encode(),
            headers=[("X-Amzn-RequestId", "fault-kinesis")],
            content_type=JSON_CONTENT_TYPE,
        )


def stored_count(data: bytes) -> int:
    """How many entries of a PutRecords answer were stored (those with a SequenceNumber)."""
    try:
        records = json.loads(data)["Records"]
        return sum(1 for r in records if isinstance(r, dict) and "SequenceNumber" in r)
    except (ValueError, KeyError, TypeError):
        return 0


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Many SDK connections may arrive at once after an outage ends.
    request_queue_size = 128

    def __init__(
        self,
        address,
        faults: Faults,
        upstream: str,
        upstream_timeout: float,
        serialize_writes: bool,
        verbose: bool,
    ):
        super().__init__(address, Handler)
        self.serialize_writes = serialize_writes
        self.write_lock = threading.Lock()
        self.faults = faults
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_timeout = upstream_timeout
        self.verbose = verbose

    def handle_error(self, request, client_address) -> None:
        # One line, not a traceback per broken client connection.
        err = sys.exc_info()[1]
        if isinstance(err, (ConnectionError, TimeoutError, socket.timeout)):
            return
        sys.stderr.write(f"fault_kinesis: error serving {client_address}: {err!r}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fault-injecting reverse proxy for the Kinesis JSON 1.1 API "
        "(see the module docstring for the control API)."
    )
    parser.add_argument(
        "--upstream", required=True, metavar="URL", help="http://HOST:PORT of moto or Kinesis"
    )
    parser.add_argument("--listen-host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument(
        "--listen-port",
        type=int,
        default=0,
        help="0 (default) picks a free port; LISTENING <port> is printed",
    )
    parser.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    parser.add_argument(
        "--fail-records",
        type=probability,
        default=0.0,
        metavar="P",
        help="per-entry failure probability",
    )
    parser.add_argument(
        "--throttle",
        type=probability,
        default=0.0,
        metavar="P",
        help="whole-request 400 throttling",
    )
    parser.add_argument(
        "--error-500",
        type=probability,
        default=0.0,
        metavar="P",
        help="whole-request 500 InternalFailure",
    )
    parser.add_argument(
        "--hang", type=probability, default=0.0, metavar="P", help="hang --hang-seconds, then close"
    )
    parser.add_argument("--hang-seconds", type=float, default=30.0, metavar="S", help="default 30")
    parser.add_argument(
        "--drop", type=probability, default=0.0, metavar="P", help="close without a response"
    )
    parser.add_argument(
        "--read-throttle",
        type=probability,
        default=0.0,
        metavar="P",
        help="GetRecords 400 ProvisionedThroughputExceededException",
    )
    parser.add_argument(
        "--expire-iterators",
        type=probability,
        default=0.0,
        metavar="P",
        help="GetRecords 400 ExpiredIteratorException",
    )
    parser.add_argument(
        "--upstream-timeout", type=float, default=30.0, metavar="S", help="default 30"
    )
    parser.add_argument(
        "--parallel-upstream",
        action="store_true",
        help="let PutRecord(s) calls reach the upstream concurrently (fine for real Kinesis; "
        "moto loses records that way)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log every request and injected fault on stderr"
    )
    args = parser.parse_args(argv)
    upstream = urllib.parse.urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.hostname:
        parser.error(f"--upstream must be http://HOST[:PORT], got {args.upstream!r}")
    if args.hang_seconds < 0:
        parser.error("--hang-seconds must be >= 0")
    total = args.throttle + args.error_500 + args.hang + args.drop
    if total > 1.0:
        parser.error(f"--throttle + --error-500 + --hang + --drop = {total:g} exceeds 1")
    if args.read_throttle + args.expire_iterators > 1.0:
        parser.error("--read-throttle + --expire-iterators exceeds 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    faults = Faults(args)
    try:
        server = FaultServer(
            (args.listen_host, args.listen_port),
            faults,
            args.upstream,
            args.upstream_timeout,
            not args.parallel_upstream,
            args.verbose,
        )
    except OSError as err:
        sys.stderr.write(
            f"fault_kinesis: cannot listen on {args.listen_host}:{args.listen_port}: {err}\n"
        )
        return 1

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    )
    serving.start()
    port = server.server_address[1]
    print(f"LISTENING {port}", flush=True)
    settings = json.dumps(faults.describe())
    sys.stderr.write(f"fault_kinesis: {args.listen_host}:{port} -> {args.upstream} {settings}\n")

    # Wake at least every half second: a signal arriving between checks is then seen soon.
    while not stop.wait(0.5):
        pass
    faults.stopping.set()
    server.shutdown()
    server.server_close()
    print(f"STATS {json.dumps(faults.snapshot())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
