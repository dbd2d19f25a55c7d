"""ORM models: the system of record for every batch, job and finding.

Runs on Postgres and SQLite alike (the embedded default); the schema itself is created by the Alembic
migrations in shared/migrations, never by create_all.
"""
from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the service always writes UTC, so naive means UTC."""
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment


class Base(DeclarativeBase):
    pass


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


STATUS_VALUES = tuple(s.value for s in JobStatus)


class ModelVersion(Base):
    """A model artifact some worker has served; jobs name it so every result says what produced it."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    architecture: Mapped[str] = mapped_column(String(100))
    trained: Mapped[bool] = mapped_column(Boolean)
    manifest: Mapped[dict] = mapped_column(JSON)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Batch(Base):
    """One submission of one or many images by one owner."""

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    job_count: Mapped[int] = mapped_column(Integer)

    jobs: Mapped[list["Job"]] = relationship(
        back_populates="batch", order_by="Job.position", cascade="all, delete-orphan"
    )


class Job(Base):
    """One image of a batch and everything that happened to it."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUS_VALUES!r}", name="ck_jobs_status"),
        UniqueConstraint("batch_id", "position", name="uq_jobs_batch_position"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    # Storage key of the uploaded bytes; the user's file name is for display only, never a path.
    image_key: Mapped[str | None] = mapped_column(String(300))
    original_filename: Mapped[str] = mapped_column(String(300))
    content_sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str | None] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)

    status: Mapped[str] = mapped_column(String(20), index=True, default=JobStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    model_version: Mapped[str | None] = mapped_column(ForeignKey("model_versions.version"))

    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # How often the job was put on the queue; the relay waits twice as long before each resend.
    dispatch_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Where the worker's time went, in milliseconds.
    decode_ms: Mapped[float | None] = mapped_column(Float)
    inference_ms: Mapped[float | None] = mapped_column(Float)
    overlay_ms: Mapped[float | None] = mapped_column(Float)

    batch: Mapped[Batch] = relationship(back_populates="jobs")
    model: Mapped[ModelVersion | None] = relationship()
    findings: Mapped[list["Finding"]] = relationship(
        back_populates="job", order_by="Finding.probability.desc()", cascade="all, delete-orphan"
    )

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)


class Finding(Base):
    """One label's result for one job; overlay_key is set for the findings the service shows."""

    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("job_id", "label", name="uq_findings_job_label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(50))
    probability: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    positive: Mapped[bool] = mapped_column(Boolean)
    overlay_key: Mapped[str | None] = mapped_column(String(300))

    job: Mapped[Job] = relationship(back_populates="findings")
