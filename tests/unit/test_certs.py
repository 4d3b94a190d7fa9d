"""The county CA and department client certificates (onegrid.operator.certs), and
`onegrid tenant certs`' answers to bad input. The TLS handshake itself is
tests/integration/test_bus_tls.py, on the real broker."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from onegrid.cli.main import main as cli
from onegrid.operator import certs


def test_a_department_certificate_is_signed_by_the_county_ca_for_client_auth_only(tmp_path):
    ca = certs.make_ca("test county CA")
    issued = certs.issue(ca, "county-x.health", "health", "county-x", days=30)
    cert = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "county-x.health"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "county-x"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert 29 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 30
    cert_path, key_path, ca_path = certs.write_issued(issued, tmp_path)
    assert key_path.stat().st_mode & 0o777 == 0o600 and ca_path.read_text() == ca.pem


def test_a_saved_ca_loads_and_is_never_overwritten(tmp_path):
    ca = certs.make_ca("test county CA")
    certs.save_ca(ca, tmp_path)
    assert (tmp_path / certs.CA_KEY).stat().st_mode & 0o777 == 0o600
    assert certs.load_ca(tmp_path).cert == ca.cert
    with pytest.raises(certs.CAError, match="already holds a CA"):
        certs.save_ca(certs.make_ca("another"), tmp_path)


def test_a_missing_or_non_ca_folder_is_a_clear_error(tmp_path):
    with pytest.raises(certs.CAError, match="no county CA"):
        certs.load_ca(tmp_path / "nowhere")
    leaf = certs.issue(certs.make_ca("x"), "a.b", "b", "a")
    (tmp_path / certs.CA_CERT).write_text(leaf.cert_pem)
    (tmp_path / certs.CA_KEY).write_text(leaf.key_pem)
    with pytest.raises(certs.CAError, match="not a CA certificate"):
        certs.load_ca(tmp_path)


def test_the_command_refuses_an_unknown_department_and_a_missing_ca(tmp_path, capsys):
    assert cli(["tenant", "certs", "suining-jincheng", "--department", "nosuch", "--ca-dir", str(tmp_path)]) == 2
    assert "has no department nosuch" in capsys.readouterr().err
    assert cli(["tenant", "certs", "suining-jincheng", "--ca-dir", str(tmp_path / "none")]) == 2
    assert "no county CA" in capsys.readouterr().err


def test_the_command_prints_tls_secrets_with_dns_names(tmp_path, capsys):
    import yaml

    args = ["tenant", "certs", "suining-jincheng", "--department", "market_regulation", "--ca-dir", str(tmp_path)]
    assert cli([*args, "--init-ca"]) == 0
    (secret,) = list(yaml.safe_load_all(capsys.readouterr().out))
    assert secret["type"] == "kubernetes.io/tls" and secret["metadata"]["name"] == "dept-market-regulation-tls"
    assert secret["metadata"]["namespace"] == "onegrid-suining-jincheng"
    assert set(secret["stringData"]) == {"tls.crt", "tls.key", "ca.crt"}
