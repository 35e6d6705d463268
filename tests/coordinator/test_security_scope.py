"""Issue 23, case 1: a show admin can never reach a person's standing in another show.

Show B's admin adds show A's contributor by email, resets and edits that membership; none of it
gives B a credential in show A, reveals that the email exists in A, or changes the person in A.
"""

from __future__ import annotations

from rv_helpers import Client, World, call, enter


async def test_show_b_admin_cannot_take_over_a_contributor_of_show_a(
    client: Client, world: World
) -> None:
    added = await call(
        client,
        "POST",
        f"/shows/{world.other_show}/contributors",
        world.other_show_admin,
        {"name": "Not Cleo", "email": "cleo@example.org"},
        201,
    )
    # Indistinguishable from adding a stranger: a fresh secret, only show B listed.
    assert isinstance(added["secret"], str)
    assert added["shows"] == [world.other_show]
    reset = await call(
        client,
        "PATCH",
        f"/shows/{world.other_show}/contributors/{added['id']}",
        world.other_show_admin,
        {"reset_secret": True, "name": "Renamed by B", "email": "b-owned@example.org"},
        200,
    )
    # B's secret opens nothing in show A...
    problem = await call(
        client,
        "POST",
        "/join",
        json={
            "user": "cleo@example.org",
            "show": world.show,
            "duration": 60,
            "secret": reset["secret"],
        },
        expect=401,
    )
    assert "secret" in problem["detail"]
    # ...the victim's own secret and credential still work, and her name in A is untouched.
    await enter(client, "cleo@example.org", world.show, world.secrets["cleo"])
    me = await call(client, "GET", "/credentials/me", world.contributor, expect=200)
    assert me["name"] == "Cleo"
    listed = await call(
        client, "GET", f"/shows/{world.show}/contributors", world.show_admin, expect=200
    )
    assert {c["email"] for c in listed["items"]} == {"cleo@example.org", "dev@example.org"}
    # B addressing A's contributor id through its own show is a 404, never an edit.
    await call(
        client,
        "PATCH",
        f"/shows/{world.other_show}/contributors/{world.ids['cleo']}",
        world.other_show_admin,
        {"reset_secret": True},
        404,
    )
    # Removing B's membership leaves A's alone.
    await call(
        client,
        "DELETE",
        f"/shows/{world.other_show}/contributors/{added['id']}",
        world.other_show_admin,
        expect=204,
    )
    await call(client, "GET", "/credentials/me", world.contributor, expect=200)


async def test_reset_secret_kills_credentials_made_from_the_old_one(
    client: Client, world: World
) -> None:
    """Case 4: after a reset the old credential and its refresh are refused."""
    second = await enter(client, "cleo@example.org", world.show, world.secrets["cleo"])
    await call(
        client,
        "PATCH",
        f"/shows/{world.show}/contributors/{world.ids['cleo']}",
        world.show_admin,
        {"reset_secret": True},
        200,
    )
    for token in (world.contributor, second):
        problem = await call(client, "GET", "/credentials/me", token, expect=401)
        assert "secret reset" in problem["detail"]
        await call(client, "POST", "/credentials/refresh", token, {"duration": 60}, 401)
    # The same holds for a show admin reset by the admin.
    await call(
        client,
        "PATCH",
        f"/shows/{world.show}/admins/{world.ids['sam']}",
        world.admin,
        {"reset_secret": True},
        200,
    )
    await call(client, "GET", "/credentials/me", world.show_admin, expect=401)
