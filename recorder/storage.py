"""Where finished recordings live: a local directory, or S3-compatible object storage.

Both implementations are async and never block the event loop: file and network I/O run
in worker threads (``asyncio.to_thread``). Keys are validated before anything touches the
disk or the network: a key is a relative path of plain segments and can never name
something outside the configured root.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Protocol

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK_SIZE: Final = 256 * 1024
MAX_KEY_LENGTH: Final = 512
# A single PUT carries at most 5 GiB; an hour-long call is a few hundred MB per side.
MAX_SINGLE_PUT_BYTES: Final = 5 * 1024**3
# One segment: starts with a letter or digit (so never "", ".", "..", or a hidden file),
# then letters, digits, dot, underscore, dash. No "%" (encoded traversal), no "\", no NUL.
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class StorageError(Exception):
    """A storage operation failed; ``retryable`` says whether trying again may help."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class UnsafeKeyError(StorageError, ValueError):
    """A key (or the path it maps to) could leave the storage root; nothing was touched."""


class ObjectNotFoundError(StorageError):
    """No object under that key."""


class RangeNotSatisfiableError(StorageError):
    """The requested range starts at or past the end of the object (HTTP 416)."""

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class ChecksumMismatchError(StorageError):
    """The stored object does not hash to what was sent; the upload was removed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str


@dataclass(slots=True)
class RangeRead:
    """Bytes ``start``..``end`` (inclusive, clamped to the object) of ``total_size``.

    Iterate it for chunks (HTTP range serving) or ``await read()`` for all of it. Close it
    if you stop early (``async with`` does); iterating to the end closes it.
    """

    start: int
    end: int
    total_size: int
    _chunks: AsyncIterator[bytes] = field(repr=False)
    _close: Callable[[], Awaitable[None]] = field(repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self._chunks])

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._close()

    async def __aenter__(self) -> RangeRead:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class RecordingStorage(Protocol):
    async def put(self, key: str, local_path: Path) -> StoredObject:
        """Store the file at ``local_path`` under ``key``; verifies the stored checksum."""

    async def open_range(self, key: str, start: int, end: int | None = None) -> RangeRead:
        """Bytes ``start``..``end`` inclusive (``None``: to the end), clamped to the size.

        Raises ``RangeNotSatisfiableError`` if ``start`` is at or past the end.
        """

    async def size(self, key: str) -> int: ...

    async def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    async def exists(self, key: str) -> bool: ...


def validate_key(key: str) -> str:
    """``key`` if it is a safe relative object key, else ``UnsafeKeyError``."""
    if not isinstance(key, str) or not key:
        raise UnsafeKeyError("empty storage key")
    if len(key) > MAX_KEY_LENGTH:
        raise UnsafeKeyError(f"storage key longer than {MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not _KEY_SEGMENT.fullmatch(segment):
            raise UnsafeKeyError(
                "unsafe storage key: segments must be letters, digits, '.', '_' or '-', "
                "not start with a dot, and not be empty (no '..', '%', '\\', absolute paths)"
            )
    return key


def _validate_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range {start}-{end}")


def _hash_file_for_upload(path: Path) -> tuple[int, str, str]:
    """Size, SHA-256 and MD5 (hex) of a file in one read."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha256.hexdigest(), md5.hexdigest()


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class LocalDirectoryStorage:
    """Recordings as files under ``root`` (the embedded default)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        validate_key(key)
        root = self.root.resolve()
        path = root / key
        # The key is clean, but a symlink inside the root could still lead out of it.
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise UnsafeKeyError("storage key resolves outside the storage root")
        return path

    def _put(self, key: str, local_path: Path) -> StoredObject:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target = self._path(key)  # re-check now that the directories exist
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.upload")
        digest = hashlib.sha256()
        size = 0
        try:
            with local_path.open("rb") as src, tmp.open("xb") as dst:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            stored_size, stored_sha = _hash_file(tmp)
            if (stored_size, stored_sha) != (size, digest.hexdigest()):
                raise ChecksumMismatchError(f"stored copy of {key} does not match its source")
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return StoredObject(key=key, size=size, sha256=stored_sha)

    async def put(self, key: str, local_path: Path) -> StoredObject:
        return await asyncio.to_thread(self._put, key, Path(local_path))

    def _open(self, key: str, start: int, end: int | None) -> tuple[BinaryIO, int, int, int]:
        path = self._path(key)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no recording object {key}") from None
        except IsADirectoryError:
            raise ObjectNotFoundError(f"no recording object {key}") from None
        try:
            total = os.fstat(fh.fileno()).st_size
            if start >= total:
                raise RangeNotSatisfiableError(
                    f"range starts at {start}, object {key} has {total} bytes", size=total
                )
            last = total - 1 if end is None else min(end, total - 1)
            fh.seek(start)
        except BaseException:
            fh.close()
            raise
        return fh, start, last, total

    async def open_range(self, key: str, start: int, end: int | None = None) -> RangeRead:
        _validate_range(start, end)
        fh, first, last, total = await asyncio.to_thread(self._open, key, start, end)

        async def close() -> None:
            await asyncio.to_thread(fh.close)

        async def chunks() -> AsyncIterator[bytes]:
            remaining = last - first + 1
            try:
                while remaining > 0:
                    chunk = await asyncio.to_thread(fh.read, min(CHUNK_SIZE, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    yield chunk
            finally:
                await read.aclose()

        read = RangeRead(first, last, total, chunks(), close)
        return read

    def _size(self, key: str) -> int:
        path = self._path(key)
        try:
            if not path.is_file():
                raise ObjectNotFoundError(f"no recording object {key}")
            return path.stat().st_size
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no recording object {key}") from None

    async def size(self, key: str) -> int:
        return await asyncio.to_thread(self._size, key)

    def _delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            raise StorageError(f"{key} is a directory, not a recording object")
        path.unlink(missing_ok=True)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    def _exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._exists, key)


class S3Storage:
    """Recordings in an S3-compatible bucket (deployments with more than one node).

    Every boto3 call runs in a worker thread. Uploads carry their SHA-256, which S3
    verifies on receipt; the stored checksum is then read back and compared.
    """

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        *,
        prefix: str = "",
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        client: S3Client | None = None,
    ) -> None:
        if prefix:
            validate_key(prefix.rstrip("/"))
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.prefix = prefix.rstrip("/") + "/" if prefix else ""
        self._client_args: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region_name": region_name,
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
        }
        self._client_config = {
            "retries": {"max_attempts": max_attempts, "mode": "standard"},
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
        }
        self._client: S3Client | None = client
        self._client_lock = asyncio.Lock()

    async def _s3(self) -> S3Client:
        # Creating a boto3 client reads config files and builds the service model: tens
        # of milliseconds, so it happens once, in a thread, on first use.
        async with self._client_lock:
            if self._client is None:
                self._client = await asyncio.to_thread(self._make_client)
            return self._client

    def _make_client(self) -> S3Client:
        import boto3
        from botocore.config import Config

        args = {k: v for k, v in self._client_args.items() if v is not None}
        config = Config(**self._client_config)  # type: ignore[arg-type]
        return boto3.session.Session().client("s3", config=config, **args)

    def _object_key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    async def put(self, key: str, local_path: Path) -> StoredObject:
        object_key = self._object_key(key)
        client = await self._s3()
        return await asyncio.to_thread(self._put, client, key, object_key, Path(local_path))

    def _put(self, client: S3Client, key: str, object_key: str, local_path: Path) -> StoredObject:
        size, sha256, md5 = _hash_file_for_upload(local_path)
        if size > MAX_SINGLE_PUT_BYTES:
            raise StorageError(f"{key}: {size} bytes is more than one PUT can carry")
        sha256_b64 = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        with _translate_errors(key), local_path.open("rb") as body:
            # Both digests travel with the body: S3 rejects a corrupted upload on receipt
            # (SHA-256 where supported, Content-MD5 everywhere else).
            client.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=body,
                ContentLength=size,
                ChecksumSHA256=sha256_b64,
                ContentMD5=base64.b64encode(bytes.fromhex(md5)).decode("ascii"),
                Metadata={"sha256": sha256},
            )
        with _translate_errors(key):
            head = client.head_object(Bucket=self.bucket, Key=object_key, ChecksumMode="ENABLED")
        if head.get("ContentLength") != size or not self._matches(
            client, key, object_key, head, sha256=sha256, sha256_b64=sha256_b64, md5=md5
        ):
            with _translate_errors(key):
                client.delete_object(Bucket=self.bucket, Key=object_key)
            raise ChecksumMismatchError(f"stored object {key} does not match its source")
        return StoredObject(key=key, size=size, sha256=sha256)

    def _matches(
        self,
        client: S3Client,
        key: str,
        object_key: str,
        head: Any,
        *,
        sha256: str,
        sha256_b64: str,
        md5: str,
    ) -> bool:
        """Does the stored object hash to what was sent? Cheapest reliable check first."""
        stored_sha = head.get("ChecksumSHA256")
        if stored_sha:
            return bool(stored_sha == sha256_b64)
        etag = str(head.get("ETag", "")).strip('"')
        if re.fullmatch(r"[0-9a-f]{32}", etag):
            # Single-part PUT without SSE-KMS: the ETag is the MD5 of the stored bytes.
            return etag == md5
        # Stores that report neither (some S3-compatibles): read it back and hash it.
        digest = hashlib.sha256()
        with _translate_errors(key):
            response = client.get_object(Bucket=self.bucket, Key=object_key)
        body = response["Body"]
        try:
            while chunk := body.read(1 << 20):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest() == sha256

    async def open_range(self, key: str, start: int, end: int | None = None) -> RangeRead:
        _validate_range(start, end)
        object_key = self._object_key(key)
        client = await self._s3()
        response = await asyncio.to_thread(self._get_range, client, key, object_key, start, end)
        body = response["Body"]
        first, last, total = _parse_content_range(response.get("ContentRange"), start, response)

        async def close() -> None:
            await asyncio.to_thread(body.close)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(body.read, CHUNK_SIZE):
                    yield chunk
            finally:
                await read.aclose()

        read = RangeRead(first, last, total, chunks(), close)
        return read

    def _get_range(
        self, client: S3Client, key: str, object_key: str, start: int, end: int | None
    ) -> Any:
        wanted = f"bytes={start}-" if end is None else f"bytes={start}-{end}"
        try:
            with _translate_errors(key):
                return client.get_object(Bucket=self.bucket, Key=object_key, Range=wanted)
        except RangeNotSatisfiableError:
            # S3 answers 416 without the size; the caller needs it for Content-Range.
            size = self._head_size(client, key, object_key)
            raise RangeNotSatisfiableError(
                f"range starts at {start}, object {key} has {size} bytes", size=size
            ) from None

    def _head_size(self, client: S3Client, key: str, object_key: str) -> int:
        with _translate_errors(key):
            return int(client.head_object(Bucket=self.bucket, Key=object_key)["ContentLength"])

    async def size(self, key: str) -> int:
        object_key = self._object_key(key)
        client = await self._s3()
        return await asyncio.to_thread(self._head_size, client, key, object_key)

    async def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        client = await self._s3()

        def delete() -> None:
            with _translate_errors(key):
                client.delete_object(Bucket=self.bucket, Key=object_key)

        await asyncio.to_thread(delete)

    async def exists(self, key: str) -> bool:
        try:
            await self.size(key)
        except ObjectNotFoundError:
            return False
        return True

    async def aclose(self) -> None:
        """Close the client's connection pool (safe to call twice)."""
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)


def _parse_content_range(header: str | None, start: int, response: Any) -> tuple[int, int, int]:
    # "bytes 0-99/1234"
    if header:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", header.strip())
        if match:
            return int(match[1]), int(match[2]), int(match[3])
    length = int(response.get("ContentLength", 0))
    return start, start + length - 1, start + length


@contextlib.contextmanager
def _translate_errors(key: str) -> Iterator[None]:
    """Map botocore errors to storage errors (404, 416, retryable 5xx and connection)."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if status == 404 or code in ("NoSuchKey", "404", "NotFound"):
            raise ObjectNotFoundError(f"no recording object {key}") from exc
        if status == 416 or code == "InvalidRange":
            raise RangeNotSatisfiableError(f"range not satisfiable for {key}", size=-1) from exc
        raise StorageError(
            f"object storage refused {key}: {code or status}", retryable=status >= 500
        ) from exc
    except (ConnectionError, BotoCoreError) as exc:
        raise StorageError(
            f"object storage unreachable for {key}: {type(exc).__name__}",
            retryable=isinstance(exc, ConnectionError),
        ) from exc


__all__ = [
    "ChecksumMismatchError",
    "LocalDirectoryStorage",
    "ObjectNotFoundError",
    "RangeNotSatisfiableError",
    "RangeRead",
    "RecordingStorage",
    "S3Storage",
    "StorageError",
    "StoredObject",
    "UnsafeKeyError",
    "validate_key",
]
