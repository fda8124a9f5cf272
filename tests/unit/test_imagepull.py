"""The agent's image pull decisions and the words of their events."""

from __future__ import annotations

import grpc

from kybernetes.agent.imagepull import (
    effective_policy,
    go_duration,
    never_pull_message,
    pulled_message,
    rpc_error,
    should_pull,
)


def test_default_policy_follows_the_tag():
    assert effective_policy("busybox", "") == "Always"
    assert effective_policy("busybox:latest", "") == "Always"
    assert effective_policy("127.0.0.1:5000/kyb/busybox", "") == "Always"
    assert effective_policy("busybox:1.35", "") == "IfNotPresent"
    assert effective_policy("busybox@sha256:abc", "") == "IfNotPresent"
    assert effective_policy("busybox:1.35", "Never") == "Never"


def test_should_pull():
    assert should_pull("Always", True) and should_pull("Always", False)
    assert not should_pull("IfNotPresent", True) and should_pull("IfNotPresent", False)
    assert not should_pull("Never", False) and not should_pull("Never", True)


def test_go_durations():
    assert go_duration(0.3134) == "313ms"
    assert go_duration(1.594) == "1.594s"
    assert go_duration(2.0) == "2s"
    assert go_duration(62.5) == "1m2.5s"
    assert go_duration(3725) == "1h2m5s"


def test_messages_as_the_kubelets():
    assert pulled_message("busybox:1.35", 0.796, 1.594, 4269694) == (
        'Successfully pulled image "busybox:1.35" in 796ms (1.594s including waiting). Image size: 4269694 bytes.')
    assert never_pull_message("x:1") == 'Container image "x:1" is not present with pull policy of Never'
    assert rpc_error(grpc.StatusCode.NOT_FOUND, "gone") == "rpc error: code = NotFound desc = gone"
    assert rpc_error(grpc.StatusCode.UNKNOWN, "no runtime") == "rpc error: code = Unknown desc = no runtime"


def test_normalized_names_as_containerd_shows_them():
    from kybernetes.agent.imagepull import normalized_name

    assert normalized_name("busybox:1.35") == "docker.io/library/busybox:1.35"
    assert normalized_name("busybox") == "docker.io/library/busybox:latest"
    assert normalized_name("foo/bar") == "docker.io/foo/bar:latest"
    assert normalized_name("127.0.0.1:5000/kyb/busybox:v1") == "127.0.0.1:5000/kyb/busybox:v1"
    assert normalized_name("localhost/x") == "localhost/x:latest"
    assert normalized_name("busybox@sha256:ab") == "docker.io/library/busybox@sha256:ab"


def test_imported_images_are_named_by_their_repository_digest_too(tmp_path):
    from kybernetes.agent.images import ETC_FILES, import_args, repository, write_image

    assert repository("127.0.0.1:5000/kyb/busybox:v1") == "127.0.0.1:5000/kyb/busybox"
    assert repository("docker.io/library/busybox@sha256:ab") == "docker.io/library/busybox"
    layer = ETC_FILES["etc/hosts"].encode()
    path = str(tmp_path / "one.tar")
    write_image(path, ["docker.io/library/busybox:1.35", "docker.io/library/busybox:latest"], {}, layer)
    assert import_args(path) == ["--base-name", "docker.io/library/busybox", "--digests"]
    write_image(path, ["docker.io/library/busybox:1.35", "registry.k8s.io/pause:3.10"], {}, layer)
    assert import_args(path) == []
    assert import_args(str(tmp_path / "absent.tar")) == []
