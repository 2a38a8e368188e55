"""Webhook certificates for the hami chart (run by the certgen hook Jobs, in the hami image).

  certgen.py create --namespace NS --secret-name S --host DNS_OR_IP ...
      make a CA and a serving certificate for the hosts; store tls.crt, tls.key and ca.crt in
      Secret S, unless it already exists (upgrades keep the certificate)
      with --client-secret-name C: also a CA of its own and a client certificate (clientAuth,
      CN hami-kube-scheduler) in Secret C (tls.crt, tls.key, ca.crt), unless C exists:
      kube-scheduler's certificate for the extender, whose listener trusts only that CA
  certgen.py patch --namespace NS --secret-name S --webhook-name W
      set caBundle of every webhook in MutatingWebhookConfiguration W to the Secret's ca.crt

API access: in the cluster, the pod's ServiceAccount; elsewhere $KUBECONFIG (lightkube).
Only these calls: secrets get/create, mutatingwebhookconfigurations get/patch (the client Secret is
created blindly; "already exists" keeps it, so no get on it is needed).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lightkube import ApiError, Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import MutatingWebhookConfiguration
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

VALID_DAYS = 3650
CLIENT_NAME = "hami-kube-scheduler"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    ca_name: str, subject: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
) -> dict[str, bytes]:
    """A self-signed CA ``ca_name`` and a leaf certificate (ECDSA P-256) for ``subject`` with
    one extended key usage, signed by it: ``tls.crt``, ``tls.key``, ``ca.crt``."""
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(until)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = (
        builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return {
        "tls.crt": cert.public_bytes(pem),
        "tls.key": _pem_key(key),
        "ca.crt": ca.public_bytes(pem),
    }


def make_certs(hosts: list[str]) -> dict[str, bytes]:
    """A self-signed CA and a serving certificate (ECDSA P-256) for ``hosts``."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return _issue("hami-webhook-ca", hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, names)


def make_client_cert(common_name: str = CLIENT_NAME) -> dict[str, bytes]:
    """A CA of its own and a client certificate (clientAuth only) signed by it."""
    return _issue("hami-extender-client-ca", common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])


def create_client(client: Client, namespace: str, secret: str) -> str:
    data = {k: base64.b64encode(v).decode() for k, v in make_client_cert().items()}
    meta = ObjectMeta(
        name=secret, namespace=namespace, labels={"app.kubernetes.io/component": "certgen"}
    )
    try:
        client.create(Secret(metadata=meta, type="kubernetes.io/tls", data=data))
    except ApiError as exc:
        if exc.status.code != 409:
            raise
        return f"secret {namespace}/{secret} exists; kept"
    return (
        f"secret {namespace}/{secret} created: kube-scheduler's client certificate ({CLIENT_NAME})"
    )


def create(client: Client, namespace: str, secret: str, hosts: list[str]) -> str:
    try:
        client.get(Secret, secret, namespace=namespace)
        return f"secret {namespace}/{secret} exists; kept"
    except ApiError as exc:
        if exc.status.code != 404:
            raise
    data = {k: base64.b64encode(v).decode() for k, v in make_certs(hosts).items()}
    meta = ObjectMeta(
        name=secret, namespace=namespace, labels={"app.kubernetes.io/component": "certgen"}
    )
    client.create(Secret(metadata=meta, type="kubernetes.io/tls", data=data))
    return f"secret {namespace}/{secret} created for {', '.join(hosts)}"


def patch(client: Client, namespace: str, secret: str, webhook: str) -> str:
    ca = (client.get(Secret, secret, namespace=namespace).data or {})["ca.crt"]
    current = client.get(MutatingWebhookConfiguration, webhook)
    ops = [
        {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca}
        for i in range(len(current.webhooks or []))
    ]
    client.patch(MutatingWebhookConfiguration, webhook, ops, patch_type=PatchType.JSON)
    return f"caBundle of {len(ops)} webhook(s) in {webhook} set from {namespace}/{secret}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["create", "patch"])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--secret-name", required=True)
    parser.add_argument("--host", action="append", default=[])
    parser.add_argument("--webhook-name")
    parser.add_argument("--client-secret-name")
    args = parser.parse_args(argv)
    client = Client(field_manager="hami-certgen")
    if args.action == "create":
        if not args.host:
            parser.error("create needs at least one --host")
        print(create(client, args.namespace, args.secret_name, args.host))
        if args.client_secret_name:
            print(create_client(client, args.namespace, args.client_secret_name))
    else:
        if not args.webhook_name:
            parser.error("patch needs --webhook-name")
        print(patch(client, args.namespace, args.secret_name, args.webhook_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
