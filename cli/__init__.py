"""The `pt` command line: click commands that parse options, call the engine, the migration
toolkit and the projections, and print; the only layer that writes to the terminal."""
