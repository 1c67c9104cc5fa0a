"""The public address printed on signs, notices and invitation QR codes (issue 16 item 9).

A QR code on a sign or an invitation is opened by a resident's phone: an address on this
machine (``127.0.0.1``, ``localhost``) or plain ``http`` cannot be opened there, or not
safely. Such an address is refused for anything printed, with a sentence saying how to fix
it (CAC-FR-13a: the sign must lead to the full rules).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from facegate.errors import InvalidInput

HOW_TO_FIX = (
    "请在控制台“告知书与运营方”页面填写公网地址（例如 https://gate.example.cn），"
    "或设置环境变量 FACEGATE_PUBLIC_URL，然后重新打印。",
    "Set the public address on the console's notice page (e.g. https://gate.example.cn), "
    "or set FACEGATE_PUBLIC_URL, then print again.",
)


class PublicUrlUnusable(InvalidInput):
    """A printed QR code would point at an address a phone cannot open."""

    code = "public_url_unusable"

    def __init__(self, url: str) -> None:
        zh, en = url_problem(url) or ("", "")
        self.zh = f"{zh}{HOW_TO_FIX[0]}"
        self.en = f"{en} {HOW_TO_FIX[1]}"
        super().__init__(self.en)


def _loopback(host: str) -> bool:
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def url_problem(url: str) -> tuple[str, str] | None:
    """Why a phone could not open ``url`` (zh-CN, en), or None when it can."""
    if not url.strip():
        return ("尚未设置公网地址。", "No public address is set.")
    parts = urlsplit(url.strip())
    if _loopback((parts.hostname or "").lower()):
        return (
            f"地址 {url} 指向本机，住户的手机无法打开。",
            f"The address {url} points at this machine; a resident's phone cannot open it.",
        )
    if parts.scheme != "https":
        return (
            f"地址 {url} 未使用 HTTPS，手机浏览器会警告或拒绝。",
            f"The address {url} is not HTTPS; phones warn about it or refuse it.",
        )
    return None


def public_base(configured: str, facts_url: str = "", request_base: str = "") -> str:
    """The base of every link people are given: ``FACEGATE_PUBLIC_URL`` wins, then the one
    set in the console, then the address the operator's browser used."""
    return (configured or facts_url or request_base).strip().rstrip("/")


def require_printable(url: str) -> str:
    """``url`` when a phone can open it; otherwise ``PublicUrlUnusable`` saying how to fix."""
    if url_problem(url) is not None:
        raise PublicUrlUnusable(url)
    return url
