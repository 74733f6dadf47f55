"""Plain helpers the tests share (fixtures live in conftest.py; browser helpers in browser.py)."""
import os, subprocess


def run_clean(cmd, timeout=300, **kw):
    "Run `cmd` without this interpreter's PYTHONPATH/PYTHONHOME/PYTHONSTARTUP, capturing its output"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env, **kw)
