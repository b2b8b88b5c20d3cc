"""The template's IAM, read from the template itself: moto ignores IAM
Resource scoping, so what each identity may do is checked here, statement
by statement. Also the stream's encryption and the archive's settings,
which moto accepts without applying."""

import re
import unittest

import cloudtest

STREAM_ARN = {"Fn::GetAtt": ["Stream", "Arn"]}
BUCKET_ARN = {"Fn::GetAtt": ["ArchiveBucket", "Arn"]}
BUCKET_OBJECTS = {"Fn::Sub": "${ArchiveBucket.Arn}/*"}
DEVICE_ACTIONS = {"kinesis:PutRecords", "kinesis:PutRecord",
                  "kinesis:DescribeStreamSummary", "kinesis:ListShards"}


def as_list(x):
    return x if isinstance(x, list) else [x]


def statements(doc):
    assert doc["Version"] == "2012-10-17"
    return as_list(doc["Statement"])


class Template(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = cloudtest.template()
        cls.r = cls.t["Resources"]

    def test_device_policy_is_exactly_write_this_stream(self):
        policy = self.r["DevicePolicy"]
        self.assertEqual(policy["Type"], "AWS::IAM::ManagedPolicy")
        self.assertNotIn("Condition", policy, "every stack has the device policy")
        props = policy["Properties"]
        # Attached to nothing by itself: to the optional user or role only.
        self.assertEqual(set(props) - {"Description", "PolicyDocument"}, set())
        stmts = statements(props["PolicyDocument"])
        self.assertEqual(len(stmts), 1, stmts)
        s = stmts[0]
        self.assertEqual(s["Effect"], "Allow")
        self.assertEqual(set(as_list(s["Action"])), DEVICE_ACTIONS)
        self.assertEqual(len(as_list(s["Action"])), len(DEVICE_ACTIONS))
        self.assertEqual(as_list(s["Resource"]), [STREAM_ARN])
        for key in ("NotAction", "NotResource", "Principal", "Condition"):
            self.assertNotIn(key, s)
        # AWS managed key: producers need no KMS permission, so none is
        # granted (Kinesis developer guide, "Permissions to use
        # user-generated KMS keys").
        enc = self.r["Stream"]["Properties"]["StreamEncryption"]
        self.assertEqual(enc, {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"})

    def test_device_policy_covers_every_call_the_feeder_makes(self):
        # The Kinesis operations the sink's SDK glue calls
        # (`client.put_records()`, the start check's
        # `client.describe_stream_summary()`); `tail` is a reader, not the
        # feeder.
        src = "".join((cloudtest.ROOT / "src" / f).read_text()
                      for f in ("aws.rs", "kinesis/put.rs"))
        ops = set(re.findall(r"client\s*\.\s*([a-z_]+)\(\)", src))
        self.assertIn("put_records", ops)
        self.assertIn("describe_stream_summary", ops)
        actions = {"kinesis:" + "".join(w.title() for w in op.split("_")) for op in ops}
        self.assertLessEqual(actions, DEVICE_ACTIONS)

    def test_device_identities_get_only_the_device_policy(self):
        for name in ("DeviceUserResource", "DeviceRoleResource"):
            props = self.r[name]["Properties"]
            self.assertEqual(props["ManagedPolicyArns"], [{"Ref": "DevicePolicy"}], name)
            self.assertNotIn("Policies", props, name)
        self.assertEqual(self.r["DeviceUserResource"]["Condition"], "DeviceUser")
        self.assertEqual(self.r["DeviceRoleResource"]["Condition"], "DeviceRole")
        trust = statements(self.r["DeviceRoleResource"]["Properties"]["AssumeRolePolicyDocument"])
        self.assertEqual(len(trust), 1)
        self.assertEqual(trust[0]["Principal"], {"Service": "rolesanywhere.amazonaws.com"})
        self.assertEqual(trust[0]["Condition"],
                         {"ArnEquals": {"aws:SourceArn": {"Ref": "DeviceTrustAnchorArn"}}})
        # No access key in the template: its secret would sit in the stack.
        self.assertFalse([k for k, v in self.r.items() if v["Type"] == "AWS::IAM::AccessKey"])

    def test_firehose_role_reads_only_the_stream_writes_only_the_bucket(self):
        role = self.r["ArchiveRole"]["Properties"]
        self.assertNotIn("ManagedPolicyArns", role)
        trust = statements(role["AssumeRolePolicyDocument"])
        self.assertEqual([s["Principal"] for s in trust], [{"Service": "firehose.amazonaws.com"}])
        stmts = [s for p in role["Policies"] for s in statements(p["PolicyDocument"])]
        self.assertEqual(len(stmts), 2, stmts)
        for s in stmts:
            self.assertEqual(s["Effect"], "Allow")
            actions = as_list(s["Action"])
            services = {a.split(":")[0] for a in actions}
            self.assertFalse([a for a in actions if "*" in a], actions)
            if services == {"kinesis"}:
                self.assertEqual(as_list(s["Resource"]), [STREAM_ARN])
                self.assertFalse([a for a in actions if a.startswith("kinesis:Put")])
            else:
                self.assertEqual(services, {"s3"})
                self.assertEqual(as_list(s["Resource"]), [BUCKET_ARN, BUCKET_OBJECTS])
                self.assertFalse([a for a in actions if "Delete" in a or "Acl" in a
                                  or "Policy" in a])
        dest = self.r["Archive"]["Properties"]
        self.assertEqual(dest["DeliveryStreamType"], "KinesisStreamAsSource")
        self.assertEqual(dest["KinesisStreamSourceConfiguration"]["KinesisStreamARN"], STREAM_ARN)
        s3 = dest["ExtendedS3DestinationConfiguration"]
        self.assertEqual(s3["BucketARN"], BUCKET_ARN)
        self.assertEqual(s3["CompressionFormat"], "GZIP")
        self.assertIn("!{timestamp:yyyy}", s3["Prefix"])
        self.assertTrue(s3["ErrorOutputPrefix"].startswith("errors/"))
        self.assertEqual(set(s3["BufferingHints"]), {"IntervalInSeconds", "SizeInMBs"})

    def test_lambda_role_is_scoped_too(self):
        role = self.r["LatestStateRole"]["Properties"]
        self.assertNotIn("ManagedPolicyArns", role)
        for s in (s for p in role["Policies"] for s in statements(p["PolicyDocument"])):
            self.assertFalse([a for a in as_list(s["Action"]) if "*" in a])
            self.assertNotIn("*", as_list(s["Resource"]))
            if s["Sid"] == "ThisTable":
                self.assertEqual(s["Resource"], {"Fn::GetAtt": ["LatestStateTable", "Arn"]})
                self.assertEqual(set(s["Action"]), {"dynamodb:GetItem", "dynamodb:PutItem"})

    def test_bucket_is_private_encrypted_and_ages(self):
        b = self.r["ArchiveBucket"]["Properties"]
        self.assertTrue(all(b["PublicAccessBlockConfiguration"].values()))
        self.assertEqual(len(b["PublicAccessBlockConfiguration"]), 4)
        self.assertTrue(b["BucketEncryption"]["ServerSideEncryptionConfiguration"])
        rule, = b["LifecycleConfiguration"]["Rules"]
        self.assertEqual(rule["ExpirationInDays"]["Fn::If"][1], {"Ref": "ArchiveExpireDays"})
        transition = rule["Transitions"]["Fn::If"][1][0]
        self.assertEqual(transition["TransitionInDays"], {"Ref": "ArchiveTransitionDays"})

    def test_event_source_mapping(self):
        m = self.r["LatestStateMapping"]["Properties"]
        self.assertEqual(m["EventSourceArn"], STREAM_ARN)
        self.assertEqual(m["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertIs(m["BisectBatchOnFunctionError"], True)
        for key in ("BatchSize", "MaximumBatchingWindowInSeconds", "MaximumRetryAttempts"):
            self.assertIsInstance(m[key], int, key)

    def test_stream_mode_and_shards(self):
        # moto reports every stream as PROVISIONED, so the wiring is read
        # here: on-demand streams must not be given a shard count.
        props = self.r["Stream"]["Properties"]
        self.assertEqual(props["StreamModeDetails"], {"StreamMode": {"Ref": "StreamMode"}})
        self.assertEqual(props["ShardCount"], {"Fn::If": ["IsProvisioned", {"Ref": "ShardCount"},
                                                          {"Ref": "AWS::NoValue"}]})
        self.assertEqual(self.t["Conditions"]["IsProvisioned"],
                         {"Fn::Equals": [{"Ref": "StreamMode"}, "PROVISIONED"]})
        self.assertEqual(props["RetentionPeriodHours"], {"Ref": "RetentionHours"})

    def test_outputs(self):
        self.assertLessEqual(
            {"StreamName", "StreamArn", "DevicePolicyArn", "ArchiveBucketName",
             "LatestStateTableName"}, set(self.t["Outputs"]))


if __name__ == "__main__":
    unittest.main()
