"""Install the `astropt` package with only the dependencies it imports at run time.

astropt 2.0.9 declares wandb, torchvision, pre-commit, slack-sdk and others that its model code never
imports; installed plainly it pulls a CUDA torchvision and a `packaging` release that breaks Snakemake's
pin. We fetch the released wheel, rewrite its declared requirements to what `astropt.model` and
`astropt.model_utils` import (torch, numpy, loralib, huggingface-hub), and install that, so `pip check`
stays clean. The package's code is installed unchanged.

    python tools/install_astropt.py [--version 2.0.9]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

RUNTIME_REQUIRES = ["torch", "numpy", "loralib", "huggingface-hub"]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest},{len(data)}"


def trim_wheel(src: Path, dst: Path) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        names = zin.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        lines = zin.read(meta_name).decode().split("\n")
        body_at = lines.index("") if "" in lines else len(lines)
        head = [ln for ln in lines[:body_at] if not ln.startswith("Requires-Dist:")]
        head += [f"Requires-Dist: {req}" for req in RUNTIME_REQUIRES]
        metadata = "\n".join(head + lines[body_at:]).encode()
        record = []
        for line in zin.read(record_name).decode().splitlines():
            path = line.split(",")[0]
            record.append(f"{path},{_record_hash(metadata)}" if path == meta_name else line)
        for name in names:
            if name == meta_name:
                zout.writestr(name, metadata)
            elif name == record_name:
                zout.writestr(name, "\n".join(record) + "\n")
            else:
                zout.writestr(zin.getinfo(name), zin.read(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version", default="2.0.9")
    args = parser.parse_args()
    pip = [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(pip + ["download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", str(tmp),
                              f"astropt=={args.version}"], check=True)
        wheel = next(tmp.glob("astropt-*.whl"))
        trimmed = tmp / "trimmed" / wheel.name
        trimmed.parent.mkdir()
        trim_wheel(wheel, trimmed)
        subprocess.run(pip + ["install", "--quiet", "--no-deps", "--force-reinstall", str(trimmed)], check=True)


if __name__ == "__main__":
    main()
