"""A small admission webhook server for tests and benchmarks (aiohttp, HTTPS).

`POST /mutate` labels every object it sees (`webhook.kyb.test/seen=yes`) with a JSON
patch and warns that it did; `POST /validate` refuses an object named as `--deny-name`
says and allows anything else; `POST /allow` allows everything and says nothing.

    python -m kybernetes.testing.webhook_server --cert C --key K [--port 8443] [--deny-name N]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import os
import ssl
from typing import Any

import orjson
from aiohttp import web

SEEN_LABEL = "webhook.kyb.test/seen"
MUTATE_WARNING = "the test webhook labelled this object"


def _review(request: dict[str, Any], response: dict[str, Any]) -> web.Response:
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": (request.get("request") or {}).get("uid", ""), **response}}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def mutate(req: web.Request) -> web.Response:
    review = orjson.loads(await req.read())
    obj = (review.get("request") or {}).get("object") or {}
    meta = obj.get("metadata") or {}
    ops: list[dict[str, Any]] = []
    if not meta.get("labels"):
        ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
    ops.append({"op": "add", "path": "/metadata/labels/" + SEEN_LABEL.replace("/", "~1"), "value": "yes"})
    return _review(review, {"allowed": True, "patchType": "JSONPatch",
                            "patch": base64.b64encode(orjson.dumps(ops)).decode(),
                            "warnings": [MUTATE_WARNING]})


def validator(deny_name: str) -> Any:
    async def validate(req: web.Request) -> web.Response:
        review = orjson.loads(await req.read())
        request = review.get("request") or {}
        name = request.get("name") or ((request.get("object") or {}).get("metadata") or {}).get("name")
        if name == deny_name:
            return _review(review, {"allowed": False, "status": {
                "code": 403, "reason": "Forbidden", "message": f"the name {deny_name!r} is reserved"}})
        return _review(review, {"allowed": True, "auditAnnotations": {"checked": "yes"}})
    return validate


async def allow(req: web.Request) -> web.Response:
    return _review(orjson.loads(await req.read()), {"allowed": True})


def app(deny_name: str) -> web.Application:
    application = web.Application()
    application.router.add_post("/mutate", mutate)
    application.router.add_post("/validate", validator(deny_name))
    application.router.add_post("/allow", allow)
    return application


def write_tls(directory: str, dns_names: list[str], ips: tuple[str, ...] = ()) -> tuple[bytes, str, str]:
    """A fresh CA and a serving certificate it signed for `dns_names`/`ips`, written to
    `directory`: (the CA's PEM for a caBundle, certificate path, key path)."""
    from cryptography import x509  # noqa: PLC0415 - the server itself does not need it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else "webhook")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(key_path, 0o644)  # read by the pod's process, whoever it runs as
    return ca.public_bytes(serialization.Encoding.PEM), cert_path, key_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--deny-name", default="forbidden-name")
    args = parser.parse_args()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    web.run_app(app(args.deny_name), host=args.host, port=args.port, ssl_context=tls, access_log=None,
                print=lambda *_: print("listening", flush=True))


if __name__ == "__main__":
    main()
