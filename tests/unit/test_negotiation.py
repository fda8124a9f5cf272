"""Response negotiation from `Accept` (JSON, Table, protobuf, 406) and the framing of
protobuf LIST bodies written in pieces."""

from __future__ import annotations

import orjson
import pytest

from kybernetes.api import protobuf as pb
from kybernetes.api.errors import ApiError
from kybernetes.apiserver import codec

PROTO = "application/vnd.kubernetes.protobuf"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.mark.parametrize("accept,protobuf_ok,expected", [
    ("", True, codec.JSON_OUTPUT),
    ("application/json", True, codec.JSON_OUTPUT),
    ("*/*", True, codec.JSON_OUTPUT),  # JSON is the server's first type
    ("application/yaml", True, codec.JSON_OUTPUT),
    (PROTO, True, codec.Output(protobuf=True, json_fallback=False)),
    (f"{PROTO},application/json", True, codec.Output(protobuf=True, json_fallback=True)),
    (f"{PROTO}, */*", True, codec.Output(protobuf=True, json_fallback=True)),
    (f"{PROTO};stream=watch", True, codec.Output(protobuf=True, json_fallback=False)),
    # The first acceptable clause wins; q-values reorder.
    (f"application/json,{PROTO}", True, codec.JSON_OUTPUT),
    (f"application/json;q=0.5,{PROTO}", True, codec.Output(protobuf=True, json_fallback=True)),
    # A custom resource (or a kind without a table) skips protobuf clauses.
    (f"{PROTO},application/json", False, codec.JSON_OUTPUT),
    # Tables are JSON only: a protobuf Table clause is skipped.
    (f"{PROTO};as=Table;v=v1;g=meta.k8s.io,{TABLE}", True, codec.TABLE_OUTPUT),
    (f"{TABLE},application/json", True, codec.TABLE_OUTPUT),
    # Metadata-only answers come in protobuf too, for custom resources as well.
    (f"{PROTO};as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json", False,
     codec.Output(protobuf=True, partial="PartialObjectMetadataList", partial_version="meta.k8s.io/v1")),
    (f"{PROTO};as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1,application/json;as=PartialObjectMetadata;"
     "g=meta.k8s.io;v=v1beta1", True,
     codec.Output(partial="PartialObjectMetadata", partial_version="meta.k8s.io/v1beta1")),
    ("application/json;as=PartialObjectMetadata;g=other;v=v1,application/json", True, codec.JSON_OUTPUT),
    (f"{PROTO};stream=other,application/json", True, codec.JSON_OUTPUT),
])
def test_negotiate_output(accept: str, protobuf_ok: bool, expected: codec.Output) -> None:
    assert codec.negotiate_output(accept, protobuf_ok) == expected


@pytest.mark.parametrize("accept,protobuf_ok", [
    (PROTO, False),
    ("text/html", True),
    (f"{PROTO};as=Table;v=v1;g=meta.k8s.io", True),
    ("application/yaml;stream=watch", True),
])
def test_not_acceptable(accept: str, protobuf_ok: bool) -> None:
    with pytest.raises(ApiError) as e:
        codec.negotiate_output(accept, protobuf_ok)
    assert e.value.code == 406
    assert e.value.message == ("only the following media types are accepted: application/json, "
                               "application/yaml, application/vnd.kubernetes.protobuf")


@pytest.mark.parametrize("accept,expected", [
    ("", False),
    ("application/json", False),
    (PROTO, True),
    (f"{PROTO},application/json", True),
    # Errors allow no conversion: a Table clause is passed over.
    (f"{PROTO};as=Table;v=v1;g=meta.k8s.io,application/json", False),
    (f"{TABLE},{PROTO}", True),
])
def test_error_encoding(accept: str, expected: bool) -> None:
    assert codec.error_wants_protobuf(accept) is expected
    status = ApiError.not_found("", "configmaps", "nope").status()
    body, content_type = codec.encode_status(status, accept)
    if expected:
        assert content_type == PROTO
        assert pb.decode_k8s_protobuf(body) == status
    else:
        assert content_type == "application/json"
        assert orjson.loads(body) == status


def test_refuse_protobuf_body() -> None:
    codec.refuse_protobuf_body("application/json")
    with pytest.raises(ApiError) as e:
        codec.refuse_protobuf_body(PROTO)
    assert e.value.code == 415


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 1 << 21])
def test_field_size(n: int) -> None:
    assert codec.field_size(n) == 1 + len(codec.varint(n)) + n


def test_streamed_list_matches_whole_list() -> None:
    items = [pb.encode_object_message({"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": f"cm{i}", "namespace": "d"},
                                       "data": {"k": "v" * (i * 40)}}) for i in range(6)]
    meta = {"resourceVersion": "42", "continue": "tok"}
    size = sum(codec.field_size(len(m)) for m in items)
    head = codec.pb_list_head("v1", "ConfigMapList", pb.encode_list_meta(meta), size)
    parts = [head]
    for m in items:
        parts += (codec.PB_ITEM_TAG, codec.varint(len(m)), m)
    parts.append(codec.PB_TAIL)
    assert b"".join(parts) == pb.list_body("v1", "ConfigMapList", meta, items)
