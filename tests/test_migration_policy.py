"""The migration policy (README, Production, "8. Upgrades"): a migration expands the schema, so
that the previous release keeps working on it during a rolling deploy. It adds tables, indexes,
nullable columns or columns with a server default; it does not drop or rename a table or a
column, change a column's type, make it NOT NULL or drop its server default. Removing what an
older release used is a contract step, released once no process of that release runs, and
says so with a module-level `contract = "what it removes; the release since which no code
uses it"`.

Read from the migrations' source (their upgrade() only), not by running them: what it does not
see (a dropped constraint an older release relies on, data rewritten in place) stays for review,
and tests/test_rolling_upgrade.py runs the previous release on the new schema."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from listmgr import schema

# Every migration after this one follows the policy. It is the last that narrowed what older code
# read (subscriber.fields and activity properties became jsonb on PostgreSQL), before the
# policy was written down.
BASELINE = "s1a2"
# Raw SQL that removes, renames or narrows what older code reads.
RAW = re.compile(
    r"\b(DROP\s+(TABLE|COLUMN)|RENAME\s+(TO|COLUMN)|ALTER\s+COLUMN\s+\S+\s+"
    r"(TYPE|SET\s+DATA\s+TYPE|SET\s+NOT\s+NULL|DROP\s+DEFAULT))\b",
    re.IGNORECASE,
)


def _false(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _keywords(call: ast.Call) -> dict[str | None, ast.expr]:
    return {k.arg: k.value for k in call.keywords}


def contract_note(source: str) -> str | None:
    """The migration's `contract = "..."` (None: it is an expand step)."""
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "contract" for t in node.targets)
            and isinstance(node.value, ast.Constant)
        ):
            return str(node.value.value)
    return None


def violations(source: str) -> list[str]:
    """What upgrade() does that an expand step may not, one line each."""
    tree = ast.parse(source)
    upgrade = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade")
    found: list[str] = []
    for node in ast.walk(upgrade):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, kw, where = node.func.attr, _keywords(node), f"line {node.lineno}"
        if name in ("drop_table", "drop_column", "rename_table"):
            found.append(f"{where}: {name}")
        elif name == "alter_column":
            if "new_column_name" in kw:
                found.append(f"{where}: alter_column renames a column")
            if "type_" in kw:
                found.append(f"{where}: alter_column changes a column's type")
            if _false(kw.get("nullable")):
                found.append(f"{where}: alter_column makes a column NOT NULL")
            default = kw.get("server_default")
            if isinstance(default, ast.Constant) and default.value is None:
                found.append(f"{where}: alter_column drops a column's server default")
        elif name == "add_column":
            column = node.args[-1] if node.args else kw.get("column")
            if isinstance(column, ast.Call):
                ckw = _keywords(column)
                if _false(ckw.get("nullable")) and "server_default" not in ckw:
                    found.append(f"{where}: add_column NOT NULL without a server_default")
        elif name == "execute":
            sql = " ".join(
                c.value
                for c in ast.walk(node)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
            raw = RAW.search(sql)
            if raw:
                found.append(f"{where}: raw SQL {raw.group(0)!r}")
    return found


def _after_baseline() -> list[tuple[str, Path]]:
    scripts = ScriptDirectory.from_config(schema.alembic_config("sqlite://"))
    assert scripts.get_revision(BASELINE) is not None
    return [
        (rev.revision, Path(rev.path))
        for rev in scripts.walk_revisions(base=BASELINE, head="heads")
        if rev.revision != BASELINE
    ]


@pytest.mark.parametrize(("revision", "path"), _after_baseline(), ids=lambda v: str(v))
def test_a_migration_after_the_baseline_only_expands(revision, path):
    source = path.read_text()
    note = contract_note(source)
    if note is not None:
        assert note.strip(), f"{path.name}: `contract` must say what it removes and since when"
        return
    assert violations(source) == [], (
        f"{path.name} removes or narrows what the previous release reads: keep it for a "
        'later release and mark that migration `contract = "..."` (README, Upgrades)'
    )


ALLOWED = """
def upgrade() -> None:
    op.create_table("t", sa.Column("id", sa.Integer(), primary_key=True))
    with op.batch_alter_table("campaign") as batch_op:
        batch_op.add_column(sa.Column("a", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("b", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_t", "t", ["id"])
    op.drop_index("ix_old", table_name="delivery")
    op.execute("UPDATE app_user SET failed_logins = 0")


def downgrade() -> None:
    op.drop_table("t")
"""
REFUSED = {
    "drop a column": 'with op.batch_alter_table("x") as b:\n        b.drop_column("c")',
    "drop a table": 'op.drop_table("x")',
    "rename a table": 'op.rename_table("x", "y")',
    "rename a column": 'op.alter_column("x", "c", new_column_name="d")',
    "change a type": 'op.alter_column("x", "c", type_=sa.Text())',
    "make NOT NULL": 'op.alter_column("x", "c", nullable=False)',
    "drop a default": 'op.alter_column("x", "c", server_default=None)',
    "add NOT NULL": 'op.add_column("x", sa.Column("c", sa.Integer(), nullable=False))',
    "raw drop": 'op.execute("ALTER TABLE x DROP COLUMN c")',
    "raw type": 'op.execute("ALTER TABLE subscriber ALTER COLUMN fields TYPE jsonb")',
    "raw default": 'op.execute("ALTER TABLE x ALTER COLUMN c DROP DEFAULT")',
}


def test_the_check_lets_an_expand_step_pass():
    assert violations(ALLOWED) == []
    assert contract_note(ALLOWED) is None


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_check_finds_what_an_expand_step_may_not_do(case):
    source = f"def upgrade() -> None:\n    {REFUSED[case]}\n"
    assert len(violations(source)) == 1, violations(source)
    marked = f'contract = "drops x.c, unused since 0.2"\n\n{source}'
    assert contract_note(marked) == "drops x.c, unused since 0.2"
