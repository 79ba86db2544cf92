"""Peak resident memory of one configuration's training step, measured in a fresh Python process.

``tracemalloc`` does not see tensors, and a long-lived process's peak RSS only ever grows, so each
configuration runs once in a child (``python -m tam.bench.rss CASE_JSON LIMIT THREADS``) that imports
torch and tam, lowers its peak RSS to its current RSS (Linux's ``/proc/self/clear_refs``; elsewhere the
peak of the imports stays the baseline), and reports its peak RSS after one training step minus that
baseline.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys

import torch

from tam.bench.measure import is_out_of_memory, memory_limit
from tam.bench.suites import Case


def peak_rss_bytes(case: Case, memory_limit_bytes: int | None = None, *, timeout_s: float = 900) -> int:
    """Peak RSS added by building ``case`` and running one training step on CPU, in a fresh process.

    Args:
        case: the configuration.
        memory_limit_bytes: address-space budget of the child past its imports (see
            :func:`tam.bench.measure.memory_limit`); ``None`` for none.
        timeout_s: seconds before the child is killed.

    Raises:
        MemoryError: the child ran out of memory (within the limit, or killed by the system).
        RuntimeError: the child failed otherwise; the message ends with its last lines of stderr.
    """
    command = [
        sys.executable,
        "-m",
        "tam.bench.rss",
        json.dumps(case.to_dict()),
        str(memory_limit_bytes or 0),
        str(torch.get_num_threads()),
    ]
    child = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if child.returncode == -9:
        raise MemoryError("the RSS subprocess was killed (SIGKILL), most likely by the system's OOM killer")
    if child.returncode != 0:
        tail = "\n".join(child.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"the RSS subprocess for {case.label()} exited with {child.returncode}:\n{tail}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    if "error" in result:
        raise MemoryError(result["error"])
    return result["rss_bytes"]


def max_rss_bytes() -> int:
    """Peak RSS of this process in bytes: ``VmHWM`` on Linux, else ``ru_maxrss``.

    On Linux ``ru_maxrss`` starts at the *parent's* peak (the kernel carries it across ``execve``), and
    ``/proc/self/clear_refs`` does not reset it; ``VmHWM`` is this process's own and resettable.
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def reset_peak_rss() -> None:
    """Lower this process's peak RSS to its current RSS, where the system allows (Linux ≥ 4.0)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def main(argv: list[str]) -> int:
    case_json, limit, threads = argv
    import tam.layers  # noqa: F401  (imported before the baseline, with everything a step needs)
    import tam.models  # noqa: F401
    from tam.bench.workload import build_workload

    torch.set_num_threads(int(threads))
    case = Case.from_dict(json.loads(case_json))
    reset_peak_rss()
    baseline = max_rss_bytes()
    try:
        with memory_limit(int(limit) or None):
            build_workload(case, "cpu").step()
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        print(json.dumps({"error": f"out of memory: {str(error).splitlines()[0][:200]}"}))
        return 0
    print(json.dumps({"rss_bytes": max_rss_bytes() - baseline}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
