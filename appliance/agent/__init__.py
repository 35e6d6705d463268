"""The agent on the Pi: drives, burns, cache, journal, LEDs and the link, behind the control socket.

The package's parts, each one concern:

- `core` — `Agent`: lifecycle, drives, and the control socket's `ControlHandler` API;
- `burns` — burn supervision: claim a drive, fetch → write → verify → eject, journal every job;
- `fileburns` — `burnstand-agent burn --image FILE` handed over by the CLI (`burn_file`);
- `uplink` — the link: connect or enroll, hello, drive statuses, results from the journal, orders;
- `base` — the state every part shares, and the link as the agent needs it;
- `catalog` — `Take` and the saved catalog; `slot` — one drive as the agent holds it;
- `service` — `serve` and `run` (`burnstand-agent run`).

The names below are what the rest of the code imports from `appliance.agent`.
"""

from appliance.agent.base import Link, LinkFactory, LinkState
from appliance.agent.burns import FETCH_FAILED
from appliance.agent.catalog import CATALOG_FILE, Take
from appliance.agent.core import JOURNAL_FILE, Agent
from appliance.agent.service import Running, run, serve

__all__ = [
    "CATALOG_FILE",
    "FETCH_FAILED",
    "JOURNAL_FILE",
    "Agent",
    "Link",
    "LinkFactory",
    "LinkState",
    "Running",
    "Take",
    "run",
    "serve",
]
