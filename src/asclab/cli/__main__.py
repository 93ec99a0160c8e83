"""``python -m asclab.cli``: the same as the ``asclab`` command."""
import sys

from asclab.cli.run import main

sys.exit(main())
