"""heatmaps stored as data on the job; a change cursor for polling; batch names

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("maps", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                                      nullable=False))
        batch_op.create_index("ix_jobs_updated_at", ["updated_at"])
    with op.batch_alter_table("batches") as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch_op:
        batch_op.drop_column("name")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_updated_at")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("maps")
