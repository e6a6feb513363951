"""HTTP_GET and SSL_GET: GET every url of the checker; the server is up when all pass.

Each url is fetched on a connection of its own (`checkers.http_client.fetch`, strict
parsing), in order; the first url that fails gives the reason and the rest are not
fetched. A url passes when, in keepalived's order:

1. a whole response came back in time (connect, TLS, request and response all within
   ``connect_timeout``: keepalived re-arms connect_timeout for every read, so a server
   dribbling a byte a second never times out there; here it is one deadline per url);
2. its status is one of the url's ``status_code`` (default 200-299: a redirect fails);
3. the body's MD5, as keepalived computes it (see `checkers.http_wire`), equals
   ``digest`` when one is set;
4. ``regex`` is found in the raw body (or, with ``regex_no_match``, is not), starting
   at ``regex_min_offset`` and no later than ``regex_max_offset``.

The Host header is the url's virtualhost, else the checker's, else ``IP:PORT``. SSL_GET
sends SNI only with ``enable_sni`` (``sni_name``, else that virtualhost) and verifies
the certificate only with ``verify_cert`` (the system's trust store) or ``ca_file``
(that CA only), as keepalived never does; the name verified is the SNI name sent, else
the connect address (which the certificate must then list as an IP address).

keepalived's ``fast_recovery`` needs nothing here: a probe always checks every url
without a pause between them, which is what fast_recovery asks of keepalived (without
it keepalived spaces the urls of a recovering server by delay_loop).
"""

from __future__ import annotations

import functools
import re
import time

from checkers.http_client import Failure, HttpResult, fetch
from checkers.probe import ProbeContext, ProbeResult
from checkers.spec import HttpGetCheck, SslGetCheck, Url, regex_flags

# Failures that happen before the request is sent say nothing about the url.
_CONNECTION_FAILURES = frozenset({
    Failure.BIND_FAILED, Failure.UNREACHABLE, Failure.CONNECT_ERROR,
    Failure.CONNECT_TIMEOUT, Failure.CONNECT_FAILED, Failure.TLS_TIMEOUT,
    Failure.TLS_FAILED,
})


@functools.lru_cache(maxsize=1024)
def compiled_regex(pattern: str, flags: int) -> re.Pattern[bytes]:
    """The url's pattern compiled for bytes (raises re.error)."""
    return re.compile(pattern.encode("utf-8", "surrogateescape"), flags)


def regex_found(url: Url, body: bytes) -> bool:
    """Whether the url's regex matches `body` at an allowed offset: the match starts at
    or after regex_min_offset and at or before regex_max_offset (keepalived's rule;
    lookbehind may see bytes before the minimum offset)."""
    assert url.regex is not None
    pattern = compiled_regex(url.regex, regex_flags(url.regex_options))
    match = pattern.search(body, url.regex_min_offset)
    if match is None:
        return False
    return url.regex_max_offset is None or match.start() <= url.regex_max_offset


def _show_regex(url: Url) -> tuple[str, str]:
    where = ""
    if url.regex_min_offset or url.regex_max_offset is not None:
        high = "" if url.regex_max_offset is None else str(url.regex_max_offset)
        where = f" (offsets {url.regex_min_offset}-{high})"
    return f"regex {url.regex!r}", where


def url_verdict(url: Url, result: HttpResult) -> str | None:
    """Why `result`, the response to `url`, fails the check; None when it passes."""
    status = result.status
    if status is not None and not url.accepts_status(status):
        return status_reason(url, result)
    if result.failure is not None:
        if result.failure in _CONNECTION_FAILURES:
            return result.reason
        return f"{result.reason} on {url.path}"
    if status is None:  # a whole response always has a status; never trust otherwise
        return f"no HTTP status on {url.path}"
    if url.digest is not None and (result.digest or "") != url.digest.lower():
        return (f"digest mismatch on {url.path}: got {result.digest}, "
                f"expected {url.digest.lower()}")
    if url.regex is not None:
        try:
            found = regex_found(url, result.body or b"")
        except re.error as error:
            return f"regex {url.regex!r} of {url.path} cannot be used: {error}"
        what, where = _show_regex(url)
        if found and url.regex_no_match:
            return f"{what} found in {url.path}{where} (regex_no_match)"
        if not found and not url.regex_no_match:
            return f"{what} not found in {url.path}{where}"
    return None


def status_reason(url: Url, result: HttpResult) -> str:
    reason = f"HTTP status {result.status} on {url.path}"
    if result.status is not None and 300 <= result.status < 400:
        for name, value in result.headers:
            if name.lower() == "location":
                return f"{reason} (redirect to {value})"
    return reason


async def probe_http(spec: HttpGetCheck | SslGetCheck, context: ProbeContext) -> ProbeResult:
    started = time.monotonic()
    tls = isinstance(spec, SslGetCheck)
    if spec.connect_ip is None or not spec.connect_port:
        return ProbeResult(False, "no address to check (connect_ip/connect_port not set)", 0.0)
    if not spec.urls:
        return ProbeResult(False, "no url to check", 0.0)
    passed: list[str] = []
    for url in spec.urls:
        virtualhost = url.virtualhost or spec.virtualhost
        sni = None
        if tls and spec.enable_sni:
            sni = spec.sni_name or virtualhost
        try:
            result = await fetch(
                str(spec.connect_ip), spec.connect_port, url.path, tls=tls, sni=sni,
                virtualhost=virtualhost, protocol=str(spec.http_protocol),
                timeout=spec.connect_timeout, body_limit=spec.max_body_size,
                bind=None if spec.bindto is None else str(spec.bindto),
                bind_port=spec.bind_port, bind_if=spec.bind_if, fwmark=spec.fwmark,
                verify=tls and spec.verify_cert, ca_file=spec.ca_file if tls else None,
                keep_body=url.regex is not None, strict=True)
        except ValueError as error:  # a path or virtualhost that cannot be sent
            return ProbeResult(False, f"cannot request {url.path!r}: {error}",
                               time.monotonic() - started)
        problem = url_verdict(url, result)
        if problem is not None:
            return ProbeResult(False, problem, time.monotonic() - started)
        passed.append(f"{result.status} on {url.path}")
    return ProbeResult(True, "HTTP " + ", ".join(passed), time.monotonic() - started)
