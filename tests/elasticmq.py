"""ElasticMQ, an SQS-compatible server (Scala), for the SQS load test: fetched from Maven
Central into ``build/elasticmq/`` and run with a classpath (its fat jar is not on Maven
Central), bound to 127.0.0.1 only. Much faster than moto's server (thousands of messages
a second against tens), which the functional tests use because it installs with pip.

``python -m tests.elasticmq fetch`` downloads it once (Maven; about 37 MB).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import httpx

from tests.test_run_command import free_port

__all__ = ["HOME", "available", "fetch", "start"]

HOME: Final = Path(__file__).resolve().parents[1] / "build" / "elasticmq"
VERSION: Final = "1.7.1"
POM: Final = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.test</groupId>
  <artifactId>elasticmq-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.elasticmq</groupId>
      <artifactId>elasticmq-server_2.13</artifactId>
      <version>{VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""
#: The jar's own ``application.conf`` (request timeouts longer than a 20 s long poll) is
#: included; the SQS API binds 127.0.0.1 (the default is every interface).
CONFIG: Final = """include classpath("application.conf")
node-address { protocol = "http", host = "127.0.0.1", port = 9324, context-path = "" }
rest-sqs { enabled = true, bind-port = 9324, bind-hostname = "127.0.0.1", sqs-limits = strict }
generate-node-address = false
aws { region = "us-east-1", accountId = "000000000000" }
"""


def available() -> bool:
    return (HOME / "lib").is_dir() and any((HOME / "lib").glob("elasticmq-server_2.13-*.jar"))


def fetch() -> None:
    """Download ElasticMQ and its dependencies with Maven (once)."""
    if available():
        return
    HOME.mkdir(parents=True, exist_ok=True)
    (HOME / "pom.xml").write_text(POM)
    (HOME / "elasticmq.conf").write_text(CONFIG)
    subprocess.run(
        ["mvn", "-B", "-q", "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
         "-DincludeScope=runtime", "-DoutputDirectory=lib"],
        cwd=HOME, check=True,
    )  # fmt: skip


@contextmanager
def start() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A running ElasticMQ on a free loopback port: yields its endpoint URL and process."""
    if not available():
        raise RuntimeError("ElasticMQ is not fetched: python -m tests.elasticmq fetch")
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("java") or "java", "-Xms64m", "-Xmx256m", f"-Dconfig.file={HOME / 'elasticmq.conf'}",
         f"-Drest-sqs.bind-port={port}", f"-Dnode-address.port={port}", "-cp", str(HOME / "lib" / "*"),
         "org.elasticmq.server.Main"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(url)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, process
    finally:
        if process.returncode is None:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    if sys.argv[1:] == ["fetch"]:
        fetch()
        print(f"ElasticMQ {VERSION} in {HOME}")
    else:
        sys.exit("usage: python -m tests.elasticmq fetch")
