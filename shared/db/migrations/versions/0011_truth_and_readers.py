"""Ground truth and readers: a batch's label file (truth_labels), readers' per-finding labels
(reader_labels), reader grants on a batch (batch_readers) and the stored evaluations (batch_evaluations)

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch_op:
        batch_op.add_column(sa.Column("truth_summary", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("evaluation_due", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_batches_evaluation_due", "batches", ["evaluation_due"])
    op.create_table(
        "truth_labels",
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("batch_id", sa.Uuid(), sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("patient_key", sa.String(64), nullable=True),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("sex", sa.String(1), nullable=True),
        sa.Column("view", sa.String(8), nullable=True),
    )
    op.create_table(
        "reader_labels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("batch_id", sa.Uuid(), sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("reader_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("label", sa.String(50), nullable=False),
        sa.Column("answer", sa.String(8), nullable=False),
        sa.Column("model_missed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("model_version", sa.String(80), nullable=True),
        sa.Column("blind", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("answer IN ('present', 'absent', 'unsure')", name="ck_reader_labels_answer"),
        sa.UniqueConstraint("job_id", "reader_id", "label", name="uq_reader_labels_job_reader_label"),
    )
    op.create_table(
        "batch_readers",
        sa.Column("batch_id", sa.Uuid(), sa.ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("granted_by", sa.Uuid(), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "batch_evaluations",
        sa.Column("batch_id", sa.Uuid(), sa.ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_version", sa.String(80), primary_key=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("batch_evaluations")
    op.drop_table("batch_readers")
    op.drop_table("reader_labels")
    op.drop_table("truth_labels")
    op.drop_index("ix_batches_evaluation_due", "batches")
    with op.batch_alter_table("batches") as batch_op:
        batch_op.drop_column("evaluation_due")
        batch_op.drop_column("evaluated_at")
        batch_op.drop_column("truth_summary")
