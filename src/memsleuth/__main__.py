"""`python -m memsleuth`."""

from memsleuth.cli import console_main

console_main()
