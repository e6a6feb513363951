"""HTTP_GET and SSL_GET against real servers, each failure with its exact reason.

The servers (tests/netns/servers/behaviours.py) run in a process of their own: aiohttp
for the behaviours it can produce (slow, dribbling, wrong status, redirect, reset
mid-body, huge bodies, virtual hosts, TLS with certificates made at test time:
self-signed, expired, wrong name, one per SNI name), raw asyncio servers for the rest
(garbage, truncated or endless headers, chunked-encoding errors, binary bodies). Every
probe is checked for leaked file descriptors. Debian's nginx serves HTTP_GET and
SSL_GET too, with digests compared to keepalived's genhash on the same pages.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkers.probe import ProbeContext, ProbeResult, run_probe
from checkers.spec import (
    HttpGetCheck,
    HttpProtocol,
    RegexOption,
    SslGetCheck,
    StatusRange,
    Url,
)
from tests.netns.lab import Lab
from tests.netns.servers.behaviours import BINARY, HUGE_SIZE, PAGE, VHOSTS
from tests.netns.servers.certs import GOOD_NAME, SNI_NAMES, Certificates, make_certificates
from tests.netns.servers.netns import (
    BLACKHOLE,
    BLACKHOLE6,
    MARK,
    UNREACHABLE,
    run_in_namespace,
    unreachable_namespace,
)
from tests.netns.servers.process import (
    NGINX,
    behaviour_servers,
    closed_port,
    ipv6_loopback,
    nginx,
)

CONTEXT = ProbeContext()
GENHASH = Path("/usr/bin/genhash")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[dict]:
    with behaviour_servers(tmp_path_factory.mktemp("servers"), certs) as found:
        yield found


def http(port: int, *urls: Url | str, address: str = "127.0.0.1", **options) -> HttpGetCheck:
    return HttpGetCheck(connect_ip=ipaddress.ip_address(address), connect_port=port,
                        urls=tuple(Url(path=u) if isinstance(u, str) else u for u in urls),
                        connect_timeout=options.pop("connect_timeout", 3.0), **options)


def https(port: int, *urls: Url | str, address: str = "127.0.0.1", **options) -> SslGetCheck:
    return SslGetCheck(connect_ip=ipaddress.ip_address(address), connect_port=port,
                       urls=tuple(Url(path=u) if isinstance(u, str) else u for u in urls),
                       connect_timeout=options.pop("connect_timeout", 3.0), **options)


async def probe(spec: HttpGetCheck | SslGetCheck) -> ProbeResult:
    """Run the probe; no file descriptor may be left behind."""
    before = fds()
    result = await run_probe(spec, CONTEXT)
    assert fds() == before, "the probe leaked a file descriptor"
    return result


async def fails(spec: HttpGetCheck | SslGetCheck) -> str:
    result = await probe(spec)
    assert not result.ok, f"expected a failure, got {result.reason!r}"
    return result.reason


async def passes(spec: HttpGetCheck | SslGetCheck) -> str:
    result = await probe(spec)
    assert result.ok, result.reason
    return result.reason


# ---------------------------------------------------------------- status, urls


async def test_a_healthy_url(ports: dict) -> None:
    assert await passes(http(ports["http"], "/ok")) == "HTTP 200 on /ok"


async def test_every_url_must_pass_and_the_first_failure_is_the_reason(ports: dict) -> None:
    assert await passes(http(ports["http"], "/ok", "/health")) == (
        "HTTP 200 on /ok, 200 on /health")
    assert await fails(http(ports["http"], "/ok", "/status/503", "/status/404")) == (
        "HTTP status 503 on /status/503")


async def test_status_codes(ports: dict) -> None:
    assert await fails(http(ports["http"], "/missing")) == "HTTP status 404 on /missing"
    maintenance = Url(path="/status/503", status_code=(StatusRange(low=503, high=503),))
    assert await passes(http(ports["http"], maintenance)) == "HTTP 503 on /status/503"
    only_200 = Url(path="/status/204", status_code=(StatusRange(low=200, high=200),))
    assert await fails(http(ports["http"], only_200)) == "HTTP status 204 on /status/204"


async def test_a_redirect_fails_by_default(ports: dict) -> None:
    assert await fails(http(ports["http"], "/redirect")) == (
        "HTTP status 302 on /redirect (redirect to /ok)")
    accepted = Url(path="/redirect", status_code=(StatusRange(low=300, high=399),))
    assert await passes(http(ports["http"], accepted)) == "HTTP 302 on /redirect"


async def test_connection_refused() -> None:
    assert await fails(http(closed_port(), "/")) == "connection refused"


# ---------------------------------------------------------------- the deadline


async def test_a_slow_server_is_cut_off_at_connect_timeout(ports: dict) -> None:
    started = time.monotonic()
    reason = await fails(http(ports["http"], "/slow/10", connect_timeout=1.0))
    assert reason == "response exceeded 1.0 s deadline (no data received) on /slow/10"
    assert time.monotonic() - started < 1.5


async def test_a_dribbling_server_cannot_stretch_the_deadline(ports: dict) -> None:
    started = time.monotonic()
    reason = await fails(http(ports["http"], "/dribble", connect_timeout=1.0))
    assert re.fullmatch(r"response exceeded 1\.0 s deadline \(\d+ bytes received\) "
                        r"on /dribble", reason), reason
    # The whole response takes 60 s at one byte per 0.1 s, so a per-read timer would never
    # fire; the margin over 1 s only absorbs a busy machine's scheduling delays.
    assert time.monotonic() - started < 3.0


async def test_each_url_has_the_whole_deadline(ports: dict) -> None:
    started = time.monotonic()
    assert await passes(http(ports["http"], "/slow/0.6", "/slow/0.6",
                             connect_timeout=1.0)) == "HTTP 200 on /slow/0.6, 200 on /slow/0.6"
    assert time.monotonic() - started >= 1.2


# ---------------------------------------------------------------- digest, regex, host


async def test_digest(ports: dict) -> None:
    assert await passes(http(ports["http"], Url(path="/page", digest=md5(PAGE))))
    wrong = "0123456789abcdef0123456789abcdef"
    assert await fails(http(ports["http"], Url(path="/page", digest=wrong))) == (
        f"digest mismatch on /page: got {md5(PAGE)}, expected {wrong}")


async def test_digest_of_a_chunked_body_covers_its_framing_as_keepalived(ports: dict) -> None:
    raw = b"3\r\nabc\r\n0\r\n\r\n"
    assert await passes(http(ports["raw-chunked-ok"], Url(path="/", digest=md5(raw))))
    assert await fails(http(ports["raw-chunked-ok"], Url(path="/", digest=md5(b"abc")))) == (
        f"digest mismatch on /: got {md5(raw)}, expected {md5(b'abc')}")


async def test_binary_body(ports: dict) -> None:
    assert await passes(http(ports["raw-binary-body"], Url(path="/", digest=md5(BINARY))))
    assert await passes(http(ports["http"], Url(path="/binary", digest=md5(BINARY),
                                                regex="\x00\x01\x02")))
    assert await fails(http(ports["http"], Url(path="/binary", regex="\x02\x01"))) == (
        "regex '\\x02\\x01' not found in /binary")


async def test_regex(ports: dict) -> None:
    port = ports["http"]
    assert await passes(http(port, Url(path="/health", regex="healthy")))
    assert await fails(http(port, Url(path="/health", regex=r"version: 2\."))) == (
        "regex 'version: 2\\\\.' not found in /health")
    assert await passes(http(port, Url(path="/health", regex="HEALTHY",
                                       regex_options=(RegexOption.CASELESS,))))
    assert await passes(http(port, Url(path="/health", regex="error", regex_no_match=True)))
    assert await fails(http(port, Url(path="/error-page", regex="error",
                                      regex_no_match=True))) == (
        "regex 'error' found in /error-page (regex_no_match)")
    assert await fails(http(port, Url(path="/health", regex="healthy",
                                      regex_min_offset=10))) == (
        "regex 'healthy' not found in /health (offsets 10-)")


async def test_virtualhost_routing(ports: dict) -> None:
    port = ports["http"]
    site_a, site_b = (md5(VHOSTS[name]) for name in SNI_NAMES)
    assert await passes(http(port, Url(path="/vhost", digest=site_a),
                             virtualhost="a.example.test"))
    # The url's virtualhost wins over the checker's.
    assert await passes(http(port, Url(path="/vhost", digest=site_b,
                                       virtualhost="b.example.test"),
                             virtualhost="a.example.test"))
    assert await fails(http(port, "/vhost")) == "HTTP status 404 on /vhost"
    # Without one, Host is IP:PORT as keepalived sends it.
    assert await passes(http(port, Url(path="/echo", regex=f"Host: 127.0.0.1:{port}\n")))


@pytest.mark.parametrize(("protocol", "expected"), [
    (HttpProtocol.HTTP_1_0, "Version: HTTP/1.0\nConnection: -\n"),
    (HttpProtocol.HTTP_1_0C, "Version: HTTP/1.0\nConnection: close\n"),
    (HttpProtocol.HTTP_1_1, "Version: HTTP/1.1\nConnection: close\n"),
])
async def test_http_protocol(ports: dict, protocol: HttpProtocol, expected: str) -> None:
    assert await passes(http(ports["http"], Url(path="/echo", regex=re.escape(expected)),
                             http_protocol=protocol))


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 on loopback")
async def test_ipv6(ports: dict) -> None:
    port = ports["http6"]
    assert await passes(http(port, Url(path="/echo", regex=re.escape(f"Host: [::1]:{port}")),
                             address="::1"))


# ---------------------------------------------------------------- where from


async def test_bindto_bind_port_and_bind_if(ports: dict) -> None:
    port = ports["http"]
    source_port = closed_port("127.0.0.2")
    assert await passes(http(port, Url(path="/peer", regex=f"^peer 127.0.0.2 {source_port}$",
                                       regex_options=(RegexOption.MULTILINE,)),
                             bindto=ipaddress.ip_address("127.0.0.2"), bind_port=source_port,
                             bind_if="lo"))
    assert await fails(http(port, "/ok", bind_if="nosuch0")) == (
        "cannot bind to interface nosuch0: No such device")
    assert await fails(http(port, "/ok", bindto=ipaddress.ip_address("192.0.2.99"))) == (
        "cannot bind to 192.0.2.99: Cannot assign requested address")


@pytest.fixture(scope="module")
def netlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with Lab(Path(tmp_path_factory.mktemp("lab"))) as lab:
        yield unreachable_namespace(lab, "http")


def probe_in(ns: str, spec: HttpGetCheck | SslGetCheck) -> tuple[ProbeResult, float]:
    async def go() -> tuple[ProbeResult, float]:
        started = time.monotonic()
        return await probe(spec), time.monotonic() - started
    return run_in_namespace(ns, go)


@pytest.mark.parametrize("address", [BLACKHOLE, BLACKHOLE6])
def test_connect_timeout(netlab: str, address: str) -> None:
    for spec in (http(80, "/", address=address, connect_timeout=1.0),
                 https(443, "/", address=address, connect_timeout=1.0)):
        result, elapsed = probe_in(netlab, spec)
        assert (result.ok, result.reason) == (False, "connect timeout after 1.0 s")
        assert 1.0 <= elapsed < 1.5


def test_unreachable_and_fwmark(netlab: str) -> None:
    result, elapsed = probe_in(netlab, http(80, "/", address=UNREACHABLE))
    assert (result.ok, result.reason) == (False, "network unreachable: No route to host")
    assert elapsed < 0.5
    marked, elapsed = probe_in(netlab, http(80, "/", address=BLACKHOLE, fwmark=MARK))
    assert marked.reason == "network unreachable: No route to host"  # table 100 was used
    assert elapsed < 0.5


# ---------------------------------------------------------------- broken responses


async def test_reset_mid_body(ports: dict) -> None:
    assert await fails(http(ports["http"], "/reset")) == (
        "read error: Connection reset by peer on /reset")


async def test_a_body_over_the_limit(ports: dict) -> None:
    limit = 1_000_000
    assert await fails(http(ports["http"], "/huge/framed", max_body_size=limit)) == (
        f"response body of {HUGE_SIZE} bytes (Content-Length) exceeds the {limit}-byte "
        f"limit on /huge/framed")
    for protocol in (HttpProtocol.HTTP_1_0, HttpProtocol.HTTP_1_1):  # close / chunked
        assert await fails(http(ports["http"], "/huge/unframed", max_body_size=limit,
                                http_protocol=protocol)) == (
            f"response body exceeded {limit} bytes on /huge/unframed")
    assert await passes(http(ports["http"], "/huge/framed", max_body_size=HUGE_SIZE))


@pytest.mark.parametrize(("server", "reason"), [
    ("raw-garbage", "HTTP status line malformed: b'garbage' on /"),
    ("raw-binary-junk", f"HTTP status line malformed: {BINARY[:60]!r}... on /"),
    ("raw-truncated-headers", "connection closed before the end of the response headers "
                              "(38 bytes received) on /"),
    ("raw-endless-headers", "response headers exceed 65536 bytes on /"),
    ("raw-stalled-headers", "response exceeded 1.0 s deadline (17 bytes received) on /"),
    ("raw-bad-chunk-size", "bad chunk size line: b'zz' on /"),
    ("raw-chunk-missing-crlf", "chunk data not followed by CRLF (bad chunk size?) on /"),
    ("raw-chunked-cut", "connection closed inside the chunked body (no last chunk) on /"),
    ("raw-short-body", "connection closed after 3 of 100 body bytes on /"),
    ("raw-empty", "connection closed before the end of the response headers "
                  "(no data received) on /"),
    ("raw-silent", "response exceeded 1.0 s deadline (no data received) on /"),
])
async def test_broken_responses(ports: dict, server: str, reason: str) -> None:
    started = time.monotonic()
    assert await fails(http(ports[server], "/", connect_timeout=1.0)) == reason
    assert time.monotonic() - started < 1.5


# ---------------------------------------------------------------- TLS


async def test_ssl_get_does_not_verify_unless_asked(ports: dict) -> None:
    for server in ("tls-good", "tls-self-signed", "tls-expired", "tls-wrong-name"):
        assert await passes(https(ports[server], Url(path="/ok", digest=md5(b"ok\n")))) == (
            "HTTP 200 on /ok")


async def test_verification(ports: dict, certs: Certificates) -> None:
    ca, other = str(certs.ca), str(certs.other_ca)
    prefix = "TLS handshake failed: certificate verification failed: "
    assert await passes(https(ports["tls-good"], "/ok", verify_cert=True, ca_file=ca))
    assert await passes(https(ports["tls-good"], "/ok", ca_file=ca, enable_sni=True,
                              virtualhost=GOOD_NAME))
    assert await fails(https(ports["tls-good"], "/ok", verify_cert=True, ca_file=other)) == (
        prefix + "unable to get local issuer certificate")
    assert await fails(https(ports["tls-self-signed"], "/ok", verify_cert=True,
                             ca_file=other)) == prefix + "self-signed certificate"
    assert await fails(https(ports["tls-expired"], "/ok", verify_cert=True, ca_file=ca)) == (
        prefix + "certificate has expired")
    assert await fails(https(ports["tls-wrong-name"], "/ok", verify_cert=True, ca_file=ca,
                             enable_sni=True, sni_name=GOOD_NAME)) == (
        prefix + f"Hostname mismatch, certificate is not valid for '{GOOD_NAME}'.")


async def test_sni_picks_the_certificate_and_the_content(ports: dict,
                                                         certs: Certificates) -> None:
    port = ports["tls-sni"]

    def served(name: str) -> Url:
        return Url(path="/sni", regex=f"^site for {re.escape(name)}$",
                   regex_options=(RegexOption.MULTILINE,))

    # keepalived sends SNI only with enable_sni, whatever the virtualhost.
    assert await passes(https(port, served("default"), virtualhost="a.example.test"))
    assert await passes(https(port, served("a.example.test"), enable_sni=True,
                              virtualhost="a.example.test"))
    assert await passes(https(port, served("b.example.test"), enable_sni=True,
                              virtualhost="a.example.test", sni_name="b.example.test"))
    # The certificate follows the name: verifying against it works for either name.
    for name in SNI_NAMES:
        assert await passes(https(port, served(name), enable_sni=True, sni_name=name,
                                  verify_cert=True, ca_file=str(certs.ca)))
    # A name the server has no certificate for gets the default one, which lacks it.
    assert await fails(https(port, served("default"), enable_sni=True,
                             sni_name="c.example.test", verify_cert=True,
                             ca_file=str(certs.ca))) == (
        "TLS handshake failed: certificate verification failed: Hostname mismatch, "
        "certificate is not valid for 'c.example.test'.")
    assert await fails(https(port, served("b.example.test"), enable_sni=True,
                             sni_name="a.example.test")) == (
        "regex '^site for b\\\\.example\\\\.test$' not found in /sni")


async def test_tls_against_what_is_not_tls(ports: dict) -> None:
    assert await fails(https(ports["http"], "/ok")) == "TLS handshake failed: WRONG_VERSION_NUMBER"
    started = time.monotonic()
    assert await fails(https(ports["raw-accept-only"], "/ok", connect_timeout=1.0)) == (
        "TLS handshake timeout after 1.0 s")
    assert time.monotonic() - started < 1.5


# ---------------------------------------------------------------- nginx and genhash

NGINX_PAGE = b"<html><body>nginx default site</body></html>\n"
NGINX_VHOST_PAGE = b"<html><body>nginx site of www.example.test</body></html>\n"
NGINX_BIG = bytes(range(256)) * 800  # 200 KiB, several reads and TLS records


@pytest.fixture(scope="module")
def nginx_ports(tmp_path_factory: pytest.TempPathFactory,
                certs: Certificates) -> Iterator[tuple[int, int]]:
    if not Path(NGINX).exists():
        pytest.skip(f"{NGINX} missing: `make test-netns` installs Debian's nginx")
    pages = {"default": {"index.html": NGINX_PAGE, "big.html": NGINX_BIG},
             "vhost": {"index.html": NGINX_VHOST_PAGE}}
    with nginx(tmp_path_factory.mktemp("nginx"), pem=certs.good, vhost=GOOD_NAME,
               pages=pages) as found:
        yield found


def genhash(*args: str) -> str:
    """keepalived's genhash: the digest it prints for a page."""
    if not GENHASH.exists():
        pytest.skip(f"{GENHASH} missing: `make test-netns` installs Debian's keepalived")
    done = subprocess.run([str(GENHASH), *args], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", digest), done.stdout
    return digest


@pytest.mark.parametrize("page", ["/index.html", "/big.html"])
async def test_nginx_http_get_with_genhash_digests(nginx_ports: tuple[int, int],
                                                   page: str) -> None:
    port = nginx_ports[0]
    digest = genhash("-s", "127.0.0.1", "-p", str(port), "-u", page)
    assert await passes(http(port, Url(path=page, digest=digest))) == f"HTTP 200 on {page}"
    for protocol in HttpProtocol:
        assert await passes(http(port, Url(path=page, digest=digest), http_protocol=protocol))


async def test_nginx_ssl_get_with_genhash_digests(nginx_ports: tuple[int, int],
                                                  certs: Certificates) -> None:
    port = nginx_ports[1]
    digest = genhash("-S", "-s", "127.0.0.1", "-p", str(port), "-u", "/big.html")
    assert digest == md5(NGINX_BIG)
    assert await passes(https(port, Url(path="/big.html", digest=digest)))
    vhost = genhash("-S", "-I", "-V", GOOD_NAME, "-s", "127.0.0.1", "-p", str(port),
                    "-u", "/index.html")
    assert vhost == md5(NGINX_VHOST_PAGE)
    assert await passes(https(port, Url(path="/index.html", digest=vhost), enable_sni=True,
                              virtualhost=GOOD_NAME, verify_cert=True, ca_file=str(certs.ca)))
    assert await fails(https(port, Url(path="/index.html", digest=vhost))) == (
        f"digest mismatch on /index.html: got {md5(NGINX_PAGE)}, expected {vhost}")


async def test_nginx_failures(nginx_ports: tuple[int, int]) -> None:
    port = nginx_ports[0]
    assert await passes(http(port, Url(path="/health", regex="^healthy$",
                                       regex_options=(RegexOption.MULTILINE,))))
    assert await fails(http(port, "/maintenance")) == "HTTP status 503 on /maintenance"
    assert await fails(http(port, "/moved")) == (
        f"HTTP status 301 on /moved (redirect to http://127.0.0.1:{port}/index.html)")
    assert await fails(http(port, "/index.html", "/nothing-here")) == (
        "HTTP status 404 on /nothing-here")
