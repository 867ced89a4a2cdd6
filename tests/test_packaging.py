"""The wheel, installed into a fresh virtual environment, works on its own.

A missing module, package data (py.typed) or entry point fails here rather
than on a user's machine. The venv sees the machine's packages for the
dependencies (so nothing is downloaded), but the SDK itself comes from the
wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SMOKE = """
import importlib.metadata as md, pathlib, sys
import anyio
import activatepro_async
from activatepro_async import AsyncClient, User
from activatepro_async.emulator import Emulator

where = pathlib.Path(activatepro_async.__file__).resolve()
assert pathlib.Path(sys.prefix).resolve() in where.parents, where
assert (where.parent / "py.typed").exists()
plugins = {ep.name: ep.value for ep in md.entry_points(group="pytest11")}
assert plugins.get("activatepro") == "activatepro_async.pytest_plugin", plugins
scripts = {ep.name: ep.value for ep in md.entry_points(group="console_scripts")}
assert scripts.get("activatepro") == "activatepro_async.cli:main", scripts

async def main():
    emulator = Emulator(api_keys=["k"])
    async with AsyncClient("k", transport=emulator.transport()) as client:
        accepted = await client.upsert_user(User("1", "one@example.com"))
        status = await client.wait_for_tracking(accepted.tracking_id, poll_interval=0.01)
        assert status.success == 1, status
        assert (await client.get_user("1")).email == "one@example.com"
    print("smoke ok")

anyio.run(main)
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist, and a wheel built from that sdist (as ``python -m build`` does)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    return out


@pytest.mark.slow
def test_the_sdist_holds_what_a_rebuild_needs(dist: Path) -> None:
    (sdist,) = dist.glob("activatepro_async-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("pyproject.toml", "README.md", "src/activatepro_async/py.typed"):
        assert needed in names
    assert "src/activatepro_async/emulator/__init__.py" in names


@pytest.mark.slow
def test_the_wheel_installs_and_runs_in_a_fresh_venv(tmp_path: Path, dist: Path) -> None:
    (wheel,) = dist.glob("activatepro_async-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "activatepro_async/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    result = subprocess.run(
        [str(python), "-c", SMOKE],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=clean_env,
    )
    assert result.returncode == 0, result.stderr
    assert "smoke ok" in result.stdout
    cli = env_dir / "bin" / "activatepro"
    assert cli.exists()
