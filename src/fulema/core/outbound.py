"""Where the platform may send a request a merchant asked for (notify_url): the outbound policy.

A merchant names a URL and we POST to it from inside the bank's network, so an unchecked URL
is a way into that network (server-side request forgery): `http://10.0.0.1/`,
`http://169.254.169.254/` (cloud metadata), `http://2852039166/` (the same address written as
one integer), `http://good.com@127.0.0.1/`. The policy is checked twice:

- at input (`check_url`): when a merchant creates an order or a refund, or an operator sets an
  app's notify_url. Refuses what is wrong with the URL itself: a scheme other than http(s),
  credentials (`user@host`), control characters or blanks (CR/LF would otherwise break the
  request line and jam the notification), no host, a bad port, and an address literal (in any
  form: dotted, integer, octal, hex, IPv6, IPv4-mapped IPv6) or a `localhost` name that is not
  public. A name is not resolved here: DNS at input proves nothing about DNS at delivery.
- at delivery (`resolve`): the name is resolved once, every address it resolves to must be
  public, and the request is made to the checked address (`pinned_request`), with the Host
  header and the TLS server name (SNI, certificate check) set to the original name. A name
  cannot therefore resolve to a public address for the check and to a private one for the
  connection (DNS rebinding). Redirects are never followed.

`outbound_allow_hosts` names hosts (the bank's own test receivers) that skip the address
checks and are reached as named. Loopback is allowed only where `outbound_allow_loopback` says
so, which is by default only in development (the demo's notify receiver is local); outside
development the setting cannot be switched on (`Settings.production_problems`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog

from fulema.core.errors import ErrorCode, FulemaError

log = structlog.get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")  # control characters, blanks, backslash
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class OutboundRefused(ValueError):
    """The URL or the address it resolves to is not one we send requests to. `reason` is short,
    fixed wording (no resolved address, nothing the remote answered)."""

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        self.reason = reason
        self.permanent = permanent  # False: a later DNS answer may differ (retry on schedule)
        super().__init__(reason)


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`address`) and what to call the host (`host`)."""

    url: str
    scheme: str
    host: str
    port: int
    address: str | None  # None: an allow-listed host, reached by its name


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass
class OutboundPolicy:
    allow_hosts: frozenset[str] = frozenset()
    allow_loopback: bool = False
    resolver: Resolver = field(default=system_resolver)

    # ------------------------------------------------------------------------- at input
    def check_url(self, url: str) -> Target:
        """The URL's parts if we may send to it as far as the URL itself shows; OutboundRefused
        (permanent) otherwise."""
        if not isinstance(url, str) or not url:
            raise OutboundRefused("not a URL")
        if len(url) > 512:
            raise OutboundRefused("longer than 512 characters")
        if _FORBIDDEN_CHARS.search(url) or not url.isprintable():
            raise OutboundRefused("contains blanks or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise OutboundRefused("not a valid URL (host or port)") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise OutboundRefused("only http and https URLs are accepted")
        if "@" in parts.netloc or parts.username is not None or parts.password is not None:
            raise OutboundRefused("credentials in the URL (user@host) are not accepted")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host:
            raise OutboundRefused("the URL names no host")
        if not host.isascii():
            raise OutboundRefused("the host must be ASCII (punycode for international names)")
        if port == 0:
            raise OutboundRefused("not a valid port")
        port = port or (443 if scheme == "https" else 80)
        target = Target(url=url, scheme=scheme, host=host, port=port, address=None)
        if host in self.allow_hosts:
            return target
        literal = parse_ip_literal(host)
        if literal is not None:
            self._check_address(literal)
            return Target(url=url, scheme=scheme, host=host, port=port, address=str(literal))
        if not re.fullmatch(r"[a-z0-9]([a-z0-9\-_]*[a-z0-9])?(\.[a-z0-9]([a-z0-9\-_]*[a-z0-9])?)*",
                            host):
            raise OutboundRefused("not a valid host name")
        if (host in _LOCAL_NAMES or host.endswith(".localhost")) and not self.allow_loopback:
            raise OutboundRefused("loopback host names are not accepted")
        return target

    def _check_address(self, ip: IPAddress) -> None:
        kind = address_kind(ip)
        if kind == "loopback" and self.allow_loopback:
            return
        if kind is not None:
            raise OutboundRefused(f"{kind} addresses are not accepted")

    def check_notify_url(self, url: str | None) -> None:
        """At input: FulemaError(NOTIFY_URL_REFUSED) naming why, for a URL we would not send to."""
        if url is None:
            return
        try:
            self.check_url(url)
        except OutboundRefused as exc:
            raise FulemaError(ErrorCode.NOTIFY_URL_REFUSED, f"notify_url: {exc.reason}") from exc

    # ------------------------------------------------------------------------- at delivery
    async def resolve(self, url: str) -> Target:
        """Check the URL again, resolve its host once and check every address it resolves to;
        the Target names the first, to which the request must be made."""
        target = self.check_url(url)
        if target.address is not None or target.host in self.allow_hosts:
            return target
        try:
            found = await self.resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise OutboundRefused("the host name does not resolve", permanent=False) from exc
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise OutboundRefused("the host name does not resolve", permanent=False)
        for ip in addresses:
            try:
                self._check_address(ip)
            except OutboundRefused as exc:
                raise OutboundRefused(f"the host resolves to an address not accepted "
                                      f"({exc.reason.split(' ')[0]})", permanent=False) from exc
        return Target(url=url, scheme=target.scheme, host=target.host, port=target.port,
                      address=str(addresses[0]))


def pinned_request(target: Target) -> tuple[str, dict[str, str], dict[str, str]]:
    """(url, headers, httpx extensions) for a request that connects to the checked address:
    the URL names the address, `Host` and the TLS server name (which the certificate is
    checked against) name the host."""
    if target.address is None or parse_ip_literal(target.host) is not None:
        return target.url, {}, {}
    parts = urlsplit(target.url)
    ip = ipaddress.ip_address(target.address)
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    default = 443 if target.scheme == "https" else 80
    netloc = literal if target.port == default else f"{literal}:{target.port}"
    host_header = target.host if target.port == default else f"{target.host}:{target.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return url, {"Host": host_header}, extensions


@dataclass(frozen=True)
class PostResult:
    """What one outbound POST came to. `reason` (our own words, never the answer's text) is
    set when no answer came: not sent (`permanent` when the policy will never allow the URL),
    timed out, could not connect."""

    status: int | None
    head: bytes = b""
    reason: str | None = None
    permanent: bool = False


async def post_bounded(policy: OutboundPolicy, http: httpx.AsyncClient, url: str, body: bytes,
                       headers: dict[str, str], *, read_bytes: int,
                       seconds: float = 10.0) -> PostResult:
    """POST `body` where the policy allows: the URL checked again and its host resolved once
    (`OutboundPolicy.resolve`), the request sent to the checked address (`pinned_request`),
    redirects not followed, and no more than `read_bytes` of the answer read (an address that
    answers without end cannot hold a worker). Every failure is a result, never an exception:
    the merchant notifications and the SMS and push adapters share this one door."""
    try:
        target = await policy.resolve(url)
    except OutboundRefused as exc:
        return PostResult(None, reason=f"not sent: {exc.reason}", permanent=exc.permanent)
    post_url, pinned, extensions = pinned_request(target)
    try:
        async with http.stream("POST", post_url, content=body, headers={**headers, **pinned},
                               extensions=extensions, timeout=seconds,
                               follow_redirects=False) as response:
            head = b""
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) > read_bytes:
                    break
    except httpx.TimeoutException:
        return PostResult(None, reason="timed out")
    except httpx.TransportError as exc:
        return PostResult(None, reason=f"could not connect or send ({type(exc).__name__})")
    except Exception as exc:  # InvalidURL, a bad header, anything: a result, not a jam
        log.warning("outbound.error", error_type=type(exc).__name__)
        return PostResult(None, reason=f"delivery failed ({type(exc).__name__})")
    return PostResult(response.status_code, head[:read_bytes])


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host literal stands for, in every form a resolver accepts: dotted quad,
    one integer (`2852039166`), octal (`0177.0.0.1`), hex (`0x7f.1`), short forms (`127.1`),
    IPv6 in brackets or not. None for a name."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    numbers: list[int] = []
    for part in parts:
        try:
            if part.lower().startswith("0x"):
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part, 8))
            elif part.isascii() and part.isdigit():
                numbers.append(int(part, 10))
            else:
                return None
        except ValueError:
            return None
    # inet_aton: the last part fills the remaining bytes; out of range is no address at all,
    # which is refused as "unspecified" rather than passed on as a name
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return ipaddress.IPv4Address(0)
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(value)


def address_kind(ip: IPAddress) -> str | None:
    """Why an address is not public (`loopback`, `private`, ...), or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return address_kind(mapped)
        if ip.teredo is not None:
            return "reserved"
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64: an IPv4 address inside
            return address_kind(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    checks = (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
              ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
              ("private", ip.is_private), ("reserved", ip.is_reserved),
              ("reserved", not ip.is_global))
    for kind, hit in checks:
        if hit:
            return kind
    return None
