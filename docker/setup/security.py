"""One-shot set-up of the OpenSearch security plugin for docker/compose.yaml.

Writes, under ``OUT`` (the compose file mounts two volumes there)::

    OUT/certs/root-ca.pem                       the CA every client trusts (OPENSEARCH_CA_CERTS)
    OUT/certs/root-ca-key.pem                   kept for re-issuing, readable by root only
    OUT/certs/opensearch-node{1,2}.pem, -key.pem   node certificates (transport and HTTPS)
    OUT/certs/admin.pem, admin-key.pem          the admin certificate (securityadmin.sh)
    OUT/opensearch-security/*.yml               the security configuration, with
                                                internal_users.yml hashed from the passwords

Run as ``python security.py OUT [STATIC]``; STATIC is the folder of the static security
files (default: ``../opensearch/security`` beside this file). Passwords come from the
environment: OPENSEARCH_ADMIN_PASSWORD, OPENSEARCH_INDEXER_PASSWORD,
OPENSEARCH_DASHBOARDS_PASSWORD, OPENSEARCH_ANALYST_PASSWORD.

Runs again without harm: an existing CA and its certificates are kept (a new CA would
lock every client out); the security files are rewritten, but OpenSearch reads them only
when it creates its security index on first start. Exits 2 with one line naming the
variable when a password is missing or short.

Needs ``cryptography``, ``bcrypt`` and ``PyYAML``. Private keys are PKCS#8, as the
security plugin requires.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import sys
from pathlib import Path

import bcrypt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORGANIZATION = "transcript-indexer"
NODES = {
    # name → extra subject alternative names; node 1 is also published on the host.
    "opensearch-node1": ["localhost", "127.0.0.1"],
    "opensearch-node2": ["localhost", "127.0.0.1"],
}
OPENSEARCH_UID = 1000  # the user the OpenSearch image runs as
USERS = {
    # internal user → (password variable, description)
    "admin": ("OPENSEARCH_ADMIN_PASSWORD", "cluster administrator"),
    "transcript_indexer": ("OPENSEARCH_INDEXER_PASSWORD", "the worker: transcripts indices only"),
    "kibanaserver": ("OPENSEARCH_DASHBOARDS_PASSWORD", "OpenSearch Dashboards' server user"),
    "analyst": ("OPENSEARCH_ANALYST_PASSWORD", "reads transcripts in Dashboards"),
}
MIN_PASSWORD_LENGTH = 8
VALID_DAYS = 3650


def subject(common_name: str) -> x509.Name:
    """``CN=<common_name>,OU=transcript-indexer,O=transcript-indexer`` (RFC 4514 order)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(name: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def make_ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed CA certificate and its key."""
    key = _key()
    name = subject("transcript-indexer root CA")
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca: x509.Certificate, ca_key: rsa.RSAPrivateKey, common_name: str, names: list[str]
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A certificate for ``common_name`` signed by the CA, for TLS servers and clients.

    :param names: subject alternative names: DNS names, or IP addresses in dotted form.
    """
    key = _key()
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    builder = _builder(subject(common_name), ca.subject, key).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
        critical=False,
    )
    if alternatives:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write(path: Path, data: bytes, mode: int, owner: int | None) -> None:
    path.write_bytes(data)
    path.chmod(mode)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, owner, owner)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pkcs8(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_certificates(folder: Path) -> None:
    """The CA, one certificate per node and the admin certificate; keeps an existing CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_path, ca_key_path = folder / "root-ca.pem", folder / "root-ca-key.pem"
    if ca_path.exists() and ca_key_path.exists():
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        ca_key = loaded
    else:
        ca, ca_key = make_ca()
        _write(ca_key_path, _pkcs8(ca_key), 0o600, None)
        _write(ca_path, _pem(ca), 0o644, None)
    for name, extra in {**NODES, "admin": []}.items():
        if (folder / f"{name}.pem").exists() and (folder / f"{name}-key.pem").exists():
            continue
        cert, key = issue(ca, ca_key, name, [name, *extra] if name in NODES else [])
        _write(folder / f"{name}-key.pem", _pkcs8(key), 0o600, OPENSEARCH_UID)
        _write(folder / f"{name}.pem", _pem(cert), 0o644, OPENSEARCH_UID)


def internal_users(passwords: dict[str, str]) -> str:
    """``internal_users.yml`` with a bcrypt hash for every user of :data:`USERS`."""
    users: dict[str, object] = {"_meta": {"type": "internalusers", "config_version": 2}}
    for user, (_, description) in USERS.items():
        hashed = bcrypt.hashpw(passwords[user].encode(), bcrypt.gensalt(rounds=12)).decode()
        users[user] = {
            "hash": hashed,
            "reserved": user in ("admin", "kibanaserver"),
            "description": description,
        }
    return yaml.safe_dump(users, sort_keys=False)


def passwords_from(env: dict[str, str]) -> dict[str, str]:
    """The password of every user, from the environment.

    :raises SystemExit: (2) a variable is unset or shorter than 8 characters.
    """
    found = {}
    for user, (variable, _) in USERS.items():
        value = env.get(variable, "")
        if len(value) < MIN_PASSWORD_LENGTH:
            print(f"{variable} must be set to at least {MIN_PASSWORD_LENGTH} characters", file=sys.stderr)
            raise SystemExit(2)
        found[user] = value
    return found


def write_security_config(folder: Path, static: Path, passwords: dict[str, str]) -> None:
    """The static security files and a fresh ``internal_users.yml`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(static.glob("*.yml")):
        shutil.copyfile(path, folder / path.name)
        (folder / path.name).chmod(0o644)
    _write(folder / "internal_users.yml", internal_users(passwords).encode(), 0o600, OPENSEARCH_UID)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: security.py OUT [STATIC]", file=sys.stderr)
        return 2
    out = Path(argv[1])
    static = Path(argv[2]) if len(argv) == 3 else Path(__file__).parent.parent / "opensearch" / "security"
    passwords = passwords_from(dict(os.environ))
    write_certificates(out / "certs")
    write_security_config(out / "opensearch-security", static, passwords)
    print(f"security set-up written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
