"""Self-signed certificates made per run: the WhatsApp-protocol fake's upload server speaks https
(Baileys uploads media only over https), and the Baileys workers trust it through
NODE_EXTRA_CA_CERTS. Used by the local stack and the engine tests' fake; the egress guard's tests
make theirs here too."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(name: x509.GeneralName, *, valid: timedelta) -> tuple[bytes, bytes]:
    """(certificate, key) as PEM: a self-signed CA certificate for `name`, valid for `valid`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(name.value))])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + valid)
        .add_extension(x509.SubjectAlternativeName([name]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def loopback_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files in `directory`, valid a day for 127.0.0.1."""
    cert, key = self_signed(
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")), valid=timedelta(days=1)
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "media-cert.pem", directory / "media-key.pem"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    return cert_file, key_file
