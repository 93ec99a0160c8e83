"""The ``asclab`` command line (``asclab.cli.run``): thin, it parses, calls one workflow and prints."""
from asclab.cli.parser import build_parser
from asclab.cli.run import main

__all__ = ["build_parser", "main"]
