"""`make bench`: every benchmark in one run, each printing its own ratios measured side by side.

python bench/run_all.py [NAME ...]    # all, or some of: recorder verdicts probe guards profiles
                                      # soak fleet
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = Path(os.environ.get("MEMSLEUTH_CORPUS", ROOT.parent / "shared/corpus/series-dev.jsonl.gz"))
HELDOUT_SEEDS = (7, 11)


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _verdicts() -> Any:
    verdicts = _load("verdicts")
    figures: dict[str, Any] = {}
    if CORPUS.exists():
        figures["dev_corpus"] = verdicts.main([str(CORPUS)])
    else:
        print(f"(shared corpus not found at {CORPUS}; set MEMSLEUTH_CORPUS)")
    examples = _load("examples_corpus").main([])
    figures["examples"] = verdicts.main([str(examples)])
    # Harsher series never tuned on (load cycles, wander, heavy tails, gaps), with the baseline
    # rules beside memsleuth: how the verdict holds up off the shared corpus.
    for seed in HELDOUT_SEEDS:
        path = HERE / "out" / f"heldout-{seed}.jsonl.gz"
        if not path.exists():
            _load("heldout").main([str(path), "--seed", str(seed)])
        figures[f"heldout_{seed}"] = verdicts.main([str(path)])
    return figures


# In the order they are printed.
BENCHES: dict[str, Callable[[], Any]] = {
    "recorder": lambda: _load("recorder").main(),
    "verdicts": _verdicts,
    "probe": lambda: _load("probe").main(),
    "guards": lambda: _load("guards").main(),
    "profiles": lambda: _load("profiles").main(),
    "soak": lambda: _load("soak").main([]),  # not run_all's own argv
    "fleet": lambda: {
        "scan": _load("fleet").main(),
        "daily_cycles": _load("fleet").main(series=1000, daily=True),
    },
}


def main() -> int:
    only = set(sys.argv[1:])
    unknown = only - set(BENCHES)
    if unknown:
        print(f"error: no benchmark {sorted(unknown)}; choose from {list(BENCHES)}")
        return 2
    results: dict[str, Any] = {}
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    for name, run in BENCHES.items():
        if only and name not in only:
            continue
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        results[name] = run()
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nall figures: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
