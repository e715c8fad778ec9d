"""``python -m sukiyaki``: the same as the ``sukiyaki`` command."""

import sys

from sukiyaki.cli import main

sys.exit(main())
