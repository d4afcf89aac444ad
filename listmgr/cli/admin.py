"""`listmgr user create | token create | demo`."""

from __future__ import annotations

import click

from listmgr.cli.base import get_runtime, main
from listmgr.errors import NotFound
from listmgr.models import Role
from listmgr.services import accounts, audit, users

ROLES = click.Choice([r.value for r in Role])


@main.group()
def user() -> None:
    """Admin users."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--role", type=ROLES, default="owner", show_default=True)
@click.option("--name", default="")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="LISTMGR_NEW_PASSWORD",
)
def user_create(email: str, role: str, name: str, password: str) -> None:
    """Create an admin user (the password must be hard to guess)."""
    rt = get_runtime()
    uid = accounts.create_user(rt, email=email, password=password, role=role, name=name)
    audit.record(
        rt,
        actor="cli",
        action="user.create",
        target_type="user",
        target_id=uid,
        detail={"role": role, "via": "cli"},
    )
    click.echo(f"created user {uid} ({role})")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--role", type=ROLES, required=True)
@click.option("--name", default="")
@click.option("--user", "user_email", default=None, help="Owner of the token (email).")
def token_create(role: str, name: str, user_email: str | None) -> None:
    """Create an API token and print only the token (it is shown once)."""
    rt = get_runtime()
    user_id = None
    if user_email:
        user_id = users.user_id_by_email(rt, user_email)
        if user_id is None:
            raise NotFound(f"no user {user_email}")
    issued = accounts.issue_token(rt, role=role, user_id=user_id, name=name)
    audit.record(
        rt,
        actor="cli",
        action="token.create",
        target_type="token",
        target_id=issued.id,
        detail={"role": role, "name": name, "via": "cli"},
    )
    click.echo(issued.token)


@main.command()
def demo() -> None:
    """Sample data: a list with a few subscribers, to click through."""
    from listmgr.services import demo as demo_service

    summary = demo_service.load(get_runtime())
    click.echo(summary)
