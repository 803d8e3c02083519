"""trainsim.cli.malloc_tuning: glibc accepts the thresholds (mallopt returns 1 on success, 0 on error: mallopt(3)); the
command's one OpenBLAS thread (trainsim/__init__.py)."""
import platform

import pytest

from trainsim.cli.malloc_tuning import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_thresholds():
    assert keep_freed_memory() is True


def _blas_setting(code: str, **env: str) -> str:
    import os
    import subprocess
    import sys

    e = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", code + "; import os; print(os.environ.get('OPENBLAS_NUM_THREADS'))"],
                         capture_output=True, text=True, env=e, check=True)
    return out.stdout.split()[-1]


def test_the_command_runs_one_openblas_thread_a_library_import_does_not():
    """trainsim/__init__.py: the ``trainsim`` command sets OPENBLAS_NUM_THREADS=1 before numpy loads (OpenBLAS reads
    it once, at load); a library import, a process that loaded numpy first and a value the user set are left as
    they are."""
    as_command = "import sys; sys.argv = ['/venv/bin/trainsim', 'plan']; import trainsim"
    assert _blas_setting(as_command) == "1"
    assert _blas_setting("import trainsim") == "None"
    assert _blas_setting("import numpy, sys; sys.argv = ['trainsim']; import trainsim") == "None"
    assert _blas_setting(as_command, OPENBLAS_NUM_THREADS="3") == "3"


@pytest.mark.skipif(platform.system() != "Linux", reason="counts threads in /proc/self/task")
def test_the_command_starts_no_openblas_server_thread():
    code = ("import sys; sys.argv = ['trainsim']; import trainsim, numpy, os; "
            "print(len(os.listdir('/proc/self/task')))")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "1"      # the main thread alone (numpy's OpenBLAS would add one per CPU)
