"""Time per template of ``promptkit check``'s token checks, the metamorphic check included.

Run: ``python -m promptkit_bench.bench_stability [--docs]`` (no engine). The tokenizer is
loaded first and not counted: a pre-commit hook pays it once per run. Each template is
measured ``--repeat`` times with its samples file (or samples made from its declared
variables); the median is shown. ``--docs`` writes the table into docs/lint.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

from promptkit._builder import PromptBuilder
from promptkit._model_store import resolve_model_dir
from promptkit._templating.prompt_template import PromptTemplate
from promptkit._tokenization import Tokenizer
from promptkit.errors import PromptkitError
from promptkit.lint._metamorphic import metamorphic_findings
from promptkit.lint.config import DEFAULT_BLOCK_SIZE
from promptkit.lint.prefix import PrefixPolicy
from promptkit.lint.samples import load_fixtures, samples_path, synthesized_fixtures
from promptkit.lint.tokens import measure

ROOT = Path(__file__).resolve().parent.parent
DIRS = (ROOT / "templates", ROOT / "bench" / "templates")
BEGIN, END = "<!-- stability-bench:begin -->\n", "<!-- stability-bench:end -->"


def _time(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(repeat: int) -> str:
    start = time.perf_counter()
    tokenizer = Tokenizer.from_dir(resolve_model_dir())
    load = time.perf_counter() - start
    builder = PromptBuilder(tokenizer, block_size=DEFAULT_BLOCK_SIZE)
    policy = PrefixPolicy(tokenizer=lambda: tokenizer, block_size=DEFAULT_BLOCK_SIZE)
    rows = [
        "| template | samples | all token checks (ms) | metamorphic part (ms) |",
        "| --- | --- | --- | --- |",
    ]
    worst = 0.0
    for directory in DIRS:
        for path in sorted(directory.glob("*.j2")):
            template = PromptTemplate(path.read_text(encoding="utf-8"), name=path.name)
            file = samples_path(path)
            fixtures = load_fixtures(file) if file.is_file() else synthesized_fixtures(template)
            try:
                builder.build(template, fixtures.samples[0])  # warms the chat template
            except PromptkitError:
                continue  # no samples file, and it needs structured values
            whole = _time(
                lambda t=template, f=fixtures: measure(t, f, builder=builder, policy=policy),
                repeat,
            )
            meta = _time(
                lambda t=template, f=fixtures: metamorphic_findings(t, f.samples, builder=builder),
                repeat,
            )
            worst = max(worst, whole)
            shown = path.relative_to(ROOT).as_posix()
            rows.append(
                f"| {shown} | {len(fixtures.samples)} | {whole * 1000:.0f} | {meta * 1000:.0f} |"
            )
    return (
        "\n".join(rows)
        + f"\n\nSlowest template: {worst * 1000:.0f} ms. Tokenizer load with its imports (once "
        f"per run, not in the table): {load * 1000:.0f} ms. Median of {repeat} runs on "
        f"{platform.machine()}, "
        f"Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())} (a shared 2-core machine: other jobs "
        "were running).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--docs", action="store_true", help="write the table into docs/lint.md")
    args = parser.parse_args()
    table = run(args.repeat)
    print(table)
    if args.docs:
        docs = ROOT / "docs" / "lint.md"
        text = docs.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        docs.write_text(head + BEGIN + table + END + rest.split(END, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    main()
