"""Helpers of the cloud-stack tests: the template parsed with its
CloudFormation short tags, a moto server on a free 127.0.0.1 port, boto3
clients for it, and the Lambda's inline code loaded as a module.

moto must be importable (scripts/test-cloud installs moto[server]); without
it the tests fail, they do not skip.
"""

import os
import socket
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "cloudformation" / "adsb-kinesis.yaml"
SHARED = ROOT.parent / "shared" / "testdata"
REGION = "us-east-1"


class _Loader(yaml.SafeLoader):
    """YAML with the CloudFormation short forms (`!Ref X`, `!GetAtt A.B`,
    `!Sub ...`) read as their long forms (`{"Ref": "X"}`, ...)."""


def _tag(loader, suffix, node):
    name = suffix if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Condition":
        return {"Condition": value}
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def template():
    """The template as plain data, short tags in their long forms."""
    with open(TEMPLATE, encoding="utf-8") as f:
        return yaml.load(f, Loader=_Loader)


def template_body():
    return TEMPLATE.read_text(encoding="utf-8")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aws_environment(url):
    """Dummy credentials and region, AWS endpoint = moto, nothing from
    the host's AWS files or metadata service; for this process (boto3) and
    for children (`adsb-kinesis run`)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "ADSB_KINESIS_"))}
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION,
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL=url)
    return env


class Moto:
    """`python3 -m moto.server` on a free 127.0.0.1 port; this process's
    environment points boto3 at it until stop()."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited at start ({self.proc.returncode}); "
                                   "is moto[server] installed?")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto did not listen on {self.port} within 60 s")
                time.sleep(0.1)
        self._saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(aws_environment(self.url))

    def reset(self):
        """Forget every resource (moto cannot delete_stack our stack)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    def client(self, service):
        import boto3
        return boto3.client(service, endpoint_url=self.url, region_name=REGION)

    def deploy(self, name="adsb", **parameters):
        """create_stack with the template and wait; the stack's outputs."""
        cf = self.client("cloudformation")
        cf.create_stack(
            StackName=name, TemplateBody=template_body(),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)}
                        for k, v in parameters.items()])
        cf.get_waiter("stack_create_complete").wait(
            StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        stack = cf.describe_stacks(StackName=name)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def stop(self):
        if getattr(self, "_saved", None) is not None:
            os.environ.clear()
            os.environ.update(self._saved)
            self._saved = None
        self.proc.kill()
        self.proc.wait()


def lambda_module(table, ttl_hours):
    """The latest-state Lambda's inline code, from the template (never a
    copy), loaded as a fresh module the way Lambda loads index.py, with the
    environment the template gives it. boto3 inside it reaches moto through
    AWS_ENDPOINT_URL."""
    fn = template()["Resources"]["LatestStateFunction"]["Properties"]
    code = fn["Code"]["ZipFile"]
    assert isinstance(code, str), "the Lambda code must be a plain string"
    assert set(fn["Environment"]["Variables"]) == {"TABLE", "TTL_HOURS"}
    module = types.ModuleType("index")
    saved = {k: os.environ.get(k) for k in ("TABLE", "TTL_HOURS")}
    os.environ.update(TABLE=table, TTL_HOURS=str(ttl_hours))
    try:
        exec(compile(code, "index.py", "exec"), module.__dict__)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return module


def untimed(line):
    """An SBS line with its four time fields (7-10) blanked, or None."""
    f = line.split(",")
    if len(f) < 22 or f[0] != "MSG":
        return None
    f[6:10] = ["", "", "", ""]
    return ",".join(f)
