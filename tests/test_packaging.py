"""The built wheel holds the whole package and works outside the repo.

`pip wheel .`, then install that wheel into a fresh venv whose third-party packages come
from this environment's site-packages (a plain `.pth` path line: .pth files *inside* that
folder, such as the editable vae_book finder, are not run, so the repo's vae_book can't leak
in), then import from a folder outside the repo.
"""
import os, subprocess, sys, sysconfig, textwrap, zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "vae_book"
TIMEOUT = 300


def _run(cmd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=TIMEOUT,
                          env=env, **kw)


def _new_setuptools():
    try:
        import setuptools
        return int(setuptools.__version__.split(".")[0]) >= 77  # pyproject: setuptools>=77
    except Exception: return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheelhouse")
    base = [sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "-q", "-w", out]
    # without build isolation when this env can build it (fast, offline); else pip's isolated build
    r = _run(base + ["--no-build-isolation"]) if _new_setuptools() else None
    if r is None or r.returncode:
        r = _run(base)
    assert r.returncode == 0, f"pip wheel failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    wheels = list(out.glob("vae_book-*.whl"))
    assert len(wheels) == 1, f"expected one vae_book wheel, got {wheels}"
    return wheels[0]


def test_wheel_has_every_module_and_subpackage(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    subpkgs = sorted(p.parent.relative_to(ROOT).as_posix() for p in PKG.glob("*/__init__.py"))
    missing = [d for d in subpkgs if f"{d}/__init__.py" not in names]
    assert not missing, f"subpackages missing from the wheel: {missing}"
    modules = sorted(p.relative_to(ROOT).as_posix() for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)
    missing = [m for m in modules if m not in names]
    assert not missing, f"modules missing from the wheel: {missing}"
    data = sorted(p.relative_to(ROOT).as_posix() for ext in ("pt", "json") for p in PKG.glob(f"weights/*.{ext}"))
    missing = [d for d in data if d not in names]
    assert not missing, f"package data missing from the wheel: {missing}"
    ep = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert ep and "[nbdev]" in zipfile.ZipFile(wheel).read(ep[0]).decode(), "nbdev entry point missing"


def test_wheel_installs_and_imports_outside_repo(wheel, tmp_path):
    venv = tmp_path / "venv"
    r = _run([sys.executable, "-m", "venv", "--without-pip", venv])
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    purelib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    r = _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "-q", wheel])
    assert r.returncode == 0, f"installing the wheel failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    # then third-party deps (torch, plotly, ...) from this environment, without running its
    # .pth files (written after the install, so pip never sees this env's editable vae_book)
    dev_sites = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_vae_book_dev_deps.pth").write_text("".join(f"{p}\n" for p in sorted(dev_sites)))

    subpkgs = sorted(p.parent.name for p in PKG.glob("*/__init__.py"))
    code = textwrap.dedent(f"""
        import importlib, os, sys
        import vae_book, vae_book.core, vae_book.data, vae_book.train
        for s in {subpkgs!r}: importlib.import_module("vae_book." + s)
        print(os.path.realpath(vae_book.__file__))
        print(vae_book.__version__)
    """)
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = _run([py, "-c", code], cwd=work)
    assert r.returncode == 0, f"import from the installed wheel failed:\n{r.stderr[-3000:]}"
    where, version = r.stdout.split()[-2:]
    assert Path(where).is_relative_to(venv.resolve()), f"vae_book imported from {where}, not the new venv"
    assert not Path(where).is_relative_to(ROOT), "the repo's vae_book leaked into the wheel's venv"
    assert version and version[0].isdigit()
