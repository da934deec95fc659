"""The pytest plugin (entry point pytest11): inert until its markers or options are used."""
