"""agent.toml as an installer writes it: a full example loads, and every bad value names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import ConfigError, load_config, parse_config, parse_size

FULL = """
[agent]
name = "Booth 1"
state_dir = "/tmp/bs/state"
socket = "/tmp/bs/agent.sock"

[coordinator]
url = "https://coord.example.org"
credential = "c0ffee"
session = "linuxfest-sat"
show = 3

[cache]
dir = "/tmp/bs/cache"
size = "20G"
download_timeout = 45

[drives]
discover = true
allow = ["/dev/sr0", "/dev/sda"]
deny = ["/dev/sdb"]

[[drives.simulated]]
name = "Left"
path = "sim:left"
speed = "8M"
capacity = "4.7G"

[[drives.simulated]]
name = "USB"
path = "sim:usb"
kind = "block"

[[drives.optical]]
path = "stdio:/tmp/bs/disc.iso"
name = "Pseudo"

[leds]
link = 17
drives = { "/dev/sr0" = [5, 6] }
eject_buttons = { "/dev/sr0" = 13 }

[kiosk]
pin = "2468"
"""


def test_a_full_config_loads_with_every_value(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(FULL)
    c = load_config(path)
    assert c.name == "Booth 1"
    assert c.state_dir == Path("/tmp/bs/state")
    assert c.socket == Path("/tmp/bs/agent.sock")
    assert c.link_url == "wss://coord.example.org/link"
    assert (c.credential, c.session, c.show) == ("c0ffee", "linuxfest-sat", 3)
    assert c.cache_size == 20_000_000_000
    assert c.download_timeout == 45.0
    assert c.discover
    assert c.allow == ("/dev/sr0", "/dev/sda")
    assert c.deny == ("/dev/sdb",)
    left, usb = c.simulated
    assert (left.name, left.path, left.speed, left.capacity) == ("Left", "sim:left", 8e6, 4.7e9)
    assert left.capabilities == {"CDR", "DVDR", "BDR"}
    assert (usb.kind, usb.capabilities, usb.capacity) == ("block", {"BLOCK"}, None)
    assert c.optical[0].path == "stdio:/tmp/bs/disc.iso"
    assert c.leds.link == 17
    assert c.leds.drives == {"/dev/sr0": (5, 6)}
    assert c.leds.eject_buttons == {"/dev/sr0": 13}
    assert c.kiosk_pin == "2468"


def test_an_empty_config_runs_offline_with_defaults() -> None:
    c = parse_config("")
    assert c.coordinator_url is None
    assert c.link_url is None
    assert c.simulated == ()
    assert not c.discover
    assert c.download_timeout == 30.0


def test_sharing_is_off_unless_turned_on() -> None:
    assert not parse_config("").share.fetch
    assert not parse_config("").share.serve
    on = parse_config("[share]\nenabled = true\nport = 9000\nupload_rate = '5M'").share
    assert (on.fetch, on.serve, on.port, on.upload_rate) == (True, True, 9000, 5_000_000)
    quiet = parse_config("[share]\nenabled = true\nserve = false").share
    assert (quiet.fetch, quiet.serve) == (True, False)
    # serve alone does nothing while sharing is off.
    assert not parse_config("[share]\nserve = true").share.serve


def test_credential_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "cred"
    secret.write_text("abc123\n")
    c = parse_config(f'[coordinator]\nurl = "http://127.0.0.1:8080"\ncredential_file = "{secret}"')
    assert c.credential == "abc123"
    assert c.link_url == "ws://127.0.0.1:8080/link"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[cache]\nsize = 'lots'", "agent.toml: [cache] size: must be a positive size like '20G'"),
        ("[agent]\nmetrics_port = 70000", "[agent] metrics_port: must be a port number, 1..65535"),
        ("[agent]\nmetrics_port = '9101'", "[agent] metrics_port: must be a port number"),
        ("[cache]\nsize = 0", "[cache] size: must be a positive size"),
        ("[cache]\nsize = -5", "[cache] size: must be a positive size"),
        ("[cache]\nsize = true", "[cache] size: must be a positive size"),
        ("[cache]\ndir = 7", "[cache] dir: must be a non-empty string"),
        ("[cache]\ndownload_timeout = 0", "[cache] download_timeout: must be a number of seconds"),
        ("[cache]\ndownload_timeout = 'soon'", "[cache] download_timeout: must be a number"),
        ("[cache]\ndownload_timeout = true", "[cache] download_timeout: must be a number"),
        ("[coordinator]\nurl = 'ftp://x'\ncredential='c'", "[coordinator] url: must be an http"),
        ("[coordinator]\nurl = 'http://x'", "[coordinator] credential: is needed when url"),
        ("[coordinator]\nshow = 'one'", "[coordinator] show: must be a show id"),
        ("[coordinator]\nshow = 0", "[coordinator] show: must be a show id"),
        (
            "[coordinator]\ncredential = 'a'\ncredential_file = '/x'",
            "[coordinator] credential_file: give credential or credential_file",
        ),
        ("[coordinator]\ncredential_file = '/nonexistent/cred'", "credential_file: cannot read"),
        ("[agent]\nname = ''", "[agent] name: must be a non-empty string"),
        ("[agent]\nnmae = 'x'", "[agent] nmae: unknown key"),
        ("[drive]\ndiscover = true", "[drive]: unknown table"),
        ("agent = 3", "[agent] must be a table"),
        ("[drives]\ndiscover = 'yes'", "[drives] discover: must be true or false"),
        ("[drives]\nallow = '/dev/sr0'", "[drives] allow: must be a list of device paths"),
        ("[drives]\nsimulated = 3", "[[drives.simulated]] must be an array of tables"),
        ("[[drives.simulated]]\nkind = 'tape'", "[drives.simulated[0]] kind: must be one of"),
        ("[[drives.simulated]]\nspeed = 'fast'", "[drives.simulated[0]] speed: must be a positive"),
        ("[[drives.simulated]]\ncapacity = '1Q'", "[drives.simulated[0]] capacity: must be"),
        ("[[drives.simulated]]\ncapabilities = ['DVD']", "[drives.simulated[0]] capabilities:"),
        ("[[drives.simulated]]\nspeeed = 1", "[drives.simulated[0]] speeed: unknown key"),
        (
            "[[drives.simulated]]\npath='sim:a'\n[[drives.simulated]]\npath='sim:a'",
            "[drives] path: 'sim:a' is used by two drives",
        ),
        ("[[drives.optical]]\npath = '/tmp/x'", "[drives.optical[0]] path: must be /dev/srN"),
        ("[leds]\nlink = 40", "[leds] link: 40 is not a BCM GPIO pin number"),
        ("[leds]\ndrives = { a = [1] }", "[leds] drives.'a': must be [green, red]"),
        ("[leds]\ndrives = 3", "[leds] drives: must be a table"),
        ("[leds]\nlink = 5\ndrives = { a = [5, 6] }", "[leds] drives.'a': GPIO5 is already used"),
        ("[leds]\neject_buttons = { a = 'x' }", "[leds] eject_buttons.'a': 'x' is not a BCM"),
        ("[kiosk]\npin = '12a4'", "[kiosk] pin: must be digits only"),
        ("[cache\nsize = 1", "agent.toml: not valid TOML"),
        ("[share]\nenabled = 'yes'", "[share] enabled: must be true or false"),
        ("[share]\nport = 0", "[share] port: must be a port number, 1..65535"),
        ("[share]\nmax_uploads = 0", "[share] max_uploads: must be a number of uploads"),
        ("[share]\nupload_rate = 'fast'", "[share] upload_rate: must be a positive size"),
        ("[share]\nprot = 8765", "[share] prot: unknown key"),
    ],
)
def test_every_bad_value_is_a_config_error_naming_its_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert message in str(info.value)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "size"),
    [(1500, 1500), ("700M", 700_000_000), ("4.7G", 4_700_000_000), ("2GiB", 2 * 1024**3)],
)
def test_sizes_read_as_people_write_them(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("url", "insecure", "ok"),
    [
        ("http://coordinator.example.org", False, False),
        ("ws://192.0.2.7:8080/link", False, False),
        ("http://coordinator.example.org", True, True),
        ("https://coordinator.example.org", False, True),
        ("wss://192.0.2.7/link", False, True),
        ("http://127.0.0.1:8080", False, True),
        ("http://localhost:8080", False, True),
        ("http://[::1]:8080", False, True),
    ],
)
def test_plain_transport_beyond_loopback_needs_insecure_transport(
    url: str, insecure: bool, ok: bool
) -> None:
    """Issue 23 case 10: the agent never sends its bearer over plain HTTP to another host
    unless its config says so."""
    text = f"[coordinator]\nurl = '{url}'\ncredential = 'c'\n"
    if insecure:
        text += "insecure_transport = true\n"
    if ok:
        assert parse_config(text).coordinator_url == url
    else:
        with pytest.raises(ConfigError) as err:
            parse_config(text)
        assert "[coordinator] url:" in str(err.value)
        assert "insecure_transport = true" in str(err.value)
