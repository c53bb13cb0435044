"""``python -m scgrad.rl``: see ``scgrad.rl.cli``."""
import sys

from scgrad.rl.cli import main

sys.exit(main())
