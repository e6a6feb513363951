"""TLS certificates made at test time: a CA (trustme) and leaves that are good, expired,
for the wrong name, self-signed, and one per SNI name."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

GOOD_NAME = "www.example.test"
WRONG_NAME = "other.example.test"
SNI_NAMES = ("a.example.test", "b.example.test")
SELF_SIGNED_NAME = "self.example.test"


@dataclass(frozen=True)
class Certificates:
    """PEM files: `ca` signed every leaf but the self-signed one; `other_ca` signed
    nothing here. Each leaf file holds its key and its chain (nginx takes it as both)."""

    ca: Path
    other_ca: Path
    good: Path          # 127.0.0.1, ::1, localhost, GOOD_NAME
    expired: Path       # the same names, expired a day ago
    wrong_name: Path    # WRONG_NAME only
    self_signed: Path   # SELF_SIGNED_NAME and 127.0.0.1, signed by its own key
    sni: dict[str, Path]  # one leaf per SNI_NAMES entry


def _self_signed(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SELF_SIGNED_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(SELF_SIGNED_NAME),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM))


def make_certificates(where: Path) -> Certificates:
    where.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    now = datetime.datetime.now(datetime.UTC)
    found = Certificates(
        ca=where / "ca.pem", other_ca=where / "other-ca.pem", good=where / "good.pem",
        expired=where / "expired.pem", wrong_name=where / "wrong-name.pem",
        self_signed=where / "self-signed.pem",
        sni={name: where / f"sni-{name}.pem" for name in SNI_NAMES})
    ca.cert_pem.write_to_path(found.ca)
    trustme.CA().cert_pem.write_to_path(found.other_ca)
    names = ("127.0.0.1", "::1", "localhost", GOOD_NAME)
    ca.issue_cert(*names).private_key_and_cert_chain_pem.write_to_path(found.good)
    ca.issue_cert(*names, not_before=now - datetime.timedelta(days=30),
                  not_after=now - datetime.timedelta(days=1)
                  ).private_key_and_cert_chain_pem.write_to_path(found.expired)
    ca.issue_cert(WRONG_NAME).private_key_and_cert_chain_pem.write_to_path(found.wrong_name)
    for name, path in found.sni.items():
        ca.issue_cert(name).private_key_and_cert_chain_pem.write_to_path(path)
    _self_signed(found.self_signed)
    return found
