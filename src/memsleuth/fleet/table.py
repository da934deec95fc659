"""The ranked fleet as a terminal table: worst first, with a one-line summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from memsleuth import units
from memsleuth.fleet.report import label_text
from memsleuth.fleet.scan import ScanResult, matchers


def print_table(result: ScanResult, top: int, console: Console | None = None) -> None:
    """The `top` worst entries (0: every entry) and the summary line."""
    console = console or Console()
    shown = result.entries if top == 0 else result.entries[:top]
    # The metric's name when the query matched several (`{job="db"}`): two rows of one
    # instance, one memory and one start time, had looked alike.
    names = {e.label_dict.get("__name__") for e in shown}
    # Labels every row shares are said once above the table: at 80 columns the rows had all
    # read `{instance="127.0.0.1:193…` and the labels that told them apart were cut off.
    dicts = [e.label_dict for e in shown]
    common = (
        {k: v for k, v in dicts[0].items() if k != "__name__" and all(d.get(k) == v for d in dicts)}
        if len(dicts) > 1
        else {}
    )
    rows = []
    for i, e in enumerate(shown, 1):
        v = e.verdict
        rows.append(
            (
                str(i),
                v.verdict if v else "error",
                units.format_rate(v.growth_bytes_per_hour if v else None),
                "gone" if e.gone else units.format_time_to_limit(v.time_to_limit_s if v else None),
                units.format_bytes(e.last_bytes),
                str(e.restarts),
                label_text(e, with_name=len(names) > 1, omit=common)
                + (f"  ({e.error})" if e.error else ""),
            )
        )
    table = Table(box=None, pad_edge=False, header_style="bold")
    heads = ("#", "verdict", "growth/h", "to limit", "last", "restarts")
    widths = [max([len(name), *(len(r[k]) for r in rows)]) for k, name in enumerate(heads)]
    for name, width in zip(heads, widths, strict=True):  # the figures keep their width
        justify = "left" if name == "verdict" else "right"
        table.add_column(name, justify=justify, no_wrap=True, min_width=width)  # type: ignore[arg-type]
    # The labels take what is left and are cut there (a pipe or a CI log has 80 columns; the
    # figures had been squeezed to one character and "…" while the labels kept their width).
    rest = console.width - sum(widths) - 2 * len(heads)
    table.add_column("series", no_wrap=True, overflow="ellipsis", max_width=max(rest, 20))
    for e, row in zip(shown, rows, strict=True):
        v = e.verdict
        style = "bold red" if v is not None and v.is_problem else ("yellow" if v is None else "")
        table.add_row(*row[:1], Text(row[1], style=style), *row[2:6], Text(row[6]))
    if common:
        shared = matchers(sorted(common.items()))
        console.print(f"every series: {{{shared}}}", markup=False, highlight=False, soft_wrap=True)
    console.print(table)
    counts = ", ".join(f"{n} {k}" for k, n in result.counts().most_common())
    t = result.timings
    # Of those listed, when the listing knows: the series of failed batches are in no entry
    # ("40 of 40 series judged, 7 batches failed" had been said of 101).
    of = max(result.listed, len(result.entries))
    console.print(
        f"{len(result.judged)} of {of} series judged ({counts}) in "
        f"{result.batches} batch{'' if result.batches == 1 else 'es'}, "
        f"{len(result.failures)} failed, "
        f"{t.get('wall_s', 0.0):.1f} s; top {len(shown)} shown",
        markup=False,
        highlight=False,
        soft_wrap=True,  # one line, whatever the width: rich had broken it mid-phrase at 80
    )
