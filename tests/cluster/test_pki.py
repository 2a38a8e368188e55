from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hami.cluster.pki import write_cluster_pki, write_serving_cert


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)}
    return ips, set(ext.get_values_for_type(x509.DNSName))


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_ca_is_a_ca_and_signs_the_leaves(tmp_path: Path) -> None:
    pki = write_cluster_pki(tmp_path)
    ca = _load(pki.ca.cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in (pki.apiserver.cert, pki.admin.cert):
        _load(leaf).verify_directly_issued_by(ca)


def test_apiserver_cert_serves_loopback(tmp_path: Path) -> None:
    cert = _load(write_cluster_pki(tmp_path).apiserver.cert)
    ips, dns = _sans(cert)
    assert {"127.0.0.1", "10.0.0.1"} <= ips
    assert {"localhost", "kubernetes.default.svc"} <= dns
    assert _eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_admin_cert_is_a_system_masters_client(tmp_path: Path) -> None:
    cert = _load(write_cluster_pki(tmp_path).admin.cert)
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_private_keys_are_owner_only(tmp_path: Path) -> None:
    pki = write_cluster_pki(tmp_path)
    for key in (pki.ca.key, pki.apiserver.key, pki.admin.key, pki.service_account_key):
        assert key.stat().st_mode & 0o777 == 0o600
    assert b"PUBLIC KEY" in pki.service_account_pub.read_bytes()


def test_webhook_serving_cert_is_signed_by_the_cluster_ca(tmp_path: Path) -> None:
    pki = write_cluster_pki(tmp_path / "pki")
    pair = write_serving_cert(pki.ca, tmp_path / "webhook", "webhook", dns_names=("localhost",))
    cert = _load(pair.cert)
    cert.verify_directly_issued_by(_load(pki.ca.cert))
    ips, dns = _sans(cert)
    assert ips == {"127.0.0.1"} and dns == {"localhost"}


def test_mutual_tls_handshake_with_the_generated_files(tmp_path: Path) -> None:
    pki = write_cluster_pki(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki.apiserver.cert, pki.apiserver.key)
    server_ctx.load_verify_locations(pki.ca.cert)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    client_ctx.load_cert_chain(pki.admin.cert, pki.admin.key)
    peer: dict[str, object] = {}

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                peer.update(tls.getpeercert() or {})

        thread = threading.Thread(target=accept)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.do_handshake()
        thread.join(timeout=10)
    assert (("organizationName", "system:masters"),) in peer["subject"]  # type: ignore[operator]
