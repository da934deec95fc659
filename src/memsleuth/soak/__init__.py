"""Soak tests: run an operation many times and check memory, threads and fds return to baseline."""
