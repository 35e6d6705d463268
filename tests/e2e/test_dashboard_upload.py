"""Adding an image by drag and drop in a real browser: a contributor drops a file on a shot of
the demo's catalog; the page hashes it, creates the take, uploads it with progress, and the take
ends up with the file's exact size, SHA-256 and MD5 and its image in the coordinator's store.
"""

from __future__ import annotations

import hashlib
import urllib.request

from e2e_pages import Demo, enter_system
from playwright.sync_api import Page, expect

SIZE = 3_000_001  # not a multiple of any piece size: the last piece is a short one
NAME = "dropped-image.iso"
# The same bytes on both sides: the page builds them, the test computes their digests.
CONTENT_JS = f"new Uint8Array({SIZE}).map((_, i) => (i * 7 + 3) % 251)"


def _content() -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(SIZE))


def test_a_dropped_file_becomes_a_take_with_the_right_digest(page: Page, demo_stand: Demo) -> None:
    state = demo_stand.state
    enter_system(page, demo_stand.url, state["contributor"], state["show_id"])
    page.get_by_role("link", name="Catalog").click()
    zone = page.locator(".dropzone").first
    expect(zone).to_be_visible()
    shot = int(zone.get_attribute("data-shot") or "0")
    # Record every progress line the page shows, however fast it goes.
    page.evaluate(
        """() => {
        window.seen = [];
        new MutationObserver(() => {
          const shown = document.querySelectorAll('.drop-status');
          for (const s of shown) window.seen.push(s.textContent);
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
      }"""
    )
    transfer = page.evaluate_handle(
        f"""() => {{
        const dt = new DataTransfer();
        dt.items.add(new File([{CONTENT_JS}], "{NAME}", {{type: "application/octet-stream"}}));
        return dt;
      }}"""
    )
    zone.dispatch_event("dragover", {"dataTransfer": transfer})
    zone.dispatch_event("drop", {"dataTransfer": transfer})
    expect(page.locator("#toast")).to_contain_text(f"Added take “{NAME}”")
    expect(page.locator("#catalog .take", has_text=NAME)).to_be_visible()
    seen: list[str] = page.evaluate("window.seen")
    assert any(s.startswith("Hashing") for s in seen), seen
    assert any(s.startswith("Uploading") for s in seen), seen

    data = _content()
    cleo = demo_stand.rest.join(state["contributor"], state["show_id"])
    takes = demo_stand.rest.call("GET", f"/shots/{shot}/takes", cleo)["items"]
    [take] = [t for t in takes if t["name"] == NAME]
    assert take["size"] == SIZE
    assert take["sha256"] == hashlib.sha256(data).hexdigest()
    assert take["md5"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert take["url"] is None
    upload = demo_stand.rest.call("GET", f"/takes/{take['id']}/image/upload", cleo)
    assert upload["present"] is True
    req = urllib.request.Request(
        f"{demo_stand.url}/api/v1/images/{take['sha256']}",
        headers={"Authorization": f"Bearer {cleo}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.read() == data
