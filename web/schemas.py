"""The API's shapes as pydantic models: the OpenAPI 3.1 contract is generated from these and from the
routes that name them (web/contract.py). They describe what web/serializers.py produces; the
schemathesis test checks every answer of the live service against them.

Within v1 fields may be added, never removed, renamed or retyped (README, "API contract").
"""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from spectree.model_adapter.pydantic_adapter import BaseFile

Status = Literal["queued", "running", "succeeded", "failed"]


class Open(BaseModel):
    """Clients must ignore fields they do not know: v1 may add some."""

    model_config = ConfigDict(extra="allow")


class FileError(Open):
    filename: str
    error: str


class ErrorBody(Open):
    status: int = Field(description="The HTTP status, repeated")
    message: str = Field(description="What went wrong, for a person")
    files: list[FileError] | None = Field(None, description="Per file, why it was refused (uploads only)")


class Error(Open):
    """Every error of the API has this shape."""

    error: ErrorBody


class Model(Open):
    name: str
    version: str = Field(description="A hash of the model file: results name the exact model")
    architecture: str
    trained: bool
    warning: str | None = Field(description="Set when the model is untrained: its output is meaningless")
    card_url: str


class OperatingPoint(Open):
    """How the finding's threshold performs, measured on a labelled set (see ``split``)."""

    sensitivity: float | None
    sensitivity_ci: list[float | None] | None
    specificity: float | None
    specificity_ci: list[float | None] | None


class Quality(Open):
    """The model's measured quality for one finding, from its model card: on the external set when the
    model has one, else on its held-out test patients (``split``)."""

    auroc: float | None
    ci_low: float | None
    ci_high: float | None
    positives: int | None
    reliable: bool = Field(description="True when the 95% interval lies above 0.5")
    split: str
    operating_point: OperatingPoint | None = Field(None, description="Sensitivity and specificity at the threshold")


class InputCheck(Open):
    """The input gate's verdict: is this image a frontal chest radiograph?"""

    result: Literal["ok", "not_a_radiograph", "not_a_chest", "not_frontal", "inverted", "rotated"]
    score: float = Field(description="0..1: how sure the gate is that the image is a frontal chest radiograph")
    reason: str = Field(description="What the gate saw, for a person")
    version: str = Field(description="The gate's version (it travels with the model artifact)")


class Finding(Open):
    label: str
    display_name: str
    probability: float
    threshold: float
    positive: bool = Field(description="probability ≥ threshold")
    summary: bool = Field(description='True for "No Finding": a summary, never a heatmap')
    reliable: bool = Field(False, description="The model's AUROC interval for this finding lies above 0.5")
    overlay_url: str | None
    quality: Quality | None = None


class Thumbnail(Open):
    label: str
    display_name: str
    above_threshold: bool
    url: str


class Dicom(Open):
    view_position: str | None = Field(description="As the modality wrote it: PA, AP, LL, RL, ... (null: not stated)")
    frontal: bool | None = Field(description="PA or AP; the model was trained on frontal views only")
    pixel_spacing_mm: float | None
    image_url: str = Field(description="The de-identified DICOM file as stored")
    report_url: str | None = Field(description="A DICOM Measurement Report (SR, TID 1500) of the findings (once analysed)")
    map_url: str | None = Field(description="A DICOM Parametric Map, a frame per shown finding's heatmap (null: none shown)")
    heatmap_urls: dict[str, str] = Field(description="A DICOM Secondary Capture (JPEG) per shown finding's heatmap")


class JobSummary(Open):
    id: str
    batch_id: str
    position: int
    filename: str
    status: Status
    error: str | None
    attempts: int
    width: int | None
    height: int | None
    url: str
    page_url: str
    image_url: str | None
    model: Model | None
    summary: str | None
    shown_findings: list[Finding] = Field(description="Findings above threshold, most probable first (empty when "
                                                      "findings_hidden)")
    no_finding: bool | None = Field(None, description='"No Finding": true exactly when no finding is above its '
                                                      "threshold (null until analysed, or when findings_hidden)")
    input_check: InputCheck | None = Field(None, description="The input gate's verdict (null before analysis)")
    findings_hidden: bool = Field(False, description="The input gate says this is not a frontal chest radiograph: "
                                                     "no finding is shown as the answer (`findings` still has them)")
    thumbnail: Thumbnail | None
    dicom: Dicom | None = Field(description="Only for DICOM uploads")
    warnings: list[str] = Field(description="About this image, e.g. a lateral view")
    finished_at: dt.datetime | None
    updated_at: dt.datetime | None


class Notice(Open):
    served_model: Model | None
    warnings: list[str]
    disclaimer: str


class Job(JobSummary, Notice):
    findings: list[Finding] = Field(description="All 15, in label order")
    opening_label: str | None = Field(None, description="The finding a viewer opens on: the most probable reliable "
                                                        "one above threshold, else the most probable reliable one")
    reliability_set: str | None = Field(None, description="Where the reliability flags come from: external or test")
    maps_url: str | None
    timings_ms: dict[str, float | None]
    runtime: str | None = Field(description="What computed the result: the Keras backend at float32 "
                                "(tensorflow-float32, jax-float32, ...) or a variant verified for the model "
                                "(tensorflow-bf16, openvino-float32, openvino-bf16); null until analysed")
    created_at: dt.datetime | None
    started_at: dt.datetime | None


class Counts(Open):
    queued: int
    running: int
    succeeded: int
    failed: int


class Batch(Notice):
    id: str
    name: str | None
    callback_url: str | None = Field(description="Where the batch-finished webhook goes (the owner's default if unset)")
    webhooks_url: str
    created_at: dt.datetime | None
    total: int
    done: int
    finished: bool
    counts: Counts
    images_per_second: float | None
    eta_seconds: float | None
    url: str
    page_url: str
    downloads: dict[str, str]
    cursor: dt.datetime | None = Field(description="Pass as ?since= to get only what changed after this answer")
    partial: bool = Field(description="True when only the jobs changed since the cursor are listed")
    jobs: list[JobSummary]


class BatchListItem(Open):
    id: str
    created_at: dt.datetime | None
    total: int
    done: int
    finished: bool
    counts: Counts
    url: str


class BatchList(Notice):
    batches: list[BatchListItem]
    page: int
    per_page: int
    total: int
    pages: int


class Maps(Open):
    labels: list[str]
    height: int
    width: int
    scale: str
    colormap: list[list[int]] = Field(description="256 RGB colours: level → colour")
    default_opacity: float
    maps: dict[str, str] = Field(description="label → base64 of height × width uint8 levels, row-major")


class CurrentModel(Notice):
    model: Model | None


class Health(Open):
    status: Literal["ok", "unavailable"]
    database: str


# The shape of a callback URL (empty: none); whether its host is public is checked when it is given.
HTTP_URL = r"^$|^https?://[^/?#\s]+"


class Upload(BaseModel):
    """multipart/form-data: the images, and an optional name."""

    files: list[BaseFile] = Field(description="PNG, JPEG or DICOM (CR/DX) images (the field may also be called 'file')")
    name: str | None = Field(None, description="A name for the batch, shown in the history")
    callback_url: str | None = Field(None, pattern=HTTP_URL, max_length=2000,
                                     description="Called (signed POST) when the batch is finished; http(s), "
                                                 "public addresses only (checked when given: 400 otherwise)")


class BatchQuery(BaseModel):
    since: dt.datetime | None = Field(None, description="The cursor of an earlier answer: list only jobs changed since")


class PageQuery(BaseModel):
    page: int | None = Field(None, description="1 or more (values out of range are brought into it)")
    per_page: int | None = Field(None, description="1 to 100 (values out of range are brought into it)")


class OverlayQuery(BaseModel):
    format: Literal["jpeg", "png"] = "jpeg"
    opacity: float = Field(0.4, ge=0.0, le=1.0)
    size: Literal["full", "thumb"] = "full"


class UploadHeaders(BaseModel):
    idempotency_key: str | None = Field(None, alias="Idempotency-Key", max_length=200,
                                        description="Retry safely: the same key and files within 24 h return the first batch")


class WebhookAttempt(Open):
    at: dt.datetime | None
    status_code: int | None
    error: str | None
    duration_ms: float


class WebhookDelivery(Open):
    id: str
    url: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    attempt_log: list[WebhookAttempt]


class WebhookDeliveries(Open):
    batch_id: str
    deliveries: list[WebhookDelivery]


class WebhookSettings(Open):
    url: str | None = Field(description="The default callback for batches that name none")
    secret: str = Field(description="Signs every delivery: HMAC-SHA256 over '<X-Xray-Timestamp>.<body>'")


class WebhookSettingsIn(BaseModel):
    url: str | None = Field(None, pattern=HTTP_URL, max_length=2000,
                            description="A default callback URL (http(s), public addresses only: 400 otherwise); "
                                        "null removes it")
