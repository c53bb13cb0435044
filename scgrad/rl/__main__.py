"""``python -m scgrad.rl``: see ``scgrad.rl.cli``."""
import sys

from .cli import main

sys.exit(main())
