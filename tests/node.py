"""npm packages for tests that drive real JavaScript clients under Node.js: installed by the
test run (``npm install``, pinned) into a cache directory (``LRS_TEST_CACHE``, default
``~/.cache/lrs-tests``) and reused; Node.js 20 is the machine's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path


def npm_packages(*specs: str) -> Path:
    """``node_modules`` holding the packages ``specs`` (``name@version`` each), installed together
    on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "this test needs Node.js 20 and npm on PATH (Debian: apt-get install nodejs npm)"
    cache = Path(os.environ.get("LRS_TEST_CACHE", Path.home() / ".cache" / "lrs-tests"))
    place = cache / "+".join(spec.replace("@", "").replace("/", "-") for spec in specs)
    wanted = [spec.rpartition("@") for spec in specs]
    manifests = [place / "node_modules" / name / "package.json" for name, _, _ in wanted]
    if not all(m.exists() for m in manifests):
        place.mkdir(parents=True, exist_ok=True)
        (place / "package.json").write_text('{"private": true}\n')
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(place), *specs],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, f"npm install {' '.join(specs)} failed:\n{done.stderr[-3000:]}"
    for manifest, (_, _, version) in zip(manifests, wanted, strict=True):
        assert json.loads(manifest.read_text())["version"] == version
    return place / "node_modules"
