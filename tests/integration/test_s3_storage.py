"""Recording storage: the local directory and S3 (a real moto server on loopback).

Both implementations pass the same contract tests; unsafe keys are refused by both before
anything touches the disk or the network.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from moto.server import ThreadedMotoServer

from recorder.storage import (
    CHUNK_SIZE,
    ChecksumMismatchError,
    LocalDirectoryStorage,
    ObjectNotFoundError,
    RangeNotSatisfiableError,
    RecordingStorage,
    S3Storage,
    StorageError,
    UnsafeKeyError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "recordings"
KEY_ID, SECRET, REGION = "testing", "testing", "us-east-1"

UNSAFE_KEYS = [
    "",
    ".",
    "..",
    "../escape.webm",
    "calls/../../escape.webm",
    "calls/./a.webm",
    "/etc/passwd",
    "//server/share",
    "calls\\..\\escape.webm",
    "calls/a\x00.webm",
    "%2e%2e/escape.webm",
    "..%2fescape.webm",
    "calls/%2e%2e%2f%2e%2e%2fescape",
    "calls//a.webm",
    "calls/",
    ".hidden",
    "C:\\Windows\\win.ini",
    "calls/a b.webm",
    "a" * 600,
]


def raw_client(endpoint: str) -> S3Client:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name=REGION,
    )


def s3_storage(endpoint: str, prefix: str = "", max_attempts: int = 3) -> S3Storage:
    return S3Storage(
        BUCKET,
        endpoint,
        prefix=prefix,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        max_attempts=max_attempts,
    )


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = raw_client(endpoint)
        client.create_bucket(Bucket=BUCKET)
        client.close()
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RecordingStorage]:
    if request.param == "local":
        yield LocalDirectoryStorage(tmp_path / "store")
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    s3 = s3_storage(endpoint, prefix=f"t-{os.getpid()}-{id(tmp_path)}")
    yield s3
    await s3.aclose()
    await s3.aclose()  # safe twice


def make_file(path: Path, size: int) -> bytes:
    data = bytes((i * 31 + i // 251) % 256 for i in range(size))
    path.write_bytes(data)
    return data


async def test_put_read_size_delete(storage: RecordingStorage, tmp_path: Path) -> None:
    data = make_file(tmp_path / "alice.webm", 3 * CHUNK_SIZE + 123)
    key = "calls/call-1/alice.webm"
    assert await storage.exists(key) is False

    stored = await storage.put(key, tmp_path / "alice.webm")
    assert stored.key == key
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert await storage.exists(key) is True
    assert await storage.size(key) == len(data)

    async with await storage.open_range(key, 0) as whole:
        assert (whole.start, whole.end, whole.total_size) == (0, len(data) - 1, len(data))
        chunks = [chunk async for chunk in whole]
    assert len(chunks) > 1 and all(len(c) <= CHUNK_SIZE for c in chunks)
    assert b"".join(chunks) == data

    part = await storage.open_range(key, 100, 199)
    assert (part.start, part.end, part.length) == (100, 199, 100)
    assert await part.read() == data[100:200]

    await storage.delete(key)
    assert await storage.exists(key) is False
    await storage.delete(key)  # deleting twice is fine
    with pytest.raises(ObjectNotFoundError):
        await storage.size(key)
    with pytest.raises(ObjectNotFoundError):
        await storage.open_range(key, 0, 10)


async def test_range_reads_past_the_end(storage: RecordingStorage, tmp_path: Path) -> None:
    data = make_file(tmp_path / "bob.mp4", 1000)
    await storage.put("bob.mp4", tmp_path / "bob.mp4")

    tail = await storage.open_range("bob.mp4", 990, 5000)  # end clamps, like HTTP
    assert (tail.start, tail.end, tail.total_size) == (990, 999, 1000)
    assert await tail.read() == data[990:]

    last = await storage.open_range("bob.mp4", 999, 999)
    assert await last.read() == data[999:]

    for start in (1000, 1001, 10**9):
        with pytest.raises(RangeNotSatisfiableError) as excinfo:
            await storage.open_range("bob.mp4", start, start + 10)
        assert excinfo.value.size == 1000
    with pytest.raises(ValueError):
        await storage.open_range("bob.mp4", 10, 5)
    with pytest.raises(ValueError):
        await storage.open_range("bob.mp4", -1, 5)


async def test_stopping_early_closes_the_read(storage: RecordingStorage, tmp_path: Path) -> None:
    make_file(tmp_path / "long.webm", 4 * CHUNK_SIZE)
    await storage.put("long.webm", tmp_path / "long.webm")
    async with await storage.open_range("long.webm", 0) as read:
        async for chunk in read:
            assert chunk
            break
    await read.aclose()  # idempotent


@pytest.mark.parametrize("key", UNSAFE_KEYS)
async def test_unsafe_keys_are_refused(storage: RecordingStorage, tmp_path: Path, key: str) -> None:
    make_file(tmp_path / "x.webm", 10)
    with pytest.raises(UnsafeKeyError):
        await storage.put(key, tmp_path / "x.webm")
    with pytest.raises(UnsafeKeyError):
        await storage.open_range(key, 0, 1)
    with pytest.raises(UnsafeKeyError):
        await storage.size(key)
    with pytest.raises(UnsafeKeyError):
        await storage.delete(key)
    with pytest.raises(UnsafeKeyError):
        await storage.exists(key)
    assert not (tmp_path / "escape.webm").exists()


async def test_local_symlinks_out_of_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (outside / "secret.webm").write_bytes(b"not yours")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "evil.webm").symlink_to(outside / "secret.webm")
    make_file(tmp_path / "x.webm", 10)
    storage = LocalDirectoryStorage(root)

    for key in ("linked/secret.webm", "linked/new.webm", "evil.webm"):
        with pytest.raises(UnsafeKeyError):
            await storage.open_range(key, 0)
        with pytest.raises(UnsafeKeyError):
            await storage.put(key, tmp_path / "x.webm")
        with pytest.raises(UnsafeKeyError):
            await storage.delete(key)
        with pytest.raises(UnsafeKeyError):
            await storage.exists(key)
    assert (outside / "secret.webm").read_bytes() == b"not yours"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.webm"]


async def test_local_checksum_mismatch_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recorder.storage as storage_module

    make_file(tmp_path / "x.webm", 100)
    monkeypatch.setattr(storage_module, "_hash_file", lambda path: (100, "0" * 64))
    storage = LocalDirectoryStorage(tmp_path / "store")
    with pytest.raises(ChecksumMismatchError) as excinfo:
        await storage.put("calls/x.webm", tmp_path / "x.webm")
    assert excinfo.value.retryable is True
    assert list((tmp_path / "store").rglob("*.webm")) == []
    assert list((tmp_path / "store").rglob("*.upload")) == []


async def test_s3_stores_the_sha256_it_verified(moto_endpoint: str, tmp_path: Path) -> None:
    data = make_file(tmp_path / "a.webm", 5000)
    storage = s3_storage(moto_endpoint, prefix="verified")
    try:
        stored = await storage.put("a.webm", tmp_path / "a.webm")
    finally:
        await storage.aclose()
    client = raw_client(moto_endpoint)
    try:
        head = client.head_object(Bucket=BUCKET, Key="verified/a.webm", ChecksumMode="ENABLED")
    finally:
        client.close()
    assert head["ContentLength"] == len(data)
    assert head["Metadata"]["sha256"] == stored.sha256 == hashlib.sha256(data).hexdigest()
    assert head["ETag"].strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest()


async def test_s3_refuses_an_upload_that_does_not_match(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What was sent is not what the file holds (corruption between hashing and sending)."""
    import recorder.storage as storage_module

    data = make_file(tmp_path / "a.webm", 5000)
    real = storage_module._hash_file_for_upload

    def corrupted(path: Path) -> tuple[int, str, str]:
        size, _, _ = real(path)
        other = bytes(reversed(data))
        return (
            size,
            hashlib.sha256(other).hexdigest(),
            hashlib.md5(other, usedforsecurity=False).hexdigest(),
        )

    monkeypatch.setattr(storage_module, "_hash_file_for_upload", corrupted)
    storage = s3_storage(moto_endpoint, prefix="corrupt")
    try:
        with pytest.raises(StorageError):
            await storage.put("a.webm", tmp_path / "a.webm")
        assert await storage.exists("a.webm") is False
    finally:
        await storage.aclose()


async def test_s3_unreachable_is_a_retryable_storage_error(tmp_path: Path) -> None:
    make_file(tmp_path / "a.webm", 10)
    # A port nothing listens on (bound and closed by the OS for us): connection refused.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    storage = s3_storage(f"http://127.0.0.1:{port}", max_attempts=1)
    try:
        with pytest.raises(StorageError) as excinfo:
            await storage.exists("a.webm")
        assert excinfo.value.retryable is True
    finally:
        await storage.aclose()
