"""TLS with a certificate made here (openssl), client certificates, the
bearer token, and 100 clients served at once."""
import subprocess
import threading

import grpc
import pytest

import expbus.remote as remote
from bridge_harness import make_stream
from expbus_harness import finish


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def pki(tmp_path):
    """A CA, a server certificate for localhost/127.0.0.1 and a client
    certificate, both signed by the CA."""
    d = tmp_path / "pki"
    d.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=expbus test CA", "-keyout", "ca.key", "-out",
            "ca.pem", cwd=d)
    (d / "san.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj",
                f"/CN={'localhost' if name == 'server' else 'trainer'}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", "san.ext", "-out", f"{name}.pem", cwd=d)
    return d


def test_tls(broker, bridge_factory, pki):
    make_stream(broker, "tls")
    b = bridge_factory("--tls-cert", str(pki / "server.pem"), "--tls-key",
                       str(pki / "server.key"))
    ca = (pki / "ca.pem").read_bytes()
    with remote.subscribe(b.target, "tls", root_certificates=ca,
                          compression="lz4") as sub:
        pub = broker.start("pub", "--stream", "tls", "--count", "500")
        n = 0
        while n < 500:
            n += sub.next_batch(30).count
        assert finish(pub)[0] == 0
    # Plaintext to a TLS port does not get through.
    with pytest.raises(remote.RemoteError) as e:
        remote.subscribe(b.target, "tls", reconnect=False,
                         connect_timeout=5)
    assert e.value.code in (grpc.StatusCode.UNAVAILABLE,
                            grpc.StatusCode.DEADLINE_EXCEEDED)


def test_tls_client_certificate_required(broker, bridge_factory, pki):
    make_stream(broker, "mtls")
    b = bridge_factory("--tls-cert", str(pki / "server.pem"), "--tls-key",
                       str(pki / "server.key"), "--tls-client-ca",
                       str(pki / "ca.pem"), "--require-client-cert")
    ca = (pki / "ca.pem").read_bytes()
    with pytest.raises(remote.RemoteError):
        remote.subscribe(b.target, "mtls", root_certificates=ca,
                         reconnect=False, connect_timeout=5)
    with remote.subscribe(b.target, "mtls", root_certificates=ca,
                          client_cert=(pki / "client.pem").read_bytes(),
                          client_key=(pki / "client.key").read_bytes()):
        assert remote.list_streams(
            b.target, root_certificates=ca,
            client_cert=(pki / "client.pem").read_bytes(),
            client_key=(pki / "client.key").read_bytes()) == {
            "mtls": "obs f32[8,8]; action i32; reward f32"}


def test_token(broker, bridge_factory, tmp_path):
    make_stream(broker, "tok")
    (tmp_path / "token").write_text("s3cret-token\n")
    b = bridge_factory("--token-file", str(tmp_path / "token"))
    for bad in (None, "wrong", "s3cret-token2"):
        with pytest.raises(remote.RemoteError) as e:
            remote.subscribe(b.target, "tok", token=bad)
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert "token" in e.value.details
        with pytest.raises(remote.RemoteError) as e:
            remote.list_streams(b.target, token=bad)
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    with remote.subscribe(b.target, "tok", token="s3cret-token") as sub:
        pub = broker.start("pub", "--stream", "tok", "--count", "100")
        n = 0
        while n < 100:
            n += sub.next_batch(30).count
        assert finish(pub)[0] == 0


def test_hundred_clients_at_once(broker, bridge):
    make_stream(broker, "many")
    subs = [None] * 100
    errors = []

    def connect(i):
        try:
            subs[i] = remote.subscribe(bridge.target, "many", batch_size=25,
                                       policy="lossless")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=connect, args=(i,))
               for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    broker.wait_subscriptions(100, timeout=60)
    pub = broker.start("pub", "--stream", "many", "--count", "500")
    for s in subs:
        n = 0
        while n < 500:
            n += s.next_batch(60).count
        assert n == 500
    assert finish(pub)[0] == 0
    for s in subs:
        s.close()
