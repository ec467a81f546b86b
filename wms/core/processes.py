"""Whether a process of ours still runs: by its PID, as the servers' PID files record it."""

import psutil


def alive(pid: int) -> bool:
    """True while the process runs; False once it has exited, even before its parent has reaped it (a zombie still
    answers signal 0, so `os.kill(pid, 0)` took a stopped server for a running one until its parent waited)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
