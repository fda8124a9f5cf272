"""The CSR signer's decisions and certificates, without a server."""

from __future__ import annotations

import base64
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kybernetes.controllers.csrsigning import Fail, Sign, decide, failed_status, issue, validity

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _csr(usages: list[str], conditions: list[dict] | None = None, signer: str = "kubernetes.io/kube-apiserver-client",
         expiration: int | None = 3600) -> dict:
    key = ec.generate_private_key(ec.SECP256R1())
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "carol"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "team")]))
    request = request.add_extension(x509.SubjectAlternativeName([x509.DNSName("carol.example.com")]), critical=False)
    pem = request.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    spec = {"request": base64.b64encode(pem).decode(), "signerName": signer, "usages": usages}
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    return {"metadata": {"name": "carol"}, "spec": spec, "status": {"conditions": conditions or []}}


APPROVED = [{"type": "Approved", "status": "True"}]
CLIENT = ["digital signature", "key encipherment", "client auth"]


def test_only_approved_unissued_requests_for_this_signer_are_signed() -> None:
    assert decide(_csr(CLIENT)) is None  # pending
    assert decide(_csr(CLIENT, APPROVED, signer="example.com/other")) is None
    assert decide(_csr(CLIENT, [*APPROVED, {"type": "Failed", "status": "True"}])) is None
    assert decide(_csr(CLIENT, [{"type": "Denied", "status": "True"}])) is None
    issued = _csr(CLIENT, APPROVED)
    issued["status"]["certificate"] = "Zm9v"
    assert decide(issued) is None
    assert decide(_csr(CLIENT, APPROVED)) == Sign()


def test_usages_a_client_certificate_cannot_carry_fail_the_request() -> None:
    assert decide(_csr(["server auth", "client auth"], APPROVED)) == Fail(
        "SignerValidationFailure", "invalid usage for client certificate: server auth")
    missing = decide(_csr(["digital signature"], APPROVED))
    assert isinstance(missing, Fail) and "client auth" in missing.message
    status = failed_status(_csr(["server auth"], APPROVED), Fail("SignerValidationFailure", "no"), NOW)
    assert [c["type"] for c in status["conditions"]] == ["Approved", "Failed"]
    assert status["conditions"][1]["lastTransitionTime"] == "2026-06-01T12:00:00Z"


def test_validity_is_backdated_and_capped() -> None:
    far = NOW + dt.timedelta(days=3650)
    before, after = validity(NOW, 3600, dt.timedelta(days=365), far)
    assert before == NOW - dt.timedelta(minutes=5) and after == NOW + dt.timedelta(hours=1)
    before, after = validity(NOW, None, dt.timedelta(days=365), far)
    assert after - before == dt.timedelta(days=365)  # long-lived: the end moves back with the start
    _, after = validity(NOW, 10 ** 9, dt.timedelta(days=365), far)
    assert after == NOW - dt.timedelta(minutes=5) + dt.timedelta(days=365)
    _, after = validity(NOW, None, dt.timedelta(days=365), NOW + dt.timedelta(days=2))
    assert after == NOW + dt.timedelta(days=2)  # never past the CA


def test_the_certificate_carries_the_request_and_is_signed_by_the_ca() -> None:
    ca_cert, ca_key = _ca()
    cert = x509.load_pem_x509_certificate(issue(_csr(CLIENT, APPROVED), ca_cert, ca_key, NOW))
    assert cert.issuer == ca_cert.subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "carol"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "team"
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH])
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["carol.example.com"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca_cert)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(hours=1, minutes=5)
