"""The whole template deployed with CloudFormation on a moto server, then
the real `adsb-kinesis run` writing the shared recording into the stream
it created: every shard read back (with boto3, and with `adsb-kinesis
tail --from trim-horizon`) must hold exactly the lines `run` prints to
stdout for the same input. The records read back, as a Kinesis event,
then go through the template's Lambda into the deployed table.

The binary is $TEST_ADSB_KINESIS_BIN, or built here with `cargo build`.
moto skips AWS::KinesisFirehose::DeliveryStream and never fires event
source mappings (so the archive is checked in test_template.py and the
Lambda is called by this test), and cannot delete stacks (hence reset).
"""

import base64
import json
import os
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
import unittest
from collections import Counter

import cloudtest

RECORDING = cloudtest.SHARED / "iq" / "modes1_2400.cu8"


def binary():
    path = os.environ.get("TEST_ADSB_KINESIS_BIN")
    if path:
        return path
    out = subprocess.run(
        ["cargo", "build", "--bin", "adsb-kinesis", "--message-format=json-render-diagnostics"],
        cwd=cloudtest.ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["name"] == "adsb-kinesis":
            return msg["executable"]
    raise RuntimeError("cargo build did not report the adsb-kinesis executable")


def counted(lines):
    """Untimed SBS lines counted; fails on anything that is not one."""
    c = Counter()
    for line in lines:
        u = cloudtest.untimed(line)
        assert u is not None, f"not an SBS line: {line!r}"
        c[u] += 1
    return c


class Stack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bin = binary()
        cls.moto = cloudtest.Moto()

    @classmethod
    def tearDownClass(cls):
        cls.moto.stop()

    def tearDown(self):
        self.moto.reset()

    def run_bin(self, *args):
        env = cloudtest.aws_environment(self.moto.url)
        del env["AWS_ENDPOINT_URL"]  # `run` gets --endpoint-url, as a user would
        return subprocess.run([self.bin, "run", "--source", f"file:{RECORDING}", *args],
                              env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=180)

    def tail(self, stream, expect):
        """`tail --output sbs --from trim-horizon` until it has printed
        `expect` lines (then SIGTERM) or 120 s pass; its lines."""
        env = cloudtest.aws_environment(self.moto.url)
        del env["AWS_ENDPOINT_URL"]
        p = subprocess.Popen([self.bin, "tail", "--stream", stream, "--endpoint-url",
                              self.moto.url, "--output", "sbs", "--from", "trim-horizon"],
                             env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        timer = threading.Timer(120, p.terminate)
        timer.start()
        lines = []
        try:
            for raw in p.stdout:
                self.assertTrue(raw.endswith(b"\r\n"), raw)
                lines.append(raw[:-2].decode())
                if len(lines) == expect:
                    # Exactly: nothing more may follow (tail polls every
                    # second; three polls).
                    time.sleep(3)
                    break
        finally:
            timer.cancel()
            p.terminate()
            rest, err = p.communicate(timeout=30)
        self.assertEqual(len(lines), expect, err.decode())
        self.assertEqual(rest, b"", "tail printed more lines than were written")
        return lines

    def read_stream(self, name):
        """Every record of every shard from TRIM_HORIZON."""
        k = self.moto.client("kinesis")
        shards = k.list_shards(StreamName=name)["Shards"]
        records = []
        for shard in shards:
            it = k.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                got = k.get_records(ShardIterator=it, Limit=10000)
                if not got["Records"]:
                    break
                records += got["Records"]
                it = got.get("NextShardIterator")
        return shards, records

    def test_deploy_then_run_writes_what_stdout_gets(self):
        out = self.moto.deploy(StreamMode="PROVISIONED", ShardCount=2,
                               DeviceIdentity="user", LatestStateTtlHours=2)
        stream = out["StreamName"]

        # What the stack holds (moto's view: it creates these, no Firehose).
        k = self.moto.client("kinesis")
        summary = k.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
        self.assertEqual(summary["StreamStatus"], "ACTIVE")
        self.assertEqual(summary["StreamARN"], out["StreamArn"])
        self.assertEqual(summary["OpenShardCount"], 2)
        table = self.moto.client("dynamodb").describe_table(
            TableName=out["LatestStateTableName"])["Table"]
        self.assertEqual(table["TableStatus"], "ACTIVE")
        lam = self.moto.client("lambda")
        fn = lam.get_function(FunctionName="adsb-latest-state")["Configuration"]
        # (moto keeps a Number parameter's type; Lambda gets strings.)
        env = {k: str(v) for k, v in fn["Environment"]["Variables"].items()}
        self.assertEqual(env, {"TABLE": out["LatestStateTableName"], "TTL_HOURS": "2"})
        mapping, = lam.list_event_source_mappings(EventSourceArn=out["StreamArn"])[
            "EventSourceMappings"]
        self.assertEqual(mapping["FunctionArn"], fn["FunctionArn"])
        self.assertEqual(mapping["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        iam = self.moto.client("iam")
        policy = iam.get_policy(PolicyArn=out["DevicePolicyArn"])["Policy"]
        doc = iam.get_policy_version(PolicyArn=policy["Arn"],
                                     VersionId=policy["DefaultVersionId"])["PolicyVersion"]
        stmt, = doc["Document"]["Statement"]
        self.assertEqual(stmt["Resource"], out["StreamArn"])
        # moto creates the user but does not attach its ManagedPolicyArns;
        # test_template.py checks the attachment in the template.
        iam.get_user(UserName=out["DeviceUserName"])
        self.moto.client("s3").head_bucket(Bucket=out["ArchiveBucketName"])

        # The reference: `run` with the stdout sink (CR LF lines).
        ref = self.run_bin()
        self.assertEqual(ref.returncode, 0, ref.stderr.decode())
        want = counted(ref.stdout.decode().split("\r\n")[:-1])
        self.assertGreater(sum(want.values()), 100, "too few lines to compare")

        with tempfile.TemporaryDirectory() as spool:
            sent = self.run_bin("--stream", stream, "--endpoint-url", self.moto.url,
                                "--spool-dir", spool, "--pack-lines", "20")
        self.assertEqual(sent.returncode, 0, sent.stderr.decode())
        self.assertEqual(sent.stdout, b"", "the Kinesis sink wrote to stdout")

        shards, records = self.read_stream(stream)
        self.assertEqual(len(shards), 2)
        lines = []
        for r in records:
            text = r["Data"].decode()
            self.assertTrue(text.endswith("\n") and "\r" not in text, repr(text))
            for line in text.split("\n")[:-1]:
                self.assertEqual(line.split(",")[4], r["PartitionKey"])
                lines.append(line)
        self.assertEqual(counted(lines), want)
        self.assertLess(len(records) * 5, len(lines), "records were not packed")

        # And as a user reads it back: `adsb-kinesis tail`.
        self.assertEqual(counted(self.tail(stream, sum(want.values()))), want)

        # The records, as Lambda would get them, through the template's
        # handler into the deployed table: per aircraft and field, the
        # value of its newest line.
        event = {"Records": [{"kinesis": {
            "data": base64.b64encode(r["Data"]).decode(),
            "sequenceNumber": r["SequenceNumber"], "partitionKey": r["PartitionKey"]}}
            for r in records]}
        handler = cloudtest.lambda_module(out["LatestStateTableName"], 2)
        self.assertEqual(handler.handler(event, None), {"batchItemFailures": []})
        ddb = self.moto.client("dynamodb")
        icaos = {line.split(",")[4] for line in lines}
        for icao in icaos:
            item = ddb.get_item(TableName=out["LatestStateTableName"],
                                Key={"icao": {"S": icao}})["Item"]
            mine = [line.split(",") for line in lines if line.split(",")[4] == icao]
            newest = max(f"{f[6]} {f[7]}" for f in mine)
            seen = datetime.strptime(newest, "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=timezone.utc)
            self.assertAlmostEqual(float(item["last_seen"]["N"]), seen.timestamp(), places=3)
            for number, attr in ((12, "altitude_ft"), (15, "lat"), (18, "squawk")):
                carrying = [f for f in mine if f[number - 1]]
                if not carrying:
                    self.assertNotIn(attr, item)
                    continue
                t = max(f"{f[6]} {f[7]}" for f in carrying)
                at_t = {f[number - 1] for f in carrying if f"{f[6]} {f[7]}" == t}
                (value,) = item[attr].values()
                self.assertIn(value, at_t, (icao, attr))


if __name__ == "__main__":
    unittest.main()
