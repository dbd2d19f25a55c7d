"""ORM models: the system of record for every user, batch, job and finding.

Runs on Postgres and SQLite alike (the embedded default); the schema itself is created by the Alembic
migrations in shared/db/migrations, never by create_all.
"""
from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, DateTime, Float, ForeignKey, Integer, LargeBinary,
                        String, Text, UniqueConstraint, Uuid, func)
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
    # The registry (shared/model/registry.py): a pushed version is 'verifying' until a worker checked it on
    # real X-rays, then 'ready' or 'rejected' (with the reason). A version a worker registered from its own
    # folder is ready and not stored (folder_sha256 None): only workers holding that folder can serve it.
    status: Mapped[str] = mapped_column(String(12), default="ready", server_default="ready")
    reason: Mapped[str | None] = mapped_column(Text)
    folder_sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    uploaded_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # no foreign key: outlives users, like the audit
    uploaded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def stored(self) -> bool:
        return self.folder_sha256 is not None


class ModelAlias(Base):
    """A name for a version: 'default' (what a batch gets when it names none), 'shadow' (also run on a share of
    default traffic, never shown as the answer) or any other. Moving one is a promotion or a rollback."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"))
    share: Mapped[float | None] = mapped_column(Float)  # shadow only: the share of default jobs it also runs
    moved_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    moved_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class Role(str, enum.Enum):
    ADMIN = "admin"  # sees every owner's batches (each such access is audited) and the audit log
    MEMBER = "member"  # sees only their own


class User(Base):
    """A person (or a program acting for one) who owns batches. Passwords are stored as Argon2 hashes."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'member')", name="ck_users_role"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(80), unique=True)  # stored lower case
    password_hash: Mapped[str | None] = mapped_column(String(200))  # None: cannot sign in with a password
    role: Mapped[str] = mapped_column(String(10), default=Role.MEMBER.value)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Webhooks: where to say a batch finished when the batch names no URL, and the key that signs it.
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(100))

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value


class ApiToken(Base):
    """A bearer token for programs. Only a SHA-256 of its secret part is kept; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # public part, to find and list it
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class SignInLink(Base):
    """A one-time sign-in link (``make run`` prints one for the local admin), kept as a hash."""

    __tablename__ = "sign_in_links"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A signed-in browser, kept here and not in the cookie. The cookie carries a random secret whose
    SHA-256 is this row's id; ending the row (sign-out, a password change, disabling the user, the idle or
    absolute timeout) signs that browser out, even where someone copied the cookie before."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's secret
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    # A new API token to show once: XOR-ed with a pad that only the cookie holds, so neither this row
    # nor the cookie alone reveals it; cleared when shown.
    reveal: Mapped[bytes | None] = mapped_column(LargeBinary)


class AuditEvent(Base):
    """Append-only (a database trigger refuses UPDATE and DELETE): who did what to which id, from where.
    Never a file name or anything else a patient could be identified by."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)  # no foreign key: outlives users
    actor: Mapped[str | None] = mapped_column(String(80))  # the username then
    action: Mapped[str] = mapped_column(String(40), index=True)
    target_type: Mapped[str | None] = mapped_column(String(20))
    target_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict | None] = mapped_column(JSON)


class Batch(Base):
    """One submission of one or many images by one owner."""

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))  # optional, given at upload
    callback_url: Mapped[str | None] = mapped_column(String(2000))  # a webhook for this batch (else the owner's)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    job_count: Mapped[int] = mapped_column(Integer)
    # The version resolved when the batch was submitted (an alias move later does not split it); None: the
    # workers' own model folder (no registry default). model_ref: what the submitter asked for, if anything.
    model_version: Mapped[str | None] = mapped_column(ForeignKey("model_versions.version"))
    model_ref: Mapped[str | None] = mapped_column(String(80))
    # Ground truth (shared/truth): what the label file matched, when the evaluation was last computed, and
    # whether labels changed since (the worker or the recovery loop computes it again; never a web request).
    truth_summary: Mapped[dict | None] = mapped_column(JSON)
    evaluated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    evaluation_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0", index=True)

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
    size_bytes: Mapped[int] = mapped_column(Integer)  # as uploaded
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # on storage now
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # From a DICOM header (shared/imaging/dicom_in.py): PA, AP, LL, ... and the detector's pixel spacing.
    view_position: Mapped[str | None] = mapped_column(String(16))
    pixel_spacing_mm: Mapped[float | None] = mapped_column(Float)

    status: Mapped[str] = mapped_column(String(20), index=True, default=JobStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    model_version: Mapped[str | None] = mapped_column(ForeignKey("model_versions.version"))
    # What computed the result: the backend at float32 or a verified variant (worker/runtimes.py).
    runtime: Mapped[str | None] = mapped_column(String(40))

    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # How often the job was put on the queue; the relay waits twice as long before each resend.
    dispatch_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Every status change moves this on: pages poll for "what changed since" with it.
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now(),
                                                    index=True)
    # The 15 class activation maps at feature resolution, as one small PNG (shared/imaging/maps.py).
    maps: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The input gate's verdict (shared/model/gate.py): {"result", "score", "reason", "version"}. A result other
    # than "ok" hides the findings by default (XRAY_INPUT_GATE=flag) or fails the job (refuse).
    input_check: Mapped[dict | None] = mapped_column(JSON)
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
    """One label's result for one job. overlay_key: a JPEG overlay drawn by workers before heatmaps were
    stored as data (jobs.maps); newer results leave it empty and overlays are drawn on request."""

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


class IdempotencyKey(Base):
    """An upload's Idempotency-Key: a retry with the same key and files returns the first answer."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("owner_id", "key", name="uq_idempotency_owner_key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))  # what was sent with the key
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))  # None: in progress
    response: Mapped[dict | None] = mapped_column(JSON)  # the first answer's body
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class WebhookDelivery(Base):
    """One "batch finished" notification to one URL, retried with backoff until a 2xx or the attempt limit."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="ck_webhook_state"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), unique=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    state: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    attempt_log: Mapped[list["WebhookAttempt"]] = relationship(
        order_by="WebhookAttempt.id", cascade="all, delete-orphan")


class WebhookAttempt(Base):
    """Every try of a delivery: when, what came back (status or error), how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)


class PacsCursor(Base):
    """How far the PACS bridge has read a PACS's change feed (pacs/bridge.py)."""

    __tablename__ = "pacs_cursors"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PacsInstance(Base):
    """One image the PACS announced, from first sight to results stored back (or skipped, or failed)."""

    __tablename__ = "pacs_instances"
    __table_args__ = (
        CheckConstraint("state IN ('new', 'submitted', 'done', 'skipped', 'failed')", name="ck_pacs_state"),
        UniqueConstraint("source", "instance_id", name="uq_pacs_source_instance"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    source: Mapped[str] = mapped_column(String(100))
    instance_id: Mapped[str] = mapped_column(String(100))  # the PACS's own opaque id (Orthanc: a hash)
    seq: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(12), default="new", index=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VersionResult(Base):
    """A job's image analysed by another version than its batch's: shadow traffic (a share of default jobs
    also runs on the 'shadow' alias) or a rerun. Kept beside the served result, never shown as the answer."""

    __tablename__ = "version_results"
    __table_args__ = (UniqueConstraint("job_id", "model_version", name="uq_version_results_job_version"),
                      CheckConstraint("kind IN ('shadow', 'rerun')", name="ck_version_results_kind"),
                      CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')",
                                      name="ck_version_results_status"))

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED.value)
    probabilities: Mapped[dict | None] = mapped_column(JSON)  # label -> probability
    maps: Mapped[bytes | None] = mapped_column(LargeBinary)
    runtime: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    job: Mapped[Job] = relationship()


class TruthLabel(Base):
    """One image's ground truth from a batch's label file. The patient is kept only as an HMAC of the
    file's Patient ID with the service's secret (enough to resample patients, not to name one)."""

    __tablename__ = "truth_labels"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    labels: Mapped[list] = mapped_column(JSON)  # the findings present (LABELS names); ["No Finding"] when none
    patient_key: Mapped[str | None] = mapped_column(String(64))
    age: Mapped[int | None] = mapped_column(Integer)
    sex: Mapped[str | None] = mapped_column(String(1))  # M or F
    view: Mapped[str | None] = mapped_column(String(8))  # PA, AP, ...


class ReaderLabel(Base):
    """A reader's word on one finding of one image: present, absent or unsure, whether the model missed it
    (present while the model said no), the model version the reader saw and whether they read blind."""

    __tablename__ = "reader_labels"
    __table_args__ = (
        CheckConstraint("answer IN ('present', 'absent', 'unsure')", name="ck_reader_labels_answer"),
        UniqueConstraint("job_id", "reader_id", "label", name="uq_reader_labels_job_reader_label"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), index=True)
    reader_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(50))
    answer: Mapped[str] = mapped_column(String(8))
    model_missed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    model_version: Mapped[str | None] = mapped_column(String(80))
    blind: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    reader: Mapped[User] = relationship()


class BatchReader(Base):
    """A reader role on one batch, granted by an admin: read and label it, never delete it."""

    __tablename__ = "batch_readers"

    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    granted_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    granted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[User] = relationship()


class BatchEvaluation(Base):
    """A batch's evaluation against its labels for one model version (figures from
    shared.stats.evaluation); the row with model_version "readers" holds the readers' agreement."""

    __tablename__ = "batch_evaluations"

    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(80), primary_key=True)
    figures: Mapped[dict] = mapped_column(JSON)
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    seconds: Mapped[float | None] = mapped_column(Float)
