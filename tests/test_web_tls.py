"""HTTPS for phones and tablets: the self-signed pair and the URLs printed at start-up."""

from __future__ import annotations

import stat

from cryptography import x509

from facegate.web.tls import open_urls, self_signed_pair


def test_self_signed_pair_is_made_once_with_a_private_key_file(tmp_path):
    cert_path, key_path = self_signed_pair(tmp_path, "127.0.0.1")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    again = self_signed_pair(tmp_path, "127.0.0.1")
    assert again == (cert_path, key_path)
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number == (
        cert.serial_number
    )


def test_start_up_urls_say_which_scheme_and_host_to_open():
    assert open_urls("127.0.0.1", 8443, True) == ["https://localhost:8443/console"]
    assert open_urls("10.1.2.3", 8000, False) == ["http://10.1.2.3:8000/console"]
    wide = open_urls("0.0.0.0", 8443, True)
    assert wide[0] == "https://localhost:8443/console"
    assert all(u.startswith("https://") for u in wide)
