"""HTTPS for phones and tablets: browsers give camera access only to secure pages.

``self_signed_pair`` makes (once) a self-signed certificate and key in the data directory,
valid for localhost, the machine's name and its LAN addresses; ``open_urls`` says plainly
which URL to open at start-up.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def lan_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (best effort, no network traffic)."""
    found: list[str] = []
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: picks the outgoing interface, sends nothing
            found.append(s.getsockname()[0])
        finally:
            s.close()
    except OSError:
        pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    except OSError:
        pass
    return [a for a in dict.fromkeys(found) if not a.startswith("127.")]


def self_signed_pair(directory: Path, host: str) -> tuple[Path, Path]:
    """The certificate and key files in ``directory/tls``, made on first use (key 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    out = directory / "tls"
    cert_path, key_path = out / "self-signed.crt", out / "self-signed.key"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=7):
            return cert_path, key_path
    out.mkdir(parents=True, exist_ok=True, mode=0o700)  # issue 13 item 13: owner only
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(socket.gethostname())]
    for addr in {"127.0.0.1", *lan_addresses(), *([host] if host not in _LOOPBACK else [])}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(addr)))
        except ValueError:
            if addr not in ("0.0.0.0", "::"):
                names.append(x509.DNSName(addr))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "facegate self-signed")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    fd = os.open(cert_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def open_urls(host: str, port: int, tls: bool) -> list[str]:
    """The console URLs a person should open, loopback first, then the LAN addresses."""
    scheme = "https" if tls else "http"
    if host in ("0.0.0.0", "::"):
        hosts = ["localhost", *lan_addresses()]
    else:
        hosts = ["localhost" if host in _LOOPBACK else host]
    return [f"{scheme}://{h}:{port}/console" for h in hosts]
