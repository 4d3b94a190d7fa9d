"""The county CA and the client certificates of department systems (mutual TLS on 5671).

Department systems reach the bus from outside the cluster, over TLS with a client
certificate the county CA signed: the broker refuses the TLS handshake without one
(`ssl_options.fail_if_no_peer_cert = true`), and the department then logs in with its own
bus user and password (PLAIN, inside TLS) — the certificate says the system belongs to the
county, the password which department it is. Each certificate's CN is the department's bus
username, so a county may later switch to EXTERNAL (certificate-only) login.

Locally `onegrid tenant certs` issues them from a CA folder (ca.pem + ca.key, as
scripts/ensure-services.sh makes for the local broker); in Kubernetes cert-manager issues
them from the same kind of CA (deploy/k8s/platform/tls.yaml, rendered by k8s.py).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from onegrid.operator import k8s

CA_CERT, CA_KEY = "ca.pem", "ca.key"
CLIENT_DAYS = 397  # what browsers allow a leaf; a county renews yearly


class CAError(Exception):
    """The CA folder is missing, unreadable or holds no CA."""


@dataclass(frozen=True)
class CountyCA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Issued:
    """One department's certificate; `key_pem` is shown once and kept nowhere by OneGrid."""

    department: str
    common_name: str
    cert_pem: str
    key_pem: str
    ca_pem: str
    not_after: dt.datetime


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def make_ca(common_name: str, days: int = 3650, now: dt.datetime | None = None) -> CountyCA:
    """A new self-signed CA (P-256), for a county that has none."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name, "OneGrid")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CountyCA(cert, key)


def load_ca(folder: str | Path) -> CountyCA:
    folder = Path(folder)
    try:
        cert = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), password=None)
    except OSError as e:
        raise CAError(f"no county CA in {folder} ({e.strerror}: {e.filename}); make one with --init-ca") from e
    except ValueError as e:
        raise CAError(f"{folder}: {CA_CERT}/{CA_KEY} are not a PEM certificate and an unencrypted key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) and not hasattr(key, "sign"):
        raise CAError(f"{folder}/{CA_KEY}: not a signing key")
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if not constraints.ca:
        raise CAError(f"{folder}/{CA_CERT} is not a CA certificate (basicConstraints CA:FALSE)")
    return CountyCA(cert, key)  # type: ignore[arg-type]


def save_ca(ca: CountyCA, folder: str | Path) -> list[Path]:
    """Write ca.pem (public) and ca.key (0600); refuses to overwrite an existing CA."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if cert_path.exists() or key_path.exists():
        raise CAError(f"{folder} already holds a CA: every department certificate depends on it, so it is kept")
    key_pem = ca.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    cert_path.write_text(ca.pem, encoding="utf-8")
    return [cert_path, key_path]


def issue(
    ca: CountyCA, common_name: str, department: str, org: str, days: int = CLIENT_DAYS, now: dt.datetime | None = None
) -> Issued:
    """A client certificate (clientAuth only) for one department's systems, a fresh key."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = now + dt.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, org))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )  # digitalSignature
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Issued(
        department, common_name, cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem, ca.pem, not_after
    )


def write_issued(issued: Issued, folder: str | Path) -> list[Path]:
    """<department>.pem, <department>.key (0600) and ca.pem for the department's system."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key, ca = folder / f"{issued.department}.pem", folder / f"{issued.department}.key", folder / "ca.pem"
    cert.write_text(issued.cert_pem, encoding="utf-8")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(issued.key_pem)
    os.chmod(key, 0o600)
    ca.write_text(issued.ca_pem, encoding="utf-8")
    return [cert, key, ca]


def tls_secret(issued: Issued, namespace: str, tenant_id: str) -> dict:
    """The certificate as a `kubernetes.io/tls` Secret (tls.crt, tls.key, ca.crt), the shape
    cert-manager gives the Certificates deploy/k8s renders."""
    return k8s.secret(
        "dept-" + issued.department.replace("_", "-") + "-tls",  # DNS-1123: no `_`
        namespace,
        tenant_id,
        {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem, "ca.crt": issued.ca_pem},
        kind="kubernetes.io/tls",
    )
