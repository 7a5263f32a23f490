"""`python -m lamina ...` runs the command line."""
from lamina.app.cli import main

raise SystemExit(main())
