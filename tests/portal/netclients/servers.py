"""What the network clients' conformance tests run against: a private CA with a loopback server certificate (made
with the `openssl` command line, on every machine that runs the suite) and private redis-servers on free loopback
ports, in temporary directories, stopped after. The machine's own Redis is never touched."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port, wait_until_listening


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA that signed the server's certificate
    other_ca: Path  # a CA that signed nothing here: trusting only it must refuse the server
    cert: Path  # the server's certificate, for 127.0.0.1 and localhost
    key: Path


def _openssl(directory: Path, *args: str) -> None:
    if shutil.which("openssl") is None:
        raise RuntimeError("the conformance suite needs the openssl command line: apt-get install openssl")
    result = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace')[-2000:]}")


def _make_ca(directory: Path, name: str) -> None:
    _openssl(
        directory, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=Portal test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate it signs (with the extensions Python's strict verification asks for), and an
    unrelated second CA."""
    _make_ca(directory, "ca")
    _make_ca(directory, "other-ca")
    _openssl(
        directory, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
    )  # fmt: skip
    return Certificates(
        ca=directory / "ca.pem", other_ca=directory / "other-ca.pem", cert=directory / "server.pem",
        key=directory / "server.key",
    )  # fmt: skip


class PrivateRedis:
    """A throw-away redis-server on a free loopback port, no persistence. `tls`: it speaks only TLS on that port,
    with the given certificates, and asks clients for no certificate of their own."""

    def __init__(self, *extra: str, tls: Certificates | None = None, bind: str = "127.0.0.1") -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("the conformance suite needs redis-server: apt-get install redis-server")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="netclients-redis-"))
        args = [server, "--bind", bind, "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                "--logfile", str(self.dir / "redis.log")]  # fmt: skip
        if tls is None:
            args += ["--port", str(self.port)]
        else:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(tls.cert),
                     "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca),
                     "--tls-auth-clients", "no"]  # fmt: skip
        self.process = subprocess.Popen([*args, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_listening(self.port, self.process)
        except RuntimeError:
            self.close()
            raise

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)
