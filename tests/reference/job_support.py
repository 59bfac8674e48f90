"""What the tests of jobs/*.py share: running a job script, and failing with what it printed."""
import subprocess
import sys


def run_job(script, spec, out, mops, *extra):
    """`jobs/SCRIPT SPEC --out OUT --mops MOPS EXTRA...` from the repository root: (exit code, stdout + stderr)."""
    run = subprocess.run([sys.executable, f"jobs/{script}", spec, "--out", out, "--mops", mops, *extra],
                         capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def require(condition, message, output=""):
    if not condition:
        print(f"FAIL: {message}\n{output}")
        sys.exit(1)
