"""CEL libraries side by side: run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/cel_bench.py [--rounds 2000] [--server] [--creates 1500]

Compares the CEL runtimes on PyPI for what admission asks of them: each expression is
compiled once and evaluated many times over a Deployment-sized object (the sample
`deployment-web.json`, or a stand-in), median µs per evaluation including the
conversion of the request's dict into the runtime's values. Then a correctness table
of a dozen expressions (macros, has(), optional fields, int/uint/double, timestamps,
string extension functions) with the value each library gives against the value the
CEL spec gives. cel-python (`celpy`, pure Python) is measured when installed; the one
the project uses is `cel-expr-python` (the CEL C++ runtime), through kybernetes.api.cel.

With `--server`: a real `kyb server`, ConfigMap creates/s (16 clients, admin token)
with no policy and with one ValidatingAdmissionPolicy + binding (Deny) matching every
ConfigMap create, alternating `--server-rounds` times, each run in a fresh namespace.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

SAMPLE = pathlib.Path("/work/shared/compat/samples/deployment-web.json")

SPEED = [
    "object.spec.replicas <= 5",
    "has(object.spec.template.spec.containers) && object.spec.template.spec.containers.all(c, "
    "has(c.image) && !c.image.endsWith(':latest'))",
    "object.metadata.name.lowerAscii().startsWith('web') && object.metadata.name.split('-').size() < 4",
]

# (expression, the value the CEL spec gives; "error" for an evaluation error)
CORRECT: list[tuple[str, Any]] = [
    ("object.spec.replicas <= 5", True),
    ("has(object.spec.paused)", False),
    ("object.spec.template.spec.containers.exists(c, c.name == 'nginx')", True),
    ("[1, 2, 3].map(x, x * 2).filter(x, x > 2)", [4, 6]),
    ("[1, 2, 3].exists_one(x, x > 2)", True),
    ("object.?spec.?paused.orValue(false)", False),
    ("1u + 2u", 3),
    ("3.0 / 2.0", 1.5),
    ("7 / 2", 3),
    ("dyn(1) == 1.0", True),
    ("timestamp('2024-01-01T00:00:00Z') + duration('1h') > timestamp('2024-01-01T00:30:00Z')", True),
    ("'Hello'.lowerAscii() + 'x'.upperAscii()", "helloX"),
    ("'a,b,c'.split(',').join('-')", "a-b-c"),
    ("'  x '.trim()", "x"),
    ("'abc'.replace('b', 'z')", "azc"),
    ("object.spec.nothing", "error"),
    ("1 / 0", "error"),
]


def deployment() -> dict[str, Any]:
    if SAMPLE.exists():
        return json.loads(SAMPLE.read_text())
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default",
            "labels": {"app": "web"}}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}}}


def median_us(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


class CelExprPython:
    name = "cel-expr-python (our kybernetes.api.cel)"

    def __init__(self) -> None:
        from kybernetes.api import cel
        self.cel = cel
        self.env = cel.new_env(("object",))

    def compile(self, text: str) -> Any:
        return self.cel.compile_expression(self.env, text)

    def evaluate(self, program: Any, obj: dict[str, Any]) -> Any:
        return self.cel.evaluate(program, {"object": obj})


class CelPy:
    name = "cel-python (celpy)"

    def __init__(self) -> None:
        import celpy
        self.celpy = celpy
        self.env = celpy.Environment()

    def compile(self, text: str) -> Any:
        return self.env.program(self.env.compile(text))

    def evaluate(self, program: Any, obj: dict[str, Any]) -> Any:
        result = program.evaluate({"object": self.celpy.json_to_cel(obj)})
        if isinstance(result, Exception):
            raise result
        return result


def plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


POLICY = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
          "metadata": {"name": "bench-policy"},
          "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": [
              {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
               "resources": ["configmaps"]}]},
              "validations": [{"expression": "has(object.metadata.labels) && object.metadata.labels.all(k, "
                                             "k.size() < 64) && size(object.data.payload) < 4096",
                               "message": "too big"}]}}
BINDING = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
           "metadata": {"name": "bench-binding"},
           "spec": {"policyName": "bench-policy", "validationActions": ["Deny"]}}


async def server_bench(creates: int, rounds: int) -> None:
    import asyncio

    from api_bench import Client, bench_creates, ensure_ns, server_cpu

    from kybernetes.testing.cluster import ServerProcess
    server = ServerProcess()
    server.start(60)
    vap = "/apis/admissionregistration.k8s.io/v1"
    try:
        async with Client(server) as c:
            results: dict[str, list[float]] = {"none": [], "policy": []}
            cpu: dict[str, list[float]] = {"none": [], "policy": []}
            pid = server.proc.pid if server.proc is not None else 0
            for rnd in range(rounds):
                for mode in ("none", "policy"):
                    if mode == "policy":
                        await c.post(f"{vap}/validatingadmissionpolicies", POLICY)
                        await c.post(f"{vap}/validatingadmissionpolicybindings", BINDING)
                        await asyncio.sleep(0.5)
                    ns = f"cel-{mode}-{rnd}"
                    await ensure_ns(c, ns)
                    if mode == "policy":  # the policy is in force: an object it refuses is refused
                        big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "labels": {}},
                               "data": {"payload": "x" * 5000}}
                        status = await c.post(f"/api/v1/namespaces/{ns}/configmaps", big)
                        assert status == 422, status
                    cpu0 = server_cpu(pid)
                    rate = await bench_creates(c, ns, creates, 16)
                    cpu[mode].append((server_cpu(pid) - cpu0) * 1000 / creates)
                    results[mode].append(rate)
                    print(f"round {rnd + 1} {mode}: {rate:.0f} creates/s, server CPU {cpu[mode][-1]:.3f} ms per create")
                    if mode == "policy":
                        assert c.session is not None
                        for path in (f"{vap}/validatingadmissionpolicybindings/bench-binding",
                                     f"{vap}/validatingadmissionpolicies/bench-policy"):
                            async with c.session.delete(c.base + path) as r:
                                await r.read()
                        await asyncio.sleep(0.5)
            none, one = statistics.median(results["none"]), statistics.median(results["policy"])
            print(f"median creates/s: no policy {none:.0f}, one policy {one:.0f} ({(none - one) / none * 100:+.1f}% slower)")
            none, one = statistics.median(cpu["none"]), statistics.median(cpu["policy"])
            print(f"median server CPU per create: no policy {none:.3f} ms, one policy {one:.3f} ms "
                  f"({(one - none) / none * 100:+.1f}%)")
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--server", action="store_true")
    parser.add_argument("--creates", type=int, default=1500)
    parser.add_argument("--server-rounds", type=int, default=3)
    args = parser.parse_args()
    if args.server:
        import asyncio
        asyncio.run(server_bench(args.creates, args.server_rounds))
        return
    logging.disable(logging.CRITICAL)  # celpy logs every evaluation error with its whole activation
    obj = deployment()
    libs: list[Any] = [CelExprPython()]
    try:
        libs.append(CelPy())
    except ImportError:
        print("celpy not installed: only cel-expr-python measured")
    for lib in libs:
        print(f"\n== {lib.name}")
        for text in SPEED:
            program = lib.compile(text)
            try:
                lib.evaluate(program, obj)
            except Exception as e:  # noqa: BLE001 - a library without the function
                print(f"  unsupported: {text[:70]}: {str(e).splitlines()[0][:80]}")
                continue
            us = median_us(lambda p=program, lib=lib: lib.evaluate(p, obj), args.rounds)
            t = time.perf_counter()
            lib.compile(text)
            compile_us = (time.perf_counter() - t) * 1e6
            print(f"  {us:8.1f} µs/eval  (compile {compile_us:7.0f} µs)  {text[:70]}")
        right = 0
        for text, want in CORRECT:
            try:
                got: Any = plain(lib.evaluate(lib.compile(text), obj))
            except Exception as e:  # noqa: BLE001 - the table reports any failure
                got = "error" if want == "error" else f"error: {str(e).splitlines()[0][:60]}"
            ok = got == want
            right += ok
            if not ok:
                print(f"  WRONG {text!r}: got {got!r}, want {want!r}")
        print(f"  correct: {right}/{len(CORRECT)}")


if __name__ == "__main__":
    main()
