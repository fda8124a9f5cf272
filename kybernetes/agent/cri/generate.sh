#!/bin/sh
# Regenerates the Python modules for runtime.proto. The generated files,
# runtime_pb2.py and runtime_pb2_grpc.py, are committed; this is the command
# that made them (grpcio-tools from the project's .venv). No .pyi is made:
# ruff excludes only runtime_pb2*.py.
#
# The proto is compiled with the repository root as the include path, so it is
# known as kybernetes/agent/cri/runtime.proto and the gRPC module imports its
# messages as `from kybernetes.agent.cri import runtime_pb2`.
#
# Run from anywhere:  sh kybernetes/agent/cri/generate.sh
set -eu

root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"

.venv/bin/python -m grpc_tools.protoc \
    -I . \
    --python_out=. \
    --grpc_python_out=. \
    kybernetes/agent/cri/runtime.proto
