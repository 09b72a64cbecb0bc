"""S3 object storage for pipeline artifacts: MinIO in the cluster, any S3 server on a workstation.

Settings come from the environment (what the `toolorch-s3` Kubernetes secret injects):
    TOOLORCH_S3_ENDPOINT    e.g. http://minio.toolorch.svc:9000 (unset: the AWS default endpoint)
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    TOOLORCH_S3_REGION      default us-east-1

    python -m toolorch.ops.storage_cli ensure-bucket toolorch-dvc       # DVC never creates its bucket
    python -m toolorch.ops.storage_cli push ./envs s3://toolorch/runs/1/envs
    python -m toolorch.ops.storage_cli pull s3://toolorch/runs/1/envs ./envs
    python -m toolorch.ops.storage_cli run-stage synth_tasks --config configs/tiny.yaml \\
        --in envs_dir=s3://toolorch/runs/1/envs --out out_dir=s3://toolorch/runs/1/tasks

Transfers stream through s3transfer (the transfer manager boto3 uses), driven by our botocore
client: a file goes up in parts of 8 MiB or more (multipart above 8 MiB, 4 parts at a time)
and comes down in ranges into a temp file renamed when complete, so memory stays bounded
whatever the file's size (a 32 GB weight shard included; S3 refuses single PUTs over 5 GB).
Connection failures and S3 "try again" answers are retried by botocore's `standard` retry mode
(exponential backoff with full jitter) up to `attempts` tries, then `StorageUnavailable` names
the endpoint; any other error (bad credentials, missing object) fails at once with the S3 error code.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from botocore import exceptions as bex
from botocore.config import Config as BotoConfig
from botocore.session import get_session
from s3transfer.manager import TransferConfig, TransferManager

from toolorch.core.errors import RunFailed

_CONNECTION_ERRORS = (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError,
                      bex.ConnectionClosedError, bex.ConnectionError)
MiB = 1 << 20
# 8 MiB parts, 4 in flight; at most 16 x 256 KiB of a download queued for the disk: a transfer
# holds tens of MiB, whatever the file's size (the part size grows past 10,000 parts by itself)
TRANSFER = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_request_concurrency=4,
                          max_request_queue_size=64, max_submission_queue_size=64, max_io_queue_size=16,
                          max_in_memory_upload_chunks=4,
                          max_in_memory_download_chunks=16, num_download_attempts=3)
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "500", "502", "503", "504"}
_MISSING_CODES = {"404", "NoSuchBucket", "NoSuchKey", "NotFound"}
_AUTH_CODES = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class StorageError(RunFailed):
    """An S3 request failed for a reason retrying cannot fix."""


class StorageUnavailable(StorageError):
    """The S3 endpoint could not be reached within the retry budget."""


def is_s3(path: str | Path) -> bool:
    return str(path).startswith("s3://")


def split_s3(url: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b')."""
    if not is_s3(url):
        raise StorageError(f"'{url}' is not an s3:// URL")
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise StorageError(f"'{url}' has no bucket")
    return bucket, key.strip("/")


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    attempts: int = 4  # tries per request, the first included (botocore's standard retry mode)
    timeout_s: float = 10.0  # to connect
    read_timeout_s: float = 120.0  # for an answer: a server under load holds a part's request (backpressure)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "S3Settings":
        env = os.environ if env is None else env
        return cls(endpoint=env.get("TOOLORCH_S3_ENDPOINT") or None,
                   access_key=env.get("AWS_ACCESS_KEY_ID") or None,
                   secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
                   region=env.get("TOOLORCH_S3_REGION", "us-east-1"), **overrides)


class S3Store:
    """Files and folders to and from S3 keys; every request retried by botocore, mapped by `_errors`."""

    def __init__(self, settings: S3Settings | None = None):
        self.settings = settings or S3Settings.from_env()
        s = self.settings
        self.client = get_session().create_client(
            "s3", endpoint_url=s.endpoint, region_name=s.region,
            aws_access_key_id=s.access_key, aws_secret_access_key=s.secret_key,
            config=BotoConfig(retries={"mode": "standard", "total_max_attempts": max(1, s.attempts)},
                              connect_timeout=s.timeout_s, read_timeout=s.read_timeout_s,
                              s3={"addressing_style": "path"}, signature_version="s3v4",
                              max_pool_connections=TRANSFER.max_request_concurrency + 2))

    @property
    def where(self) -> str:
        return self.settings.endpoint or "the default AWS S3 endpoint"

    @contextmanager
    def _errors(self, op: str) -> Iterator[None]:
        """botocore's exceptions, once its retries are spent, as StorageError / StorageUnavailable."""
        try:
            yield
        except _CONNECTION_ERRORS as e:
            raise StorageUnavailable(f"S3 endpoint {self.where} unreachable: {op} failed {self.settings.attempts} "
                                     f"times; last error: {type(e).__name__}: {e}") from None
        except bex.NoCredentialsError:
            raise StorageError(f"S3 {op}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)") from None
        except bex.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in _TRANSIENT_CODES:
                raise StorageUnavailable(f"S3 endpoint {self.where} unreachable: {op} failed "
                                         f"{self.settings.attempts} times; last error: S3 error {code}") from e
            msg = e.response.get("Error", {}).get("Message", "")
            if code in _AUTH_CODES:
                msg += " (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
            raise StorageError(f"S3 {op} on {self.where} failed: {code}: {msg}".rstrip(": ")) from e

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        with self._errors(op):
            return getattr(self.client, op)(**kwargs)

    def ensure_bucket(self, bucket: str) -> bool:
        """Create `bucket` unless it exists; True when it was created."""
        try:
            self._call("head_bucket", Bucket=bucket)
            return False
        except StorageUnavailable:
            raise
        except StorageError as e:
            code = str(e.__cause__.response["Error"].get("Code", "")) if isinstance(e.__cause__, bex.ClientError) else ""
            if code not in _MISSING_CODES:
                raise
        try:
            self._call("create_bucket", Bucket=bucket)
        except StorageError as e:  # a concurrent creator won the race
            if not any(c in str(e) for c in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
                raise
        return True

    def keys(self, url: str) -> list[str]:
        """Keys under an s3:// prefix (a folder), sorted."""
        bucket, prefix = split_s3(url)
        prefix = f"{prefix}/" if prefix else ""
        out: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Bucket=bucket, Prefix=prefix, **token)
            out += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(out)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def is_file(self, url: str) -> bool:
        bucket, key = split_s3(url)
        try:
            self._call("head_object", Bucket=bucket, Key=key)
            return True
        except StorageUnavailable:
            raise
        except StorageError:
            return False

    def _transfer(self, op: str, *args: Any) -> None:
        with self._errors(op), TransferManager(self.client, TRANSFER) as manager:
            getattr(manager, op)(*args).result()

    def upload_file(self, local: str | Path, url: str) -> None:
        """Streamed from disk; multipart above 8 MiB."""
        bucket, key = split_s3(url)
        self._transfer("upload", str(local), bucket, key)

    def download_file(self, url: str, local: str | Path) -> None:
        """Streamed to a temp name renamed when complete, so a failed download leaves no half file."""
        bucket, key = split_s3(url)
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        self._transfer("download", bucket, key, str(local))

    def upload_dir(self, local_dir: str | Path, url: str) -> int:
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise StorageError(f"{local_dir} is not a folder")
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        for p in files:
            self.upload_file(p, f"{url.rstrip('/')}/{p.relative_to(local_dir).as_posix()}")
        return len(files)

    def download_dir(self, url: str, local_dir: str | Path) -> int:
        """Fill a sibling temp folder, then swap it in: the target is never half written."""
        bucket, prefix = split_s3(url)
        keys = self.keys(url)
        if not keys:
            raise StorageError(f"nothing stored under {url}")
        local_dir = Path(local_dir)
        local_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=local_dir.name + ".", dir=local_dir.parent))
        for key in keys:
            self.download_file(f"s3://{bucket}/{key}", tmp / key[len(prefix):].lstrip("/"))
        if local_dir.exists():
            shutil.rmtree(local_dir)
        os.replace(tmp, local_dir)
        return len(keys)

    def pull(self, url: str, local: str | Path) -> None:
        """An object or a folder of objects, whichever `url` names."""
        if self.is_file(url):
            self.download_file(url, local)
        else:
            self.download_dir(url, local)

    def push(self, local: str | Path, url: str) -> None:
        local = Path(local)
        if local.is_dir():
            self.upload_dir(local, url)
        elif local.is_file():
            self.upload_file(local, url)
        else:
            raise StorageError(f"{local} does not exist: nothing to upload to {url}")


@contextmanager
def s3_staged(inputs: Mapping[str, str], outputs: Mapping[str, str], store: S3Store | None = None,
              upload: bool = True) -> Iterator[dict[str, str]]:
    """Map s3:// inputs and outputs to local paths for a stage that only knows files.

    Inputs are downloaded first; outputs get a local path with the URL's base name (so
    `metrics.json` keeps its suffix) and are uploaded when the body returns without error.
    Local paths pass through unchanged. `upload=False` lets non-zero ranks skip the upload.
    """
    if not any(is_s3(v) for v in [*inputs.values(), *outputs.values()]):
        yield {**inputs, **outputs}
        return
    store = store or S3Store()
    with tempfile.TemporaryDirectory(prefix="toolorch-s3-") as tmp:
        paths: dict[str, str] = {}
        for name, url in inputs.items():
            paths[name] = url
            if is_s3(url):
                paths[name] = str(Path(tmp, "in", name, Path(split_s3(url)[1]).name or name))
                store.pull(url, paths[name])
        for name, url in outputs.items():
            paths[name] = str(Path(tmp, "out", name, Path(split_s3(url)[1]).name or name)) if is_s3(url) else url
        yield paths
        for name, url in outputs.items():
            if upload and is_s3(url):
                store.push(paths[name], url)
