"""``python -m tinyvision ...``: the same command line as ``tinyvision ...``."""
import sys

from .cli import main

sys.exit(main())
