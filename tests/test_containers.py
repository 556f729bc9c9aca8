"""docker/: the Dockerfile, the compose files and the security set-up, validated here.

No container engine runs on the development machines or in CI, so the images are not
built and the cluster does not start. What can be checked without one is: hadolint on
the Dockerfile, the compose files against the Compose Specification's JSON schema, every
file and variable they refer to, the security set-up script run for real (certificates
verified as TLS peers verify them, password hashes checked), the security configuration
against what the worker does, and the Dashboards saved objects against the index template.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import trio
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from indexer.errors import SinkError
from indexer.schemas import load_schema
from indexer_opensearch import DEFAULT_ALIAS, OpenSearchSink
from tests.harness import relay

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent
PASSWORDS = {
    "OPENSEARCH_ADMIN_PASSWORD": "Admin-pw-1!",
    "OPENSEARCH_INDEXER_PASSWORD": "Indexer-pw-2!",
    "OPENSEARCH_DASHBOARDS_PASSWORD": "Dashboards-pw-3!",
    "OPENSEARCH_ANALYST_PASSWORD": "Analyst-pw-4!",
}


def _compose(name: str = "compose.yaml") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / name).read_text())
    return data


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert path, f"{name} is not installed (dev extra)"
    return path


def test_hadolint_passes_the_dockerfile() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(DOCKER / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_numeric_non_root_user_and_installs_every_plugin() -> None:
    lines = (DOCKER / "Dockerfile").read_text().splitlines()
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    users = [line.split()[1] for line in final_stage if line.startswith("USER ")]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    # Every COPY source exists, and the wheel step takes every plugin folder.
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    (wheel,) = [line for line in lines if "pip wheel" in line]
    assert "plugins/*/" in wheel
    assert all((p / "pyproject.toml").exists() for p in (ROOT / "plugins").iterdir() if p.is_dir())
    # The health check asks the port the endpoints listen on.
    listen = re.search(r"INDEXER_HTTP_LISTEN=0\.0\.0\.0:(\d+)", "\n".join(lines))
    assert listen
    assert f"127.0.0.1:{listen.group(1)}/healthz" in "\n".join(lines)
    assert f"EXPOSE {listen.group(1)}" in lines


@pytest.mark.parametrize("name", ["compose.yaml", "compose.scale.yaml"])
def test_compose_files_follow_the_compose_specification(name: str, tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        command = [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    result = check(DOCKER / name)
    assert result.returncode == 0, result.stdout + result.stderr
    # The check can fail: a misspelt key is caught.
    broken = tmp_path / name
    broken.write_text((DOCKER / name).read_text().replace("environment:", "enviroment:", 1))
    assert check(broken).returncode != 0


def test_compose_refers_only_to_files_services_and_variables_that_exist() -> None:
    compose = _compose()
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} mounts undeclared volume {source}"
    documented = set(re.findall(r"^#?\s*([A-Z_]+)=", (DOCKER / "example.env").read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z_]+)", (DOCKER / "compose.yaml").read_text()))
    assert used - documented <= {"GENESYS_API_BASE_URL", "GENESYS_LOGIN_BASE_URL", "INDEXER_SHARD",
                                 "INDEXER_VERSION"}  # fmt: skip
    # Every variable given to the worker is one the worker reads.
    sources = "\n".join(
        p.read_text() for p in [*ROOT.glob("indexer/**/*.py"), *ROOT.glob("plugins/*/*/*.py")]
    )
    for variable in services["worker"]["environment"]:
        assert f'"{variable}"' in sources, f"the worker does not read {variable}"
    emulator_env = dict(
        line.split("=", 1) for line in (DOCKER / "emulator.env").read_text().splitlines() if "=" in line
    )
    assert set(emulator_env) <= set(services["worker"]["environment"])
    assert emulator_env["GENESYS_API_BASE_URL"] in " ".join(services["emulator"]["command"])


def test_the_cluster_has_two_nodes_with_tls_and_the_worker_verifies_it() -> None:
    services = _compose()["services"]
    nodes = {name: s for name, s in services.items() if name.startswith("opensearch-node")}
    assert len(nodes) == 2
    settings = yaml.safe_load((DOCKER / "opensearch" / "opensearch.yml").read_text())
    assert settings["plugins.security.ssl.http.enabled"] is True
    assert settings["plugins.security.ssl.transport.enforce_hostname_verification"] is True
    for name, node in nodes.items():
        environment = node["environment"]
        assert environment["node.name"] == name
        assert "DISABLE_SECURITY_PLUGIN" not in environment
        assert set(environment["discovery.seed_hosts"].split(",")) == set(nodes)
        assert environment["plugins.security.ssl.http.pemcert_filepath"] == f"certs/{name}.pem"
    worker = services["worker"]["environment"]
    assert worker["OPENSEARCH_URL"].startswith("https://")
    assert worker["OPENSEARCH_CA_CERTS"] == "/certs/root-ca.pem"
    assert worker["OPENSEARCH_USERNAME"] == "transcript_indexer"
    assert "emulator" in services["emulator"]["profiles"]
    scale = _compose("compose.scale.yaml")["services"]
    assert {
        scale["worker"]["environment"]["INDEXER_SHARD"],
        scale["worker-2"]["environment"]["INDEXER_SHARD"],
    } == {
        "0/2",
        "1/2",
    }


@pytest.fixture(scope="module")
def security(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docker/setup/security.py run for real into a temporary folder."""
    out = tmp_path_factory.mktemp("security")
    env = {**os.environ, **PASSWORDS}
    script = str(DOCKER / "setup" / "security.py")
    subprocess.run([sys.executable, script, str(out)], env=env, check=True, capture_output=True)
    return out


def test_setup_refuses_a_missing_password(tmp_path: Path) -> None:
    env = {**os.environ, **PASSWORDS, "OPENSEARCH_INDEXER_PASSWORD": ""}
    script = str(DOCKER / "setup" / "security.py")
    result = subprocess.run([sys.executable, script, str(tmp_path)], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "OPENSEARCH_INDEXER_PASSWORD must be set to at least 8 characters"
    assert not (tmp_path / "certs").exists()


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_setup_issues_node_certificates_that_tls_peers_accept(security: Path) -> None:
    certs = security / "certs"
    ca = _cert(certs / "root-ca.pem")
    settings = yaml.safe_load((DOCKER / "opensearch" / "opensearch.yml").read_text())
    for node in ("opensearch-node1", "opensearch-node2"):
        cert = _cert(certs / f"{node}.pem")
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert node in names.get_values_for_type(x509.DNSName)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
        dn = cert.subject.rfc4514_string()
        assert any(fnmatch.fnmatchcase(dn, p) for p in settings["plugins.security.nodes_dn"]), dn
        key = (certs / f"{node}-key.pem").read_bytes()
        assert key.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as the plugin requires
        assert (certs / f"{node}-key.pem").stat().st_mode & 0o077 == 0
        # A TLS client trusting only the CA accepts the node's certificate for its name.
        context = ssl.create_default_context(cafile=str(certs / "root-ca.pem"))
        context.load_cert_chain(certs / f"{node}.pem", certs / f"{node}-key.pem")
    admin = _cert(certs / "admin.pem")
    admin.verify_directly_issued_by(ca)
    assert admin.subject.rfc4514_string() in settings["plugins.security.authcz.admin_dn"]
    assert (certs / "root-ca-key.pem").stat().st_mode & 0o077 == 0


def test_setup_runs_again_without_replacing_the_ca(security: Path) -> None:
    before = (security / "certs" / "root-ca.pem").read_bytes()
    env = {**os.environ, **PASSWORDS}
    script = str(DOCKER / "setup" / "security.py")
    subprocess.run([sys.executable, script, str(security)], env=env, check=True, capture_output=True)
    assert (security / "certs" / "root-ca.pem").read_bytes() == before
    key = serialization.load_pem_private_key((security / "certs" / "root-ca-key.pem").read_bytes(), None)
    assert key.public_key() == _cert(security / "certs" / "root-ca.pem").public_key()


def test_setup_writes_the_security_configuration_with_hashed_passwords(security: Path) -> None:
    folder = security / "opensearch-security"
    types = {
        "config.yml": "config",
        "roles.yml": "roles",
        "roles_mapping.yml": "rolesmapping",
        "internal_users.yml": "internalusers",
        "action_groups.yml": "actiongroups",
        "tenants.yml": "tenants",
        "nodes_dn.yml": "nodesdn",
        "allowlist.yml": "allowlist",
    }
    files = {name: yaml.safe_load((folder / name).read_text()) for name in types}
    for name, kind in types.items():
        assert files[name]["_meta"] == {"type": kind, "config_version": 2}, name
    users = files["internal_users.yml"]
    by_user = {
        "admin": "OPENSEARCH_ADMIN_PASSWORD",
        "transcript_indexer": "OPENSEARCH_INDEXER_PASSWORD",
        "kibanaserver": "OPENSEARCH_DASHBOARDS_PASSWORD",
        "analyst": "OPENSEARCH_ANALYST_PASSWORD",
    }
    for user, variable in by_user.items():
        assert bcrypt.checkpw(PASSWORDS[variable].encode(), users[user]["hash"].encode()), user
    text = (folder / "internal_users.yml").read_text()
    assert not any(p in text for p in PASSWORDS.values())
    static_roles = {"all_access", "kibana_server", "kibana_user"}
    mapping = files["roles_mapping.yml"]
    for role, entry in mapping.items():
        if role == "_meta":
            continue
        assert role in files["roles.yml"] or role in static_roles, role
        assert set(entry["users"]) <= set(users) - {"_meta"}


def test_the_worker_role_covers_the_alias_and_nothing_else() -> None:
    roles = yaml.safe_load((DOCKER / "opensearch" / "security" / "roles.yml").read_text())
    role = roles["transcript_indexer"]
    (grant,) = role["index_permissions"]
    patterns = grant["index_patterns"]
    for index in (DEFAULT_ALIAS, f"{DEFAULT_ALIAS}-000001", OpenSearchSink(url="x").audit_index):
        assert any(fnmatch.fnmatchcase(index, p) for p in patterns), index
    assert "*" not in patterns and not any(p.startswith(".") for p in patterns)
    assert not {"indices_all", "unlimited", "manage"} & set(grant["allowed_actions"])
    assert not {"cluster_all", "cluster_manage"} & set(role["cluster_permissions"])
    analyst = roles["transcript_analyst"]["index_permissions"]
    assert [g["allowed_actions"] for g in analyst] == [["read"]]
    assert not any(fnmatch.fnmatchcase("transcripts_audit", p) for g in analyst for p in g["index_patterns"])


def test_dashboards_saved_objects_match_the_index_template() -> None:
    mappings = load_schema("index-template.json")["template"]["mappings"]["properties"]

    def field_type(path: str) -> str | None:
        node: dict[str, Any] = {"properties": mappings}
        for part in path.split("."):
            node = node.get("properties", {}).get(part, {})
        return node.get("type", "object" if "properties" in node else None)

    objects = [
        json.loads(line) for line in (DOCKER / "dashboards" / "saved-objects.ndjson").read_text().splitlines()
    ]
    patterns = {o["id"]: o for o in objects if o["type"] == "index-pattern"}
    (pattern,) = patterns.values()
    assert pattern["attributes"]["title"] == DEFAULT_ALIAS
    assert field_type(pattern["attributes"]["timeFieldName"]) == "date"
    searches = [o for o in objects if o["type"] == "search"]
    assert {s["attributes"]["title"] for s in searches} >= {"Transcripts"}
    for search in searches:
        for column in search["attributes"]["columns"]:
            assert field_type(column) is not None, column
        source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        (reference,) = [r for r in search["references"] if r["name"] == source["indexRefName"]]
        assert reference["id"] in patterns
    dashboards = yaml.safe_load((DOCKER / "dashboards" / "opensearch_dashboards.yml").read_text())
    assert dashboards["opensearch.ssl.verificationMode"] == "full"
    assert dashboards["opensearch.password"] == "${OPENSEARCH_DASHBOARDS_PASSWORD}"


class TlsProxy:
    """Terminates TLS with a node certificate from the set-up and forwards to osmem."""

    def __init__(self, certs: Path, target: str) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(certs / "opensearch-node1.pem", certs / "opensearch-node1-key.pem")
        self.host, port = target.removeprefix("http://").split(":")
        self.port = int(port)

    async def handle(self, downstream: trio.SSLStream[trio.SocketStream]) -> None:
        try:
            upstream = await trio.open_tcp_stream(self.host, self.port)
            async with downstream, upstream:
                await relay(downstream, upstream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client refused our certificate


async def test_the_sink_verifies_tls_with_the_ca_bundle(
    security: Path, opensearch_url: str, nursery: trio.Nursery
) -> None:
    proxy = TlsProxy(security / "certs", opensearch_url)
    listeners = await nursery.start(trio.serve_ssl_over_tcp, proxy.handle, 0, proxy.context)
    port = listeners[0].transport_listener.socket.getsockname()[1]
    url = f"https://localhost:{port}"

    trusted = OpenSearchSink(url=url, alias="tls", ca_certs=str(security / "certs" / "root-ca.pem"))
    await trusted.open()
    assert trusted._installed
    await trusted.aclose()

    untrusted = OpenSearchSink(url=url, alias="tls", retry_timeout_s=1)
    with pytest.raises(SinkError) as caught:
        await untrusted._ensure_installed()
    message = str(caught.value)
    assert "TLS verification failed" in message and "OPENSEARCH_CA_CERTS" in message
    assert "\n" not in message
    await untrusted.aclose()
