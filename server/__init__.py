"""The composition root: HTTP, database, configuration and the command line."""
