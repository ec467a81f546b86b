"""A real MLflow tracking server on 127.0.0.1 for tests: runs and registry in MariaDB, artefacts on S3.

The server proxies artefacts (`--serve-artifacts`), as in production: clients need no S3 credentials.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymysql

from tests.conftest import free_port
from tests.s3server import ACCESS_KEY, SECRET_KEY

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


@dataclass
class MlflowServer:
    url: str
    database: str
    process: subprocess.Popen

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def mariadb_available() -> str | None:
    """None when MariaDB on 127.0.0.1:3306 accepts root; otherwise why not."""
    try:
        pymysql.connect(**MARIADB, connect_timeout=3).close()
        return None
    except pymysql.MySQLError as error:
        return f"MariaDB on 127.0.0.1:3306 is not reachable as root: {error}"


@contextmanager
def mariadb_database():
    """A fresh database on the local MariaDB, dropped afterwards."""
    name = f"wms_mlflow_{uuid.uuid4().hex[:10]}"
    connection = pymysql.connect(**MARIADB, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        yield name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.close()


def start_mlflow_server(database: str, artifacts: str, s3_endpoint: str, folder: Path, timeout_s: float = 120.0) -> MlflowServer:
    """Start `mlflow server` on a free loopback port; return once /health answers."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        f"mysql+pymysql://root@127.0.0.1:3306/{database}",
        "--artifacts-destination",
        artifacts,
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "mlflow-server.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
    server = MlflowServer(f"http://127.0.0.1:{port}", database, process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}: see {folder / 'mlflow-server.log'}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    server.stop()
    raise RuntimeError(f"mlflow server did not answer within {timeout_s:.0f} s: see {folder / 'mlflow-server.log'}")
