"""Test PKI for the local control plane, made with ``cryptography``.

One CA signs everything: the kube-apiserver serving certificate, the admin client certificate
(group ``system:masters``, which RBAC lets do anything) and any serving certificate a later
component needs (the admission webhook, via :func:`write_serving_cert`). The service-account
token signing key is a separate RSA pair, as kube-apiserver requires.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = timedelta(days=3650)
LEAF_LIFETIME = timedelta(days=365)
CLOCK_SKEW = timedelta(hours=1)
APISERVER_IPS = ("127.0.0.1", "10.0.0.1")
APISERVER_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True, slots=True)
class CertPair:
    """Paths of a PEM certificate and its PEM private key."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class ClusterPki:
    """Every file the control plane needs, under one directory."""

    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    service_account_key: Path
    service_account_pub: Path


class CertificateAuthority:
    """A CA certificate with its key, able to issue leaf certificates."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def create(cls, common_name: str = "hami-local-ca") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            _base_builder(name, key.public_key(), CA_LIFETIME)
            .issuer_name(name)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        return cls(builder.sign(key, hashes.SHA256()), key)

    @classmethod
    def load(cls, pair: CertPair) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{pair.key}: expected an EC private key for the CA")
        return cls(cert, key)

    def write(self, directory: Path, name: str = "ca") -> CertPair:
        return _write_pair(directory, name, self.cert, self.key)

    def issue(
        self,
        common_name: str,
        *,
        server: bool,
        organizations: Sequence[str] = (),
        ips: Sequence[str] = (),
        dns_names: Sequence[str] = (),
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Issue a leaf certificate: serverAuth with SANs, or clientAuth with groups (O=)."""
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _base_builder(x509.Name(attrs), key.public_key(), LEAF_LIFETIME)
            .issuer_name(self.cert.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        sans = _subject_alt_names(ips, dns_names)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key


def write_cluster_pki(directory: Path) -> ClusterPki:
    """Create the CA, apiserver, admin and service-account files under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create()
    server_cert, server_key = ca.issue(
        "kube-apiserver", server=True, ips=APISERVER_IPS, dns_names=APISERVER_DNS
    )
    admin_cert, admin_key = ca.issue("admin", server=False, organizations=("system:masters",))
    sa_key, sa_pub = _write_service_account_keys(directory)
    return ClusterPki(
        ca=ca.write(directory),
        apiserver=_write_pair(directory, "apiserver", server_cert, server_key),
        admin=_write_pair(directory, "admin", admin_cert, admin_key),
        service_account_key=sa_key,
        service_account_pub=sa_pub,
    )


def write_serving_cert(
    ca: CertPair,
    directory: Path,
    name: str,
    *,
    ips: Sequence[str] = ("127.0.0.1",),
    dns_names: Sequence[str] = ("localhost",),
) -> CertPair:
    """Issue a serving certificate (e.g. for an admission webhook) signed by the cluster CA.

    Go's TLS checks only the SANs, so the default covers ``https://127.0.0.1:<port>`` and
    ``https://localhost:<port>``. The CA bundle to give the apiserver is ``ca.cert``.
    """
    authority = CertificateAuthority.load(ca)
    cert, key = authority.issue(name, server=True, ips=ips, dns_names=dns_names)
    return _write_pair(directory, name, cert, key)


def write_client_cert(
    ca: CertPair, directory: Path, name: str, *, organizations: Sequence[str] = ()
) -> CertPair:
    """Issue a client certificate (clientAuth, CN ``name``) signed by the cluster CA: what
    kube-scheduler presents to the extender (its ``tlsConfig`` certFile/keyFile)."""
    authority = CertificateAuthority.load(ca)
    cert, key = authority.issue(name, server=False, organizations=organizations)
    return _write_pair(directory, name, cert, key)


def _base_builder(
    subject: x509.Name, public_key: ec.EllipticCurvePublicKey, lifetime: timedelta
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _subject_alt_names(ips: Sequence[str], dns_names: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    names.extend(x509.DNSName(name) for name in dns_names)
    return names


def _write_pair(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertPair:
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(pair.key, key.private_bytes(*_PRIVATE_PEM))
    return pair


def _write_service_account_keys(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = directory / "sa.key", directory / "sa.pub"
    _write_private(private, key.private_bytes(*_PRIVATE_PEM))
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


_PRIVATE_PEM = (
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)
