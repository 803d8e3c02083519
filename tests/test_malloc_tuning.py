"""trainsim.cli.malloc_tuning: glibc accepts the thresholds (mallopt returns 1 on success, 0 on error: mallopt(3))."""
import platform

import pytest

from trainsim.cli.malloc_tuning import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_thresholds():
    assert keep_freed_memory() is True
