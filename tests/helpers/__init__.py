"""Helper scripts that tests run as child processes."""
