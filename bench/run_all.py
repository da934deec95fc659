"""`make bench`: every benchmark in one run, each printing its own ratios measured side by side."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# In the order they are printed; each module has main(argv) -> dict of figures.
BENCHES = ("recorder", "verdicts", "probe", "guards", "soak", "fleet")


def _load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    only = set(sys.argv[1:])
    results: dict[str, object] = {}
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    for name in BENCHES:
        if only and name not in only:
            continue
        if not (HERE / f"{name}.py").exists():
            continue
        print(f"\n=== bench/{name}.py ===", flush=True)
        started = time.monotonic()
        results[name] = _load(name).main()
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nall figures: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
