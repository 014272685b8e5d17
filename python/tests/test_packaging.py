"""The distribution: `pip install` from a checkout with no network, typed (`py.typed`, mypy
--strict when mypy is installed), byte-compiles, standard library only at runtime."""
from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import PYTHON_DIR

SRC = PYTHON_DIR / "src" / "progress_tracker"
OPTIONAL = {"celery"}  # imported only by progress_tracker.celery


def offline_env() -> dict:
    """pip with no index at all and no machine-wide configuration: nothing may be downloaded."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def test_pip_install_from_a_checkout_works_offline(tmp_path: Path) -> None:
    if importlib.util.find_spec("venv") is None or importlib.util.find_spec("ensurepip") is None:
        pytest.fail("python3-venv is not installed (npm test installs it: apt-get install python3-venv)")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PYTHON_DIR / name, checkout / name)
    shutil.copytree(PYTHON_DIR / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = tmp_path / "venv"
    # The system site packages provide the build backend (Debian's setuptools and wheel).
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-build-isolation", "--no-deps", str(checkout)],
        env=offline_env(), capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    probe = (
        "import importlib.metadata as m, importlib.resources as r, progress_tracker as p;"
        "print(p.__version__, m.version('progress-tracker-kit'), r.files('progress_tracker').joinpath('py.typed').is_file(),"
        " m.requires('progress-tracker-kit') and [x for x in m.requires('progress-tracker-kit') if 'extra' not in x], p.__file__)"
    )
    out = subprocess.run([str(python), "-c", probe], cwd=str(tmp_path), capture_output=True, text=True, env=offline_env())
    assert out.returncode == 0, out.stderr
    version, dist_version, typed, runtime_requires, location = out.stdout.split(" ", 4)
    assert version == dist_version == "0.1.0"
    assert typed == "True", "py.typed ships"
    assert runtime_requires in ("None", "[]"), "no runtime dependencies"
    assert str(venv) in location, "imported from the installed copy"


def test_standard_library_only_at_runtime() -> None:
    stdlib = set(sys.stdlib_module_names)
    for path in SRC.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                allowed = stdlib | ({"celery"} if path.name == "celery.py" else set())
                assert top in allowed, f"{path.name} imports {name}: the SDK is standard library only"


def test_byte_compiles() -> None:
    done = subprocess.run([sys.executable, "-m", "compileall", "-q", "-d", "x", str(SRC), str(PYTHON_DIR / "examples")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPYCACHEPREFIX": tempfile.mkdtemp()})
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed (npm test installs it: apt-get install python3-mypy)")
    cache = tempfile.mkdtemp(prefix="pt-mypy-")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--python-version", "3.9", "--cache-dir", cache, str(SRC),
             str(PYTHON_DIR / "examples" / "fastapi_pipeline.py")],
            capture_output=True, text=True, cwd=str(PYTHON_DIR), env={**os.environ, "MYPYPATH": str(PYTHON_DIR / "src")},
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert done.returncode == 0, done.stdout + done.stderr
