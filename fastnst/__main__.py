"""``python -m fastnst`` == ``fastnst``."""

import sys

from .cli import main

sys.exit(main())
