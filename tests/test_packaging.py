"""The built wheel holds the whole package and works outside the repo.

`pip wheel .`, then install that wheel into a fresh venv whose third-party packages come
from this environment's site-packages (a plain `.pth` path line: .pth files *inside* that
folder, such as the editable vae_book finder, are not run, so the repo's vae_book can't leak
in), then import from a folder outside the repo.
"""
import textwrap, zipfile
from pathlib import Path

from helpers import run_clean

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "vae_book"


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


def test_wheel_installs_and_imports_outside_repo(wheel_venv, tmp_path):
    py, venv = wheel_venv, wheel_venv.parent.parent
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
    r = run_clean([py, "-c", code], cwd=work)
    assert r.returncode == 0, f"import from the installed wheel failed:\n{r.stderr[-3000:]}"
    where, version = r.stdout.split()[-2:]
    assert Path(where).is_relative_to(venv.resolve()), f"vae_book imported from {where}, not the new venv"
    assert not Path(where).is_relative_to(ROOT), "the repo's vae_book leaked into the wheel's venv"
    assert version and version[0].isdigit()


def _readme_python(section: str) -> list[str]:
    "The ```python blocks of README.md's `## section`"
    text = (ROOT / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [b.split("```", 1)[0] for b in body.split("```python\n")[1:]]


def test_readme_library_example_runs_as_written(wheel_venv, tmp_path):
    "The README's library code, copied as is: train, sample, save and reload, then your own tensors"
    blocks = _readme_python("Install the library")
    assert len(blocks) >= 2 and "import" in blocks[0], "the README's example lost its code or its imports"
    own = _readme_python("Data")
    assert own and "get_data((x, y)" in own[0], "the README's own-data example is gone"
    code = "\n".join(blocks + own) + textwrap.dedent("""
        assert (len(mine.train.x), len(mine.valid.x), len(mine.test.x)) == (400, 50, 50)
        assert samples.shape == (16, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
        assert len(hist) >= 1 and hist.last['train_loss'] > 0
        import torch
        z = torch.randn(4, 20)
        assert torch.equal(vae2.decode(z), vae.eval().decode(z))
        print('README example ok')
    """)
    work = tmp_path / "user"
    work.mkdir()
    r = run_clean([wheel_venv, "-c", code], cwd=work, timeout=600)
    assert r.returncode == 0 and "README example ok" in r.stdout, \
        f"the README's example failed outside the repo:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    assert (work / "vae.pt").exists()
