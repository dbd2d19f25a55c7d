"""The model registry: stored versions with their arrival check, aliases (default, shadow, named ones),
the version each batch resolved at submit time, and results of a job's image under another version
(shadow traffic, reruns)

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch_op:
        # Versions that workers registered before the registry existed served results: they are ready.
        batch_op.add_column(sa.Column("status", sa.String(12), nullable=False, server_default="ready"))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("folder_sha256", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("uploaded_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint("ck_model_versions_status",
                                         "status IN ('verifying', 'ready', 'rejected')")
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("version", sa.String(80), sa.ForeignKey("model_versions.version"), nullable=False),
        sa.Column("share", sa.Float(), nullable=True),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("moved_by", sa.Uuid(), nullable=True),
    )
    with op.batch_alter_table("batches") as batch_op:
        batch_op.add_column(sa.Column("model_version", sa.String(80), sa.ForeignKey(
            "model_versions.version", name="fk_batches_model_version"), nullable=True))
        batch_op.add_column(sa.Column("model_ref", sa.String(80), nullable=True))
    op.create_table(
        "version_results",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("model_version", sa.String(80), sa.ForeignKey("model_versions.version"), nullable=False,
                  index=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=True),
        sa.Column("maps", sa.LargeBinary(), nullable=True),
        sa.Column("runtime", sa.String(40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("job_id", "model_version", name="uq_version_results_job_version"),
        sa.CheckConstraint("kind IN ('shadow', 'rerun')", name="ck_version_results_kind"),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="ck_version_results_status"),
    )


def downgrade() -> None:
    op.drop_table("version_results")
    with op.batch_alter_table("batches") as batch_op:
        batch_op.drop_column("model_ref")
        batch_op.drop_column("model_version")
    op.drop_table("model_aliases")
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.drop_constraint("ck_model_versions_status", type_="check")
        for column in ("uploaded_at", "uploaded_by", "size_bytes", "folder_sha256", "reason", "status"):
            batch_op.drop_column(column)
