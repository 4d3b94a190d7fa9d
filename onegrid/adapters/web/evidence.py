"""Evidence photos' store: a county's S3-compatible bucket (boto3; MinIO, Ceph, a cloud's
object store), or a local directory (the embedded default). Keys are
`<tenant>/<case id>/<sha256>.<ext>`: the same photo twice is one object."""

from __future__ import annotations

from pathlib import Path

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


class LocalEvidence:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise LookupError(f"no evidence {key[:80]}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        return f"file:{key}"

    def get(self, key: str) -> tuple[bytes, str] | None:
        path = self._path(key)
        if not path.is_file():
            return None
        return path.read_bytes(), CONTENT_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")


class S3Evidence:
    """A bucket on an S3-compatible endpoint; credentials as boto3 finds them (the
    environment, a mounted profile) unless given."""

    def __init__(self, endpoint: str, bucket: str, access_key: str | None = None, secret_key: str | None = None):
        import boto3  # only where a county has a bucket

        self.bucket = bucket
        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
        )

    def put(self, key: str, data: bytes, content_type: str) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            return None
        return obj["Body"].read(), obj.get("ContentType") or "application/octet-stream"


def evidence_store(s3_endpoint: str, bucket: str, local_dir: str, access_key=None, secret_key=None):
    if s3_endpoint:
        return S3Evidence(s3_endpoint, bucket, access_key, secret_key)
    return LocalEvidence(local_dir)
