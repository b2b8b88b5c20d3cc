"""The latest-state Lambda's handler, taken from the template, run against
Kinesis-event-shaped batches and the DynamoDB table the template creates
(deployed on a moto server: moto never fires event source mappings, so the
test calls the handler as Lambda would). Every DynamoDB call is real and
counted through botocore's event hooks."""

import base64
import calendar
import unittest
from collections import Counter

import cloudtest

TTL_HOURS = 6
# The handler must set the attribute the table's TTL reads.
TTL_ATTR = "expire_at"
DAY = "2026/11/23"


def at(second):
    """A generated time on DAY, 10:00:00 + `second` (with milliseconds)."""
    whole = int(second)
    ms = round((second - whole) * 1000)
    return f"10:{whole // 60:02d}:{whole % 60:02d}.{ms:03d}"


def epoch(second):
    return calendar.timegm((2026, 11, 23, 10, 0, 0, 0, 0, 0)) + second


def sbs(msg, icao, second, **fields):
    """One SBS line (SBS_FORMAT.md section 2) with `fields` by number:
    callsign=11, altitude=12, gs=13, track=14, lat=15, lon=16, vrate=17,
    squawk=18, ground=22."""
    names = {"callsign": 11, "altitude": 12, "gs": 13, "track": 14, "lat": 15,
             "lon": 16, "vrate": 17, "squawk": 18, "ground": 22}
    f = ["MSG", str(msg), "1", "1", icao, "1", DAY, at(second), DAY, at(second + 0.5)]
    f += [""] * 12
    for name, value in fields.items():
        f[names[name] - 1] = str(value)
    return ",".join(f)


class Batch:
    """A Kinesis event as Lambda delivers it: records with base64 data and
    increasing sequence numbers."""

    def __init__(self):
        self.records = []

    def add(self, *lines, sep="\n", raw=None):
        seq = str(49650000000000000000000000000000000000000000000000000 + len(self.records))
        data = raw if raw is not None else "".join(f"{l}{sep}" for l in lines).encode()
        fields = next((l.split(",") for l in lines if l.count(",") > 4), [])
        key = fields[4] if fields else "X"
        self.records.append({
            "eventSource": "aws:kinesis", "eventName": "aws:kinesis:record",
            "eventID": f"shardId-000000000000:{seq}",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/adsb-sbs",
            "awsRegion": "us-east-1",
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": key,
                        "sequenceNumber": seq,
                        "data": base64.b64encode(data).decode(),
                        "approximateArrivalTimestamp": 1795000000.0}})
        return seq

    def event(self):
        return {"Records": self.records}


class LatestState(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.moto = cloudtest.Moto()
        try:
            out = cls.moto.deploy(EnableArchive="false", LatestStateTtlHours=TTL_HOURS)
            cls.table = out["LatestStateTableName"]
            cls.fn = cloudtest.lambda_module(cls.table, TTL_HOURS)
            cls.calls = Counter()
            cls.fn.ddb.meta.events.register(
                "before-call.dynamodb.*",
                lambda model, **_: cls.calls.update([model.name]))
            cls.ddb = cls.moto.client("dynamodb")
        except BaseException:
            cls.moto.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.moto.stop()

    def setUp(self):
        for item in self.ddb.scan(TableName=self.table)["Items"]:
            self.ddb.delete_item(TableName=self.table, Key={"icao": item["icao"]})
        self.calls.clear()

    def run_batch(self, batch):
        self.calls.clear()
        return self.fn.handler(batch.event(), None)

    def item(self, icao):
        got = self.ddb.get_item(TableName=self.table, Key={"icao": {"S": icao}})
        self.assertIn("Item", got, f"no item for {icao}")
        out = {}
        for k, v in got["Item"].items():
            (kind, value), = v.items()
            out[k] = (float(value) if kind == "N" else
                      {n: float(t["N"]) for n, t in value.items()} if kind == "M" else value)
        return out

    def writes(self):
        return self.calls["PutItem"] + self.calls["UpdateItem"] + self.calls["BatchWriteItem"]

    def test_table_is_the_templates(self):
        desc = self.ddb.describe_table(TableName=self.table)["Table"]
        self.assertEqual(desc["KeySchema"], [{"AttributeName": "icao", "KeyType": "HASH"}])
        self.assertEqual(desc["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST")
        # moto creates the table without its TimeToLiveSpecification, so
        # the TTL attribute is checked in the template: the one the
        # handler sets (asserted through TTL_ATTR in the other tests).
        spec = cloudtest.template()["Resources"]["LatestStateTable"]["Properties"]
        self.assertEqual(spec["TimeToLiveSpecification"], {"AttributeName": TTL_ATTR,
                                                           "Enabled": True})

    def test_packed_records_several_aircraft_one_write_each(self):
        b = Batch()
        # Packed: three lines of one aircraft in one record (LF, as the
        # sender writes), two of another in CR LF, one alone.
        b.add(sbs(1, "4D2023", 1.0, callsign="AMC421  ", ground=0),
              sbs(3, "4D2023", 2.0, altitude=22875, lat=37.10156, lon=13.78474),
              sbs(4, "4D2023", 3.5, gs=390, track=158, vrate=-1920))
        b.add(sbs(6, "40621D", 1.25, squawk="7700"),
              sbs(5, "40621D", 2.75, altitude=3000, ground=-1), sep="\r\n")
        b.add(sbs(8, "A1B2C3", 4.0))
        # And more of the first aircraft later in the batch.
        b.add(sbs(3, "4D2023", 5.0, altitude=22850, lat=37.1, lon=13.79),
              sbs(6, "4D2023", 6.0, squawk="0112"))
        self.assertEqual(self.run_batch(b), {"batchItemFailures": []})
        self.assertEqual(self.writes(), 3, self.calls)

        a = self.item("4D2023")
        self.assertEqual(a["callsign"], "AMC421")
        self.assertEqual((a["altitude_ft"], a["lat"], a["lon"]), (22850, 37.1, 13.79))
        self.assertEqual((a["gs_kt"], a["track_deg"], a["vrate_fpm"]), (390, 158, -1920))
        self.assertEqual(a["squawk"], "0112")
        self.assertIs(a["on_ground"], False)
        self.assertEqual(a["last_seen"], epoch(6.0))
        self.assertEqual(a[TTL_ATTR], int(epoch(6.0)) + TTL_HOURS * 3600)
        self.assertEqual(a["ts"]["altitude_ft"], epoch(5.0))
        self.assertEqual(a["ts"]["callsign"], epoch(1.0))

        b2 = self.item("40621D")
        self.assertEqual((b2["squawk"], b2["altitude_ft"], b2["on_ground"]), ("7700", 3000, True))
        self.assertEqual(b2["last_seen"], epoch(2.75))
        self.assertNotIn("callsign", b2)

        c = self.item("A1B2C3")
        self.assertEqual(c["last_seen"], epoch(4.0))
        self.assertEqual(c[TTL_ATTR], int(epoch(4.0)) + TTL_HOURS * 3600)

    def test_many_lines_of_few_aircraft_are_few_writes(self):
        b = Batch()
        icaos = ["AAAAA1", "AAAAA2", "AAAAA3", "AAAAA4", "AAAAA5"]
        for i in range(100):
            b.add(*[sbs(3, icao, i + k / 10, altitude=1000 + i * 10 + k)
                    for k, icao in enumerate(icaos)])
        self.assertEqual(self.run_batch(b), {"batchItemFailures": []})
        self.assertEqual(self.writes(), len(icaos), self.calls)
        for k, icao in enumerate(icaos):
            self.assertEqual(self.item(icao)["altitude_ft"], 1000 + 99 * 10 + k)

    def test_older_message_never_overwrites_newer(self):
        # Within one batch: the retried (older) line arrives last.
        b = Batch()
        b.add(sbs(3, "ABCDEF", 10.0, altitude=30000, lat=51.5, lon=-0.1))
        b.add(sbs(3, "ABCDEF", 7.0, altitude=29000, lat=51.4, lon=-0.2))
        self.assertEqual(self.run_batch(b), {"batchItemFailures": []})
        a = self.item("ABCDEF")
        self.assertEqual((a["altitude_ft"], a["lat"], a["lon"]), (30000, 51.5, -0.1))
        self.assertEqual(a["last_seen"], epoch(10.0))

        # A later batch with older altitude but a newer squawk and an old
        # callsign nobody stored yet: per field, the newest wins.
        b = Batch()
        b.add(sbs(5, "ABCDEF", 8.0, altitude=29500),
              sbs(6, "ABCDEF", 12.0, squawk="1000"),
              sbs(1, "ABCDEF", 2.0, callsign="BAW1    "))
        self.assertEqual(self.run_batch(b), {"batchItemFailures": []})
        self.assertEqual(self.writes(), 1)
        a = self.item("ABCDEF")
        self.assertEqual(a["altitude_ft"], 30000)
        self.assertEqual(a["ts"]["altitude_ft"], epoch(10.0))
        self.assertEqual((a["squawk"], a["callsign"]), ("1000", "BAW1"))
        self.assertEqual(a["last_seen"], epoch(12.0))
        self.assertEqual(a[TTL_ATTR], int(epoch(12.0)) + TTL_HOURS * 3600)

        # A batch entirely older than what is stored writes nothing, and
        # neither does replaying the last batch.
        b = Batch()
        b.add(sbs(3, "ABCDEF", 1.0, altitude=100, lat=1.0, lon=1.0))
        self.assertEqual(self.run_batch(b), {"batchItemFailures": []})
        self.assertEqual(self.writes(), 0)
        before = self.item("ABCDEF")
        self.run_batch(b)
        self.assertEqual(self.item("ABCDEF"), before)

    def test_malformed_records_are_reported_and_the_rest_kept(self):
        b = Batch()
        b.add(sbs(3, "111111", 1.0, altitude=1000))
        bad_b64 = b.add(raw=b"")
        b.records[-1]["kinesis"]["data"] = "not base64!"
        not_sbs = b.add(raw=b"hello world\n")
        bad_field = b.add(sbs(3, "222222", 1.0, altitude="high"))
        binary = b.add(raw=bytes(range(256)))
        # One good and one broken line: the record is reported, the good
        # line still counts (a retry of it changes nothing).
        mixed = b.add(sbs(3, "333333", 1.0, altitude=3000), "MSG,3,1,1,ZZZ")
        b.add("", sbs(3, "444444", 2.0, altitude=4000), "")  # empty lines are heartbeats
        got = self.run_batch(b)
        self.assertEqual(got, {"batchItemFailures": [
            {"itemIdentifier": s} for s in (bad_b64, not_sbs, bad_field, binary, mixed)]})
        self.assertEqual(self.item("111111")["altitude_ft"], 1000)
        self.assertEqual(self.item("333333")["altitude_ft"], 3000)
        self.assertEqual(self.item("444444")["altitude_ft"], 4000)
        self.assertNotIn("Item", self.ddb.get_item(
            TableName=self.table, Key={"icao": {"S": "222222"}}))
        self.assertEqual(self.writes(), 3)

    def test_a_concurrent_writer_is_merged_not_overwritten(self):
        b = Batch()
        b.add(sbs(3, "777777", 5.0, altitude=7000))
        other = {"icao": {"S": "777777"}, "squawk": {"S": "7000"},
                 "last_seen": {"N": f"{epoch(9.0):.3f}"},
                 "ts": {"M": {"squawk": {"N": f"{epoch(9.0):.3f}"},
                              "last_seen": {"N": f"{epoch(9.0):.3f}"}}},
                 "expire_at": {"N": str(int(epoch(9.0)) + 60)}, "version": {"N": "1"}}
        done = []

        def race(params, **_):
            # Another writer gets in between the handler's read and write.
            if not done:
                done.append(True)
                self.ddb.put_item(TableName=self.table, Item=other)

        self.fn.ddb.meta.events.register("provide-client-params.dynamodb.PutItem", race)
        try:
            got = self.run_batch(b)
        finally:
            self.fn.ddb.meta.events.unregister("provide-client-params.dynamodb.PutItem", race)
        self.assertEqual(got, {"batchItemFailures": []})
        self.assertEqual(self.calls["PutItem"], 2, "the first, conditional, write must fail")
        a = self.item("777777")
        self.assertEqual((a["squawk"], a["altitude_ft"], a["version"]), ("7000", 7000, 2))
        self.assertEqual(a["last_seen"], epoch(9.0))
        self.assertEqual(a[TTL_ATTR], int(epoch(9.0)) + TTL_HOURS * 3600)

    def test_a_failed_write_reports_that_aircrafts_records(self):
        b = Batch()
        ok = b.add(sbs(3, "555555", 1.0, altitude=5000))
        fails = [b.add(sbs(3, "666666", 1.0, altitude=6000)),
                 b.add(sbs(3, "666666", 2.0, altitude=6100))]

        def deny(params, **_):
            if params["Item"]["icao"]["S"] == "666666":
                raise self.fn.ddb.exceptions.ProvisionedThroughputExceededException(
                    {"Error": {"Code": "ProvisionedThroughputExceededException",
                               "Message": "injected by the test"}}, "PutItem")

        self.fn.ddb.meta.events.register("provide-client-params.dynamodb.PutItem", deny)
        try:
            got = self.run_batch(b)
        finally:
            self.fn.ddb.meta.events.unregister("provide-client-params.dynamodb.PutItem", deny)
        self.assertEqual(got, {"batchItemFailures": [{"itemIdentifier": s} for s in fails]})
        self.assertNotIn(ok, [f["itemIdentifier"] for f in got["batchItemFailures"]])
        self.assertEqual(self.item("555555")["altitude_ft"], 5000)


if __name__ == "__main__":
    unittest.main()
