"""The `drive-vla` command line: one module per verb."""
