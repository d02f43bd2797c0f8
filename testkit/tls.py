"""Throw-away TLS material for servers started by benchmarks and harnesses (made, never committed).

``make_tls_files(directory)`` makes a CA (trustme), a server certificate for 127.0.0.1 and a client
certificate, and writes them the way both Apache ZooKeeper 3.8 and trizab read them: the server's
key and chain in a JKS key store, the CA in a JKS trust store (as kazoo's harness does), the
client's certificate, key and the CA as PEM files for Python clients, and the client's key and
certificate in a JKS key store too, for Java clients.  RSA keys, because
ZooKeeper's defaults and every Java version take them.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import attrs

__all__ = ["TlsFiles", "make_tls_files"]

PASSWORD = "testpass"


@attrs.frozen
class TlsFiles:
    ca: Path
    client_cert: Path
    client_key: Path
    keystore: Path
    truststore: Path
    client_keystore: Path  # the client's key and certificate as JKS, for Java clients
    password: str = attrs.field(default=PASSWORD, repr=False)

    def server_lines(self, secure_port: int) -> list[str]:
        """zoo.cfg lines for a TLS client port (ZooKeeper needs its Netty connection factory)."""
        return [
            f"secureClientPort={secure_port}",
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
            f"ssl.keyStore.location={self.keystore}",
            f"ssl.keyStore.password={self.password}",
            f"ssl.trustStore.location={self.truststore}",
            f"ssl.trustStore.password={self.password}",
        ]

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(str(self.ca))
        ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def make_tls_files(directory: Path, password: str = PASSWORD) -> TlsFiles:
    import jks
    import trustme
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True)
    rsa = trustme.KeyType.RSA
    ca = trustme.CA(key_type=rsa)
    server = ca.issue_cert("127.0.0.1", "localhost", common_name="server", key_type=rsa)
    client = ca.issue_cert("client.example", common_name="client", key_type=rsa)
    files = TlsFiles(
        ca=directory / "ca.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        keystore=directory / "keystore.jks",
        truststore=directory / "truststore.jks",
        client_keystore=directory / "client.jks",
        password=password,
    )
    ca.cert_pem.write_to_path(str(files.ca))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    der = serialization.Encoding.DER
    for leaf, alias, path in ((server, "server", files.keystore), (client, "client", files.client_keystore)):
        key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
        pkcs8 = key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        chain = [ssl.PEM_cert_to_DER_cert(b.bytes().decode()) for b in leaf.cert_chain_pems]
        jks.KeyStore.new("jks", [jks.PrivateKeyEntry.new(alias, chain, pkcs8, "pkcs8")]).save(
            str(path), password
        )
    ca_der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())
    jks.KeyStore.new("jks", [jks.TrustedCertEntry.new("ca", ca_der)]).save(str(files.truststore), password)
    return files
