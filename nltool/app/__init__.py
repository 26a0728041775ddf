"""The application on top of the core and the stages: the ``nltool`` command line and the demo."""
