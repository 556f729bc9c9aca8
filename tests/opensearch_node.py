"""A real OpenSearch node for the tests: fetched from Maven Central, run as a non-root user.

``python -m tests.opensearch_node fetch`` (what ``make opensearch`` and ``.ci/run`` call)
downloads, once, into ``build/opensearch/``:

- ``org.opensearch.distribution.integ-test-zip:opensearch:2.19.4`` (the runnable
  distribution OpenSearch publishes to Maven Central; no bundled JDK, runs on Java 17);
- ``org.opensearch.plugin:opensearch-job-scheduler:2.19.4.0`` and
  ``org.opensearch.plugin:opensearch-security:2.19.4.0``, installed into it.

and, when run as root, creates the system user ``osindexer`` that runs the node
(OpenSearch refuses to run as root). :func:`start_node` starts one node on loopback
with its data and logs in a given folder, plain HTTP with the security plugin disabled,
or with TLS and the project's own security configuration (``docker/opensearch/``,
certificates and users from ``docker/setup/security.py``).

Why 2.19.4: it is the newest version for which Maven Central (as reachable here) serves
the core distribution *and* the security and job-scheduler plugins; 3.x nodes need Java
21 and the security plugin is served only for 3.4.0, whose integ-test distribution lacks
the non-transport modules too. The index-management (ISM) plugin is not served for any
version (``make opensearch`` says so), so ISM is tested only against a cluster given by
``OPENSEARCH_TEST_URL`` that has it.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Final

import attrs
import httpx

ROOT: Final = Path(__file__).resolve().parent.parent
BUILD: Final = ROOT / "build" / "opensearch"
VERSION: Final = "2.19.4"
HOME: Final = BUILD / f"opensearch-{VERSION}"
ARTIFACTS: Final = {
    "core": f"org.opensearch.distribution.integ-test-zip:opensearch:{VERSION}:zip",
    "opensearch-job-scheduler": f"org.opensearch.plugin:opensearch-job-scheduler:{VERSION}.0:zip",
    "opensearch-security": f"org.opensearch.plugin:opensearch-security:{VERSION}.0:zip",
}
USER: Final = "osindexer"
READY_STAMP: Final = HOME / ".ready"
#: How to get a node, printed when a test that needs one is skipped.
HOW_TO: Final = (
    "no OpenSearch node: run `make opensearch` (needs Java 17 and Maven; fetches OpenSearch "
    f"{VERSION} from Maven Central) or set OPENSEARCH_TEST_URL to a cluster"
)


def java_home() -> Path | None:
    """A Java 11 to 21 home for OpenSearch 2.19 (``OPENSEARCH_JAVA_HOME``, ``JAVA_HOME``, or found)."""
    candidates = [os.environ.get("OPENSEARCH_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    candidates += [str(p) for p in sorted(Path("/usr/lib/jvm").glob("java-17-openjdk*"))]
    candidates += [str(p) for p in sorted(Path("/usr/lib/jvm").glob("*-21-*"))]
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "java").exists():
            return Path(candidate)
    return None


def available() -> bool:
    """The distribution is fetched and unpacked, and a Java to run it is present."""
    return READY_STAMP.exists() and java_home() is not None


def _run(*command: str, **kwargs: object) -> None:
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def fetch() -> int:
    """Download, unpack and prepare the distribution (once); 0 on success, 2 when a tool is missing."""
    if READY_STAMP.exists():
        print(f"OpenSearch {VERSION}: ready in {HOME.relative_to(ROOT)}")
        return 0
    if shutil.which("mvn") is None or java_home() is None:
        print(f"make opensearch: needs Maven (mvn) and Java 17 on PATH; {HOW_TO}", file=sys.stderr)
        return 2
    zips = BUILD / "zips"
    zips.mkdir(parents=True, exist_ok=True)
    for artifact in ARTIFACTS.values():
        _run(
            "mvn", "-q", "-B", "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
            f"-Dartifact={artifact}", f"-DoutputDirectory={zips}",
        )  # fmt: skip
    if HOME.exists():
        shutil.rmtree(HOME)
    with zipfile.ZipFile(zips / f"opensearch-{VERSION}.zip") as archive:
        archive.extractall(BUILD)
    for path in (HOME / "bin").iterdir():
        path.chmod(0o755)
    env = {**os.environ, "OPENSEARCH_JAVA_HOME": str(java_home())}
    for name in ("opensearch-job-scheduler", "opensearch-security"):
        plugin = zips / f"{name}-{VERSION}.0.zip"
        _run(str(HOME / "bin" / "opensearch-plugin"), "install", "--batch", plugin.as_uri(), env=env)
    if os.geteuid() == 0:
        if subprocess.run(["id", USER], capture_output=True).returncode != 0:
            _run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER)
        _run("chown", "-R", f"{USER}:", str(HOME))
    READY_STAMP.touch()
    print(f"OpenSearch {VERSION} with job-scheduler and security: ready in {HOME.relative_to(ROOT)}")
    print(
        "the index-management (ISM) plugin is not on Maven Central here: ISM tests need OPENSEARCH_TEST_URL"
    )
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@attrs.define
class Node:
    """One running node: its URL, its folder (data, logs, config) and its process."""

    url: str
    folder: Path
    process: subprocess.Popen[bytes]
    #: TLS: the CA to trust and the users' passwords; ``None`` for a plain node.
    ca_certs: Path | None = None
    passwords: dict[str, str] = attrs.field(factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the node's log, for a failure message."""
        logs = sorted((self.folder / "logs").glob("*.log"))
        text = logs[0].read_text(errors="replace") if logs else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _config_dir(folder: Path, secured: bool) -> Path:
    """A config folder for one node: the distribution's, plus the security set-up if asked."""
    config = folder / "config"
    shutil.copytree(HOME / "config", config)
    settings = [
        "cluster.name: transcript-indexer-tests",
        "discovery.type: single-node",
        "network.host: 127.0.0.1",
        "action.auto_create_index: true",
    ]
    if not secured:
        settings.append("plugins.security.disabled: true")
    else:
        shutil.copytree(
            config / "opensearch-security", config / "opensearch-security.dist", dirs_exist_ok=True
        )
        docker = (ROOT / "docker" / "opensearch" / "opensearch.yml").read_text()
        settings += [
            line
            for line in docker.splitlines()
            if line.strip() and not line.startswith(("network.host", "cluster.name", "#"))
        ]
        settings += [
            "plugins.security.ssl.transport.pemcert_filepath: certs/opensearch-node1.pem",
            "plugins.security.ssl.transport.pemkey_filepath: certs/opensearch-node1-key.pem",
            "plugins.security.ssl.http.pemcert_filepath: certs/opensearch-node1.pem",
            "plugins.security.ssl.http.pemkey_filepath: certs/opensearch-node1-key.pem",
        ]
    (config / "opensearch.yml").write_text("\n".join(settings) + "\n")
    return config


def start_node(folder: Path, *, secured: bool = False, passwords: dict[str, str] | None = None) -> Node:
    """Start a node with its data, logs and config in ``folder``; returns once it answers.

    :param secured: TLS on HTTP and transport and the security plugin configured from
        ``docker/opensearch/security`` with ``passwords`` (the variables of
        ``docker/setup/security.py``).
    :raises RuntimeError: the node did not answer within 120 s (the log's end attached).
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = _config_dir(folder, secured)
    if secured:
        env = {**os.environ, **(passwords or {})}
        _run(
            sys.executable, str(ROOT / "docker" / "setup" / "security.py"), str(config),
            str(ROOT / "docker" / "opensearch" / "security"), env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    (folder / "data").mkdir(exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    port = free_port()
    command = [
        str(HOME / "bin" / "opensearch"),
        f"-Ehttp.port={port}", f"-Etransport.port={free_port()}",
        f"-Epath.data={folder / 'data'}", f"-Epath.logs={folder / 'logs'}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        _run("chown", "-R", f"{USER}:", str(folder))
        folder.chmod(0o755)
        command = ["runuser", "-u", USER, "--", *command]
    env = {
        **os.environ,
        "OPENSEARCH_JAVA_HOME": str(java_home()),
        "OPENSEARCH_PATH_CONF": str(config),
        "OPENSEARCH_JAVA_OPTS": "-Xms512m -Xmx512m",
    }
    with (folder / "stdout.log").open("wb") as stdout:
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.STDOUT)
    scheme = "https" if secured else "http"
    node = Node(
        f"{scheme}://127.0.0.1:{port}",
        folder,
        process,
        ca_certs=config / "certs" / "root-ca.pem" if secured else None,
        passwords=dict(passwords or {}),
    )
    auth = ("admin", node.passwords["OPENSEARCH_ADMIN_PASSWORD"]) if secured else None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            answer = httpx.get(
                f"{node.url}/_cluster/health",
                auth=auth,
                verify=ssl.create_default_context(cafile=node.ca_certs) if node.ca_certs else True,
                timeout=2,
            )
            if answer.status_code == 200 and answer.json()["status"] in ("green", "yellow"):
                return node
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    node.stop()
    stdout = (folder / "stdout.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"OpenSearch did not start in {folder}:\n{stdout}\n{node.log_tail()}")


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m tests.opensearch_node fetch")
    sys.exit(fetch())
