"""DICOM facts on jobs (view position, pixel spacing); the PACS bridge's cursor and instances

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("view_position", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("pixel_spacing_mm", sa.Float(), nullable=True))
    op.create_table(
        "pacs_cursors",
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )
    op.create_table(
        "pacs_instances",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("instance_id", sa.String(100), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('new', 'submitted', 'done', 'skipped', 'failed')", name="ck_pacs_state"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "instance_id", name="uq_pacs_source_instance"),
    )
    op.create_index("ix_pacs_instances_state", "pacs_instances", ["state"])


def downgrade() -> None:
    op.drop_index("ix_pacs_instances_state", table_name="pacs_instances")
    op.drop_table("pacs_instances")
    op.drop_table("pacs_cursors")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("pixel_spacing_mm")
        batch_op.drop_column("view_position")
