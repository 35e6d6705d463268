"""`python -m appliance.cli`: the same as `burnstand-agent`."""

import sys

from appliance.cli import main

sys.exit(main())
