#!/usr/bin/env python3
"""Build the project's offline container images (busybox and the pod sandbox image) as
OCI image-layout tarballs: see kybernetes/agent/images.py.

    python3 scripts/build-images.py OUT_DIR [--busybox /bin/busybox]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kybernetes.agent.images import IMAGES, build_all  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--busybox", default="/bin/busybox", help="a statically linked busybox")
    args = ap.parse_args()
    for file, digest in build_all(args.out_dir, args.busybox).items():
        print(file, digest, " ".join(IMAGES[file.removesuffix(".tar")]["names"]))


if __name__ == "__main__":
    main()
