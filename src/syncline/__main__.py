"""``python -m syncline`` is the ``syncline`` command."""

import sys

from syncline.cli import main

sys.exit(main())
