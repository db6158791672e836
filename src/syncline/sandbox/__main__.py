"""``python -m syncline.sandbox``: serve the sandbox API (see ``server.main``)."""

from syncline.sandbox.server import main

raise SystemExit(main())
