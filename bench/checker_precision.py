"""Precision and recall of the pitfall checker on tests/corpus/.

Each corpus file starts with ``# expect: code1, code2`` (or ``# expect: none``) and may carry
``# bindings: A, B`` (the declared binding names; without it ``missing-binding`` is skipped).
Scoring is per file and code: a code the file expects and the checker reports is a true
positive, a reported code the file does not expect a false positive, an expected code not
reported a false negative. Prints a table per code and the totals; always exits 0.

Run: ``.venv/bin/python bench/checker_precision.py [--verbose]``
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dolab.checks import CODES, check  # noqa: E402

CORPUS = ROOT / "tests" / "corpus"


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


def header(text: str, name: str) -> list[str] | None:
    """The comma-separated values of a ``# name: …`` line among the first lines."""
    for line in text.splitlines()[:3]:
        match = re.match(rf"#\s*{name}:\s*(.*)$", line.strip())
        if match:
            values = [v.strip() for v in match.group(1).split(",") if v.strip()]
            return [] if values == ["none"] else values
    return None


def expectations(path: Path) -> tuple[set[str], list[str] | None]:
    text = path.read_text(encoding="utf-8")
    expected = header(text, "expect")
    if expected is None:
        raise SystemExit(f"{path}: missing '# expect:' line")
    return set(expected), header(text, "bindings")


def score_file(path: Path, scores: dict[str, Score], verbose: bool) -> None:
    expected, bindings = expectations(path)
    found = {f.code for f in check(path.read_text(encoding="utf-8"), bindings=bindings)}
    for code in CODES:
        score = scores[code]
        score.tp += code in expected and code in found
        score.fp += code in found and code not in expected
        score.fn += code in expected and code not in found
    if verbose or found != expected:
        extra, missed = sorted(found - expected), sorted(expected - found)
        status = "ok" if found == expected else f"false+ {extra} missed {missed}"
        print(f"  {path.name:36} {status}")


def fmt(value: float | None) -> str:
    return "   -" if value is None else f"{value:4.2f}"


def report(scores: dict[str, Score], files: int) -> None:
    print(f"\n{'code':30} {'TP':>3} {'FP':>3} {'FN':>3}  precision  recall")
    total = Score()
    for code in CODES:
        s = scores[code]
        total.tp, total.fp, total.fn = total.tp + s.tp, total.fp + s.fp, total.fn + s.fn
        print(f"{code:30} {s.tp:3} {s.fp:3} {s.fn:3}  {fmt(s.precision):>9}  {fmt(s.recall):>6}")
    print(f"{'total (' + str(files) + ' files)':30} {total.tp:3} {total.fp:3} {total.fn:3}  "
          f"{fmt(total.precision):>9}  {fmt(total.recall):>6}")


def main(argv: list[str]) -> int:
    files = sorted(CORPUS.glob("*.py"))
    scores = {code: Score() for code in CODES}
    print(f"checker precision/recall over {len(files)} corpus files ({CORPUS.relative_to(ROOT)})")
    for path in files:
        score_file(path, scores, "--verbose" in argv)
    report(scores, len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
