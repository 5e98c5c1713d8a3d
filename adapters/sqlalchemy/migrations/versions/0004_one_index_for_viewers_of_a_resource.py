"""one index for the viewers of a resource

ix_sessions_subject_resource (tenant, subject, resource, kind) looked cheaper to the planner than
ix_sessions_resource_viewers for the watch-time report, which then sorted 200,000 rows it could
have read in order. The viewers index serves trial counting (tenant, resource, subject) as well.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 19:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_subject_resource")


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sessions_subject_resource",
            ["tenant_id", "subject_id", "resource_id", "kind"],
            unique=False,
        )
