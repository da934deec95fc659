"""The ranked fleet as a terminal table: worst first, with a one-line summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from memsleuth import units
from memsleuth.fleet.report import label_text
from memsleuth.fleet.scan import ScanResult


def print_table(result: ScanResult, top: int, console: Console | None = None) -> None:
    """The `top` worst entries (0: every entry) and the summary line."""
    console = console or Console()
    shown = result.entries if top == 0 else result.entries[:top]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (
        ("#", "right"),
        ("verdict", "left"),
        ("growth/h", "right"),
        ("to limit", "right"),
        ("last", "right"),
        ("restarts", "right"),
        ("series", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for i, e in enumerate(shown, 1):
        v = e.verdict
        name = v.verdict if v else "error"
        style = "bold red" if v is not None and v.is_problem else ("yellow" if v is None else "")
        table.add_row(
            str(i),
            Text(name, style=style),
            units.format_rate(v.growth_bytes_per_hour if v else None),
            "gone" if e.gone else units.format_duration(v.time_to_limit_s if v else None),
            units.format_bytes(e.last_bytes),
            str(e.restarts),
            Text(label_text(e, with_name=False) + (f"  ({e.error})" if e.error else "")),
        )
    console.print(table)
    counts = ", ".join(f"{n} {k}" for k, n in result.counts().most_common())
    t = result.timings
    console.print(
        f"{len(result.judged)} of {len(result.entries)} series judged ({counts}) in "
        f"{result.batches} batches, {len(result.failures)} failed, "
        f"{t.get('wall_s', 0.0):.1f} s; top {len(shown)} shown",
        markup=False,
        highlight=False,
    )
