"""Timing helpers shared by the ``bench_*.py`` scripts.

These machines are noisy, so every figure is the **median of several runs**, the cases of one table
are measured **interleaved** (A B C, A B C, …) so that drift hits them alike, and comparisons are
**ratios measured in the same process**. Tables print as Markdown; targets print as
``TARGET … PASS|FAIL`` lines (a FAIL is information: the scripts still exit 0).
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # after PYTHONPATH: a patched copy of dolab can be measured

Case = Callable[[], Awaitable["Sample"]]


@dataclass
class Sample:
    """One timed run: ``ops`` operations in ``seconds``; ``extra`` carries counters (commits…)."""

    ops: float
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)
    cpu: float = 0.0   # process CPU seconds: unlike wall time, not inflated by other processes

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Result:
    """The samples of one case over every repeat."""

    name: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [s.rate for s in self.samples]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def spread(self) -> str:
        """min–max of the rates, as a share of the median (how noisy this case was)."""
        rates = self.rates
        if len(rates) < 2:
            return "–"
        return f"±{(max(rates) - min(rates)) / 2 / self.rate * 100:.0f} %"

    def extra(self, key: str) -> float:
        return statistics.median(s.extra.get(key, 0.0) for s in self.samples)

    @property
    def latency_us(self) -> float:
        return 1e6 / self.rate

    @property
    def cpu_us(self) -> float:
        """Median process CPU time per operation, in µs."""
        return statistics.median(s.cpu / s.ops * 1e6 for s in self.samples)


def quiet() -> None:
    """Collect garbage before a timed run so one run does not pay for the previous one."""
    gc.collect()


async def timed(n: int, body: Callable[[], Awaitable[Any]]) -> Sample:
    """Await ``body()`` once and time it; it performs ``n`` operations."""
    quiet()
    start, cpu = time.perf_counter(), time.process_time()
    await body()
    return Sample(n, time.perf_counter() - start, cpu=time.process_time() - cpu)


async def interleaved(cases: dict[str, Case], repeats: int,
                      warmup: bool = True) -> dict[str, Result]:
    """Run every case ``repeats`` times, round-robin; the first round is a discarded warm-up."""
    results = {name: Result(name) for name in cases}
    if warmup:
        for case in cases.values():
            await case()
    for _ in range(repeats):
        for name, case in cases.items():
            results[name].samples.append(await case())
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---- formatting --------------------------------------------------------------------------------


def fmt_rate(rate: float) -> str:
    if rate >= 100_000:
        return f"{rate:,.0f}"
    if rate >= 100:
        return f"{rate:,.0f}"
    if rate >= 10:
        return f"{rate:.1f}"
    return f"{rate:.2f}"


def fmt_ratio(value: float) -> str:
    if value >= 10:
        return f"{value:.0f}×"
    return f"{value:.2f}×"


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (numbers right-aligned)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    numeric = [all(_numeric(r[i]) for r in cells) and bool(cells) for i in range(len(headers))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"
    rule = "|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2))
                          for w, n in zip(widths, numeric)) + "|"
    body = ["| " + " | ".join(c.rjust(w) if n else c.ljust(w)
                              for c, w, n in zip(r, widths, numeric)) + " |" for r in cells]
    return "\n".join([line, rule, *body])


def _numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("×", "").replace("%", "").replace("±", "").strip()
    stripped = stripped.split(" ")[0]
    try:
        float(stripped)
    except ValueError:
        return text in ("–", "n/a")
    return True


def heading(title: str) -> None:
    print(f"\n### {title}\n")


def target(label: str, measured: float, threshold: float, unit: str = "×") -> bool:
    """Print a target line: PASS when ``measured >= threshold``."""
    passed = measured >= threshold
    shown = f"{measured:.2f}{unit}" if unit == "×" else f"{measured:.0f}{unit}"
    wanted = f"{threshold:.2f}{unit}" if unit == "×" else f"{threshold:.0f}{unit}"
    print(f"TARGET {label}: {shown} (need ≥ {wanted}) … {'PASS' if passed else 'FAIL'}")
    return passed


def target_at_most(label: str, measured: float, threshold: float, unit: str = " %") -> bool:
    passed = measured <= threshold
    print(f"TARGET {label}: {measured:.0f}{unit} (need ≤ {threshold:.0f}{unit}) … "
          f"{'PASS' if passed else 'FAIL'}")
    return passed


# ---- the machine -----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(*packages: str) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def machine(path: Path | None = None) -> str:
    where = path or Path(tempfile.gettempdir())
    disk = _filesystem(where)
    return (f"{cpu_model()}, {os.cpu_count()} CPUs, {_memory()}, {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()} "
            f"({platform.python_implementation()}); "
            f"{versions('dolab', 'ZODB', 'BTrees', 'persistent')}; temp files on {disk}")


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except OSError:
        pass
    return "? RAM"


def _filesystem(path: Path) -> str:
    try:
        best = ("", "?", "?")
        resolved = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            if resolved.startswith(mount) and len(mount) >= len(best[0]):
                best = (mount, device, kind)
        return f"{best[2]} ({best[1]} at {best[0]})"
    except OSError:
        return "?"


def banner(title: str, path: Path | None = None) -> None:
    import dolab

    print(f"## {title}\n")
    print(f"Machine: {machine(path)}")
    source = Path(dolab.__file__).resolve().parent
    if source != ROOT / "dolab":
        print(f"dolab imported from {source} (not this checkout)")


def rss_bytes() -> int:
    """Resident set size of this process, now (Linux ``/proc/self/statm``)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(main: Callable[[], Awaitable[None]]) -> None:
    """``asyncio.run(main())`` and exit 0 (FAIL lines are information, not errors)."""
    asyncio.run(main())
    sys.stdout.flush()


def scratch_dir(prefix: str) -> Path:
    """A fresh directory for lab files, beside the other temporary files (same disk)."""
    return Path(tempfile.mkdtemp(prefix=f"dolab-bench-{prefix}-"))
