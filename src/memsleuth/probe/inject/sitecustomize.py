"""memsleuth's probe, injected by `memsleuth run` through PYTHONPATH; chains to any other
sitecustomize. It must never raise, print, or change how the host starts."""


def _memsleuth_inject() -> None:
    import time

    t0 = time.perf_counter()  # the probe's start-up is charged to its budget
    import importlib.machinery
    import importlib.util
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        if sys.version_info >= (3, 10) and os.environ.get("MEMSLEUTH_RUN_ID"):
            src = os.environ.get("MEMSLEUTH_PROBE_PATH")
            if src and src not in sys.path:
                sys.path.append(src)
            import memsleuth.probe

            memsleuth.probe.start_from_env(t0)
    except Exception:
        pass
    # Chain: run the sitecustomize this one shadows, if there is one.
    try:
        path = [p for p in sys.path if os.path.abspath(p or ".") != here]
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    except Exception as exc:
        # A failing sitecustomize of the host's own is reported as site.py would report it.
        print(
            "Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )


_memsleuth_inject()
del _memsleuth_inject
