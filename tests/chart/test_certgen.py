"""The certgen hook's certificates (charts/hami/files/certgen.py): kube-scheduler's client
certificate for the extender is clientAuth only, from a CA of its own, and is what the
extender's listener accepts (docs/security.md)."""

from __future__ import annotations

import importlib.util
import ssl
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from hami.scheduler.tls import ServerTLS

CERTGEN = Path(__file__).resolve().parents[2] / "charts" / "hami" / "files" / "certgen.py"
pytestmark = pytest.mark.security


def certgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("certgen", CERTGEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_client_certificate_is_client_auth_from_its_own_ca(tmp_path: Path) -> None:
    gen = certgen()
    client = gen.make_client_cert()
    serving = gen.make_certs(["hami-scheduler.ns.svc", "127.0.0.1"])
    cert = x509.load_pem_x509_certificate(client["tls.crt"])
    ca = x509.load_pem_x509_certificate(client["ca.crt"])
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.issuer == ca.subject
    assert ca.subject != x509.load_pem_x509_certificate(serving["ca.crt"]).subject
    # the extender listener's context (the chart's flags) loads them
    for name, data in {**serving, "client-ca.crt": client["ca.crt"]}.items():
        (tmp_path / name).write_bytes(data)
    tls = ServerTLS(tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "client-ca.crt")
    assert tls.context.verify_mode == ssl.CERT_OPTIONAL  # a missing one: 403 with the reason
