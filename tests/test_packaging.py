"""The wheel, installed into a fresh virtual environment, works on its own.

A missing module, package data (py.typed), entry point or dependency fails here
rather than on a user's machine. The venv sees nothing of the interpreter that
runs the suite (a venv, a bare interpreter, a ``--system-site-packages`` venv):
the SDK comes from the wheel and its dependencies from the package index, as
``pip install activatepro-async`` gets them (pip's cache makes a rerun fast).
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
import importlib.metadata as md, pathlib, re, sys
import anyio
import activatepro_async
from activatepro_async import AsyncClient, User
from activatepro_async.emulator import Emulator

prefix = pathlib.Path(sys.prefix).resolve()
where = pathlib.Path(activatepro_async.__file__).resolve()
assert prefix in where.parents, where
# Every dependency was installed with the wheel, none is borrowed from elsewhere.
requires = md.requires("activatepro-async") or []
dependencies = [re.match(r"[\\w.-]+", r)[0] for r in requires if "extra ==" not in r]
assert dependencies, requires
for name in dependencies:
    home = pathlib.Path(md.distribution(name).locate_file("")).resolve()
    assert home == prefix or prefix in home.parents, (name, home)
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
def test_the_wheel_installs_with_its_dependencies_and_runs_in_a_fresh_venv(
    tmp_path: Path, dist: Path
) -> None:
    (wheel,) = dist.glob("activatepro_async-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "activatepro_async/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]

    env_dir = tmp_path / "venv"
    # Made from the base interpreter (also when the suite runs in a venv), with
    # its own pip: nothing of the suite's interpreter is seen or used.
    venv.EnvBuilder(system_site_packages=False, with_pip=True).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env,
    )
    assert install.returncode == 0, f"pip install of the wheel failed:\n{install.stderr}"
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
    assert (bin_dir / ("activatepro.exe" if os.name == "nt" else "activatepro")).exists()
