"""The ``nltool`` commands, one module per command group; :mod:`nltool.app.cli` assembles them."""
