"""`python -m demo --data DIR`: run the demo booth (see demo.booth)."""

from demo.booth import main

raise SystemExit(main())
