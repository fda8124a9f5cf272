"""Protobuf encoding cost per object, next to orjson for the same dict.

    .venv/bin/python benchmarks/protobuf_encode_bench.py [--samples DIR] [--rounds 20000]

Encodes every wire sample (kube-apiserver 1.28 JSON) our tables know, in process, and
prints microseconds per `encode_object_message` and per `orjson.dumps`, plus sizes.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import orjson

from kybernetes.api.protobuf import can_encode, encode_k8s_protobuf, encode_object_message


def _per_call_us(fn, arg, rounds: int) -> float:  # noqa: ANN001 - any one-argument callable
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            fn(arg)
        best = min(best, (time.perf_counter() - start) / rounds * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", default="/work/shared/compat/samples/wire-1.28")
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'sample':32} {'pb µs':>8} {'json µs':>8} {'pb B':>7} {'json B':>7}")
    for path in sorted(pathlib.Path(args.samples).glob("*.json")):
        obj = json.loads(path.read_text())
        if not isinstance(obj, dict) or not can_encode(obj.get("apiVersion", ""), obj.get("kind", "")):
            continue
        encode_object_message(obj)  # compile the encoders outside the timing
        pb = _per_call_us(encode_object_message, obj, args.rounds)
        js = _per_call_us(orjson.dumps, obj, args.rounds)
        print(f"{path.stem:32} {pb:8.1f} {js:8.2f} {len(encode_k8s_protobuf(obj)):7} {len(orjson.dumps(obj)):7}")


if __name__ == "__main__":
    main()
