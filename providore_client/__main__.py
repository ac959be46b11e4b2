"""Run the client with `python -m providore_client`."""

from providore_client.cli import main

raise SystemExit(main())
