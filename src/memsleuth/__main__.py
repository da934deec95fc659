"""`python -m memsleuth`."""

from memsleuth.cli import console_main

if __name__ == "__main__":  # a spawned worker process imports this module too: never run it
    console_main()
