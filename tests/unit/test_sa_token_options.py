"""The API server's ServiceAccount token options: upstream's extended expiration of the
kubelet's pod tokens, the issuers (the first signs, all are accepted), the API
audiences, the maximum expiration, and the `kyb server` flags that set them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes.api import serviceaccounts as sat
from kybernetes.apiserver import serviceaccounts as srv
from kybernetes.cli.main import main

NOW = 1_800_000_000
YEAR = 365 * 24 * 3600
SA = {"metadata": {"name": "bot", "namespace": "team", "uid": "sa-uid"}}
POD = {"metadata": {"name": "p", "namespace": "team", "uid": "pod-uid"},
       "spec": {"serviceAccountName": "bot", "nodeName": "n1"}}
SECRET = {"metadata": {"name": "s", "namespace": "team", "uid": "secret-uid"}}
WORLD = {("ServiceAccount", "team", "bot"): SA, ("Pod", "team", "p"): POD, ("Secret", "team", "s"): SECRET}
KEY = ec.generate_private_key(ec.SECP256R1())
POD_REF = {"kind": "Pod", "apiVersion": "v1", "name": "p"}


@dataclass
class _Issuer:
    """A TokenIssuer as the server is one: its options, the time, a key."""

    options: sat.TokenOptions

    @property
    def issuer(self) -> str:
        return self.options.issuer

    @property
    def audiences(self) -> list[str]:
        return self.options.audiences

    def lookup(self, kind, namespace, name):
        return WORLD.get((kind, namespace, name))

    def now(self) -> int:
        return NOW

    def sign(self, claims):
        return sat.sign(claims, KEY)


def _request(options: sat.TokenOptions, spec: dict) -> tuple[dict, dict]:
    answer = sat.issue_token(SA, {"spec": spec}, _Issuer(options))
    claims = jwt.decode(answer["status"]["token"], KEY.public_key(), algorithms=["ES256"],
                        options={"verify_aud": False, "verify_exp": False, "verify_iat": False, "verify_nbf": False})
    return answer, claims


def _at(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_kubelets_pod_token_is_good_for_a_year_but_answers_3607_seconds():
    answer, claims = _request(sat.TokenOptions(), {"expirationSeconds": 3607, "boundObjectRef": POD_REF})
    assert claims["exp"] == NOW + YEAR
    assert claims["kubernetes.io"]["warnafter"] == NOW + 3607
    assert answer["status"]["expirationTimestamp"] == _at(NOW + 3607)
    assert answer["spec"]["expirationSeconds"] == 3607


@pytest.mark.parametrize("options, spec", [
    (sat.TokenOptions(extend_expiration=False), {"expirationSeconds": 3607, "boundObjectRef": POD_REF}),
    # Not pod-bound: a Secret, or nothing.
    (sat.TokenOptions(), {"expirationSeconds": 3607,
                          "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s"}}),
    (sat.TokenOptions(), {"expirationSeconds": 3607}),
    # Another life than the magic 3607 s.
    (sat.TokenOptions(), {"expirationSeconds": 3600, "boundObjectRef": POD_REF}),
    # An audience other than the API server's.
    (sat.TokenOptions(), {"expirationSeconds": 3607, "boundObjectRef": POD_REF, "audiences": ["vault"]}),
])
def test_no_extension_otherwise(options, spec):
    answer, claims = _request(options, spec)
    want = spec["expirationSeconds"]
    assert claims["exp"] == NOW + want and "warnafter" not in claims["kubernetes.io"]
    assert answer["status"]["expirationTimestamp"] == _at(NOW + want)


def test_max_expiration_shortens_requests_and_the_extension_still_applies():
    options = sat.TokenOptions(max_expiration=7200)
    answer, claims = _request(options, {"expirationSeconds": 86400})
    assert claims["exp"] == NOW + 7200 and answer["spec"]["expirationSeconds"] == 7200
    assert answer["status"]["expirationTimestamp"] == _at(NOW + 7200)
    # As upstream: the extension is decided after the cap, and may outlive it.
    _, claims = _request(options, {"expirationSeconds": 3607, "boundObjectRef": POD_REF})
    assert claims["exp"] == NOW + YEAR


def test_issuer_and_audiences_of_new_tokens():
    options = sat.TokenOptions(issuers=("https://issuer.example", "https://old.example"))
    answer, claims = _request(options, {})
    assert claims["iss"] == "https://issuer.example" and claims["aud"] == ["https://issuer.example"]
    assert answer["spec"]["audiences"] == ["https://issuer.example"]
    options = sat.TokenOptions(issuers=("https://issuer.example",), api_audiences=("api", "other"))
    _, claims = _request(options, {})
    assert claims["aud"] == ["api", "other"]
    # The extension needs every requested audience to be one of the API server's.
    _, claims = _request(options, {"expirationSeconds": 3607, "boundObjectRef": POD_REF, "audiences": ["other"]})
    assert claims["exp"] == NOW + YEAR


@dataclass
class _Co:
    obj: dict


class _Cache:
    def get(self, key):
        found = {"/registry/core/serviceaccounts/team/bot": SA}.get(key)
        return _Co(found) if found is not None else None


def test_every_issuer_is_accepted_and_only_the_api_audiences(tmp_path):
    srv.ensure_signing_key(str(tmp_path))
    options = sat.TokenOptions(issuers=("https://new.example", "https://old.example"), api_audiences=("api",))
    tokens = srv.ServiceAccountTokens(srv.SigningKeys(str(tmp_path)), _Cache(), options,  # type: ignore[arg-type]
                                      jwks_uri="https://10.0.0.1:6443/openid/v1/jwks", clock=lambda: NOW)

    def token(iss: str, aud: str) -> str:
        return tokens.sign(sat.bound_claims(SA, [aud], 3600, NOW, iss))

    assert tokens.authenticate(token("https://new.example", "api")).username == "system:serviceaccount:team:bot"
    assert tokens.authenticate(token("https://old.example", "api")) is not None
    assert tokens.review(token("https://elsewhere.example", "api")) == "token issuer is not trusted"
    assert tokens.review(token("https://new.example", "https://new.example")) == "token audiences are invalid"
    conf = tokens.openid_configuration()
    assert conf["issuer"] == "https://new.example"
    assert conf["jwks_uri"] == "https://10.0.0.1:6443/openid/v1/jwks"


def test_options_are_checked_as_kube_apiserver_checks_them():
    assert sat.TokenOptions().problems() == []
    assert sat.TokenOptions(issuers=("https://a", "https://b"), max_expiration=3600).problems() == []
    assert sat.TokenOptions(issuers=("not-a-url-but-fine",)).problems() == []
    assert sat.TokenOptions(max_expiration=3599).problems() == [
        "the service-account-max-token-expiration must be between 1 hour and 2^32 seconds"]
    assert sat.TokenOptions(max_expiration=2 ** 32 + 1).problems() != []
    assert sat.TokenOptions(issuers=("https://a", "https://a")).problems() == [
        'service-account-issuer "https://a" is already specified']
    assert sat.TokenOptions(issuers=("",)).problems() == ["service-account-issuer should not be an empty string"]
    assert "was not a valid URL" in sat.TokenOptions(issuers=("https://a b",)).problems()[0]
    assert "was not a valid URL" in sat.TokenOptions(issuers=("1:2",)).problems()[0]
    assert sat.parse_duration_seconds("48h") == 48 * 3600
    assert sat.parse_duration_seconds("1h30m") == 5400
    assert sat.parse_duration_seconds("7200") == 7200
    with pytest.raises(ValueError):
        sat.parse_duration_seconds("soon")


def test_options_round_trip_to_api_workers():
    options = sat.TokenOptions(issuers=("https://a", "https://b"), api_audiences=("x",), max_expiration=7200,
                               extend_expiration=False)
    assert sat.TokenOptions.from_dict(options.to_dict()) == options
    assert sat.TokenOptions.from_dict({}) == sat.TokenOptions()


@pytest.mark.parametrize("args, message", [
    (["--service-account-max-token-expiration", "10m"],
     "the service-account-max-token-expiration must be between 1 hour and 2^32 seconds"),
    (["--service-account-max-token-expiration", "soon"], "invalid duration"),
    (["--service-account-issuer", "https://a", "--service-account-issuer", "https://a"], "is already specified"),
])
def test_kyb_server_refuses_bad_token_flags_before_starting(tmp_path, args, message):
    result = CliRunner().invoke(main, ["server", "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "state.db").exists()
