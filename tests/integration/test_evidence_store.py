"""Evidence photos in an S3-compatible store: moto's standalone S3 server (`moto_server`, no MinIO
installs here) behind boto3, first the store alone, then the console service of a running county
keeping an uploaded photo there and putting its sha256 on the case's timeline; what is not a
photo, or too big, is refused with its reason and nothing is kept."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests

from onegrid.adapters.identity import EmbeddedIssuer
from onegrid.adapters.web.evidence import S3Evidence
from onegrid.domain.access import OPERATOR
from onegrid.domain.cases import case_id
from sim.runner import free_port_base
from tests.conftest import County
from tests.support import publish, wait_until

pytestmark = pytest.mark.integration
BUCKET = "county-evidence"
KEYS = {"access_key": "testing", "secret_key": "testing"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = free_port_base(span=1) + 1
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(endpoint), timeout=30, what="moto's S3 server")
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _up(endpoint: str) -> bool:
    try:
        return requests.get(endpoint, timeout=1).status_code < 500
    except requests.RequestException:
        return False


def test_the_s3_store_keeps_and_returns_a_photo(s3):
    endpoint, client = s3
    store = S3Evidence(endpoint, BUCKET, **KEYS)
    url = store.put("t/c-0000000000000001/abc.png", PNG, "image/png")
    assert url == f"s3://{BUCKET}/t/c-0000000000000001/abc.png"
    assert store.get("t/c-0000000000000001/abc.png") == (PNG, "image/png")
    assert client.head_object(Bucket=BUCKET, Key="t/c-0000000000000001/abc.png")["ContentLength"] == len(PNG)
    assert store.get("t/c-0000000000000001/none.png") is None


@pytest.fixture(scope="module")
def county(tmp_path_factory, s3):
    endpoint, _ = s3
    env = {
        "ONEGRID_EVIDENCE_S3_ENDPOINT": endpoint,
        "ONEGRID_EVIDENCE_BUCKET": BUCKET,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    c = County(tmp_path_factory.mktemp("evidence"), services=("intake", "routing", "supervision", "console"), env=env)
    try:
        c.services.start()
        p = next(p for p in (c.simulator(seed=5).good() for _ in range(20)) if p.department != "governance")
        publish(c.uri, [p])
        c.case = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
        wait_until(lambda: (c.store.case(c.case) or {}).get("status") == "dispatched", what="dispatch")
        issuer = EmbeddedIssuer(c.store.r, c.tenant)
        issuer.add("wang-fang", OPERATOR, name="王芳")
        c.token = issuer.token("wang-fang")
        yield c
    finally:
        c.close()


def _upload(county, data: bytes, content_type: str = "image/png"):
    return requests.post(
        county.services.url("console") + f"/console/cases/{county.case}/evidence",
        headers={"Authorization": f"Bearer {county.token}"},
        files={"photo": ("site.png", data, content_type)},
        allow_redirects=False,
        timeout=20,
    )


def test_an_uploaded_photo_is_kept_in_the_bucket_and_its_sha256_on_the_timeline(county, s3):
    _, client = s3
    r = _upload(county, PNG)
    assert r.status_code == 303, r.text
    digest = hashlib.sha256(PNG).hexdigest()
    key = f"{county.id}/{county.case}/{digest}.png"
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == PNG
    line = next(x for x in county.store.timeline(county.case) if x["action"] == "attach_evidence")
    assert line["actor"] == "wang-fang"
    assert line["photo"] == {
        "url": f"s3://{BUCKET}/{key}",
        "sha256": digest,
        "bytes": len(PNG),
        "content_type": "image/png",
    }
    served = requests.get(
        county.services.url("console") + f"/console/evidence/{county.case}/{digest}.png",
        headers={"Authorization": f"Bearer {county.token}"},
        timeout=10,
    )
    assert served.status_code == 200 and served.content == PNG and served.headers["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [
        (b"<html><script>alert(1)</script>", "image/png", "first bytes"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/png", "its bytes are image/jpeg"),
        (b"", "image/png", "empty"),
    ],
)
def test_what_is_not_a_photo_is_refused_and_not_kept(county, s3, data, content_type, reason):
    _, client = s3
    before = client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
    r = _upload(county, data, content_type)
    assert r.status_code == 400 and reason in r.text
    assert client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == before


def test_a_photo_over_the_limit_is_refused_before_it_is_read(county):
    r = _upload(county, PNG + b"\x00" * (8 * 1024 * 1024 + 100_000))
    assert r.status_code == 400 and "at most" in r.text
