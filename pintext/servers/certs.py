"""Certificates for the secured OpenSearch node, made with the `cryptography` package (no openssl shell-outs).

A local CA signs a node certificate (SAN 127.0.0.1 and localhost; used for HTTP and for transport, so it is both a
server and a client certificate) and an admin client certificate (the DN the security plugin treats as
`plugins.security.authcz.admin_dn`). Keys are unencrypted PKCS#8 PEM: the only private-key format the security
plugin reads from a PEM file. Everything is written once into one folder and reused on later starts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_BITS = 2048
VALID_DAYS = 3650
ORGANIZATION = "PinText"
HOSTNAMES = ("localhost",)
ADDRESSES = ("127.0.0.1",)


@dataclass(frozen=True)
class CertFiles:
    """The PEM files of one secured node, all in `folder`."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "root-ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "root-ca-key.pem"

    @property
    def node(self) -> Path:
        return self.folder / "node.pem"

    @property
    def node_key(self) -> Path:
        return self.folder / "node-key.pem"

    @property
    def admin(self) -> Path:
        return self.folder / "admin.pem"

    @property
    def admin_key(self) -> Path:
        return self.folder / "admin-key.pem"

    def all(self) -> tuple[Path, ...]:
        return (self.ca, self.ca_key, self.node, self.node_key, self.admin, self.admin_key)

    def complete(self) -> bool:
        return all(path.is_file() for path in self.all())


def subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


# The DNs as the security plugin compares them (RFC 4514/2253 order: CN first).
NODE_DN = subject("pintext-node").rfc4514_string()
ADMIN_DN = subject("pintext-admin").rfc4514_string()


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def _builder(name: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            # A day back: a clock a little behind on the node must not see a certificate from the future.
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS)))


def make_ca(common_name: str = "PinText local CA") -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed CA that may sign leaf certificates only."""
    key = new_key()
    name = subject(common_name)
    certificate = (_builder(name, name, key.public_key())
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False,
                                                data_encipherment=False, key_agreement=False, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .sign(key, hashes.SHA256()))
    return certificate, key


def make_leaf(ca: x509.Certificate, ca_key: rsa.RSAPrivateKey, name: x509.Name,
              with_san: bool) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A certificate signed by `ca` for TLS servers and clients (the node's transport layer is both)."""
    key = new_key()
    builder = (_builder(name, ca.subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=False,
                                            crl_sign=False, content_commitment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if with_san:
        names: list[x509.GeneralName] = [x509.DNSName(host) for host in HOSTNAMES]
        names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ADDRESSES]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def write_certificate(path: Path, certificate: x509.Certificate) -> None:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    """An unencrypted PKCS#8 key, readable by its owner only."""
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def write_ca(files: CertFiles, common_name: str = "PinText local CA") -> None:
    """Only a CA (tests make a second, untrusted one with this)."""
    files.folder.mkdir(parents=True, exist_ok=True)
    certificate, key = make_ca(common_name)
    write_certificate(files.ca, certificate)
    write_key(files.ca_key, key)


def ensure_certificates(folder: Path) -> tuple[CertFiles, bool]:
    """The node's CA, node and admin certificates in `folder`, made unless all are there; (files, made now)."""
    files = CertFiles(folder)
    if files.complete():
        return files, False
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = make_ca()
    node, node_key = make_leaf(ca, ca_key, subject("pintext-node"), with_san=True)
    admin, admin_key = make_leaf(ca, ca_key, subject("pintext-admin"), with_san=False)
    for path, certificate in ((files.ca, ca), (files.node, node), (files.admin, admin)):
        write_certificate(path, certificate)
    for path, key in ((files.ca_key, ca_key), (files.node_key, node_key), (files.admin_key, admin_key)):
        write_key(path, key)
    return files, True
