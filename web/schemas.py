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
    received_at: dt.datetime | None = Field(None, description="When the upload was received")
    queue_seconds: float | None = Field(None, description="From received to started (the last attempt's start)")
    run_seconds: float | None = Field(None, description="From started to finished")
    worker: str | None = Field(None, description="The worker that ran (or runs) the last attempt")


class Notice(Open):
    served_model: Model | None
    warnings: list[str]
    disclaimer: str


class VersionMaps(Open):
    version: str = Field(description="A model version that analysed this image too (a rerun or shadow traffic)")
    kind: str = Field(description="rerun or shadow")
    maps_url: str = Field(description="Its maps: GET /jobs/<id>/maps?version=<version>")
    probabilities: dict[str, float] = Field(description="label → its probability under that version")


class Job(JobSummary, Notice):
    findings: list[Finding] = Field(description="All 15, in label order")
    opening_label: str | None = Field(None, description="The finding a viewer opens on: the most probable reliable "
                                                        "one above threshold, else the most probable reliable one")
    reliability_set: str | None = Field(None, description="Where the reliability flags come from: external or test")
    maps_url: str | None
    values_url: str | None = Field(None, description="The image's own values at full bit depth (window/level, readout)")
    other_versions: list[VersionMaps] = Field([], description="Other model versions' succeeded results on this image, "
                                                              "with their maps (never the served answer)")
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
    model_version: str | None = Field(description="The model version resolved when the batch was submitted (every "
                                                  "job runs on it); null: the workers' own model folder")
    model_ref: str | None = Field(description="The version or alias the submitter named, if any")
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
    model_version: str | None = Field(None, description="The model version these maps are from")
    labels: list[str]
    height: int
    width: int
    scale: str
    colormap: list[list[int]] = Field(description="256 RGB colours: level → colour")
    default_opacity: float
    maps: dict[str, str] = Field(description="label → base64 of height × width uint8 levels, row-major")


class WindowLevel(Open):
    centre: float
    width: float


class PixelValues(Open):
    height: int
    width: int
    original_width: int = Field(description="The file's width in pixels, before the working size")
    original_height: int
    bits: int = Field(description="Bits stored per pixel (8 for 8-bit files)")
    source: str = Field(description="What the values are, in words")
    monochrome1: bool = Field(description="True when low values are bright (DICOM MONOCHROME1)")
    minimum: float
    maximum: float
    windows: dict[str, WindowLevel] = Field(
        description="default (the file's own window), lung, soft_tissue, bone, full_range")
    pixel_spacing_mm: list[float] | None = Field(description="[row, column] spacing of the file's pixels, or null")
    pixel_spacing_source: str | None
    values: str = Field(description="base64 of height × width little-endian float32 values, row-major")


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
    model: str | None = Field(None, max_length=80, description="A model version (or a unique prefix of 8 or more "
                              "characters) or an alias such as 'candidate'; empty: the 'default' alias. Resolved "
                              "once, at submit: the batch keeps that version even if the alias moves")
    labels: BaseFile | None = Field(None, description="Ground truth: an NIH-style label CSV matched to the files by "
                                                      "name (see PUT /batches/{batch_id}/labels)")


class BatchQuery(BaseModel):
    since: dt.datetime | None = Field(None, description="The cursor of an earlier answer: list only jobs changed since")


class PageQuery(BaseModel):
    page: int | None = Field(None, description="1 or more (values out of range are brought into it)")
    per_page: int | None = Field(None, description="1 to 100 (values out of range are brought into it)")


class MapsQuery(BaseModel):
    version: str | None = Field(None, max_length=80, pattern=r"^[A-Za-z0-9._:-]+$",
                                description="Another model version's maps of this image (one of the job's "
                                            "other_versions); the served version's without it")


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


class ModelVersionOut(Open):
    """A model version in the registry."""

    version: str = Field(description="The hash of its model file; results name it")
    name: str
    architecture: str
    trained: bool
    status: Literal["verifying", "ready", "rejected"] = Field(
        description="'verifying' until a worker checked it on real X-rays; only 'ready' serves")
    reason: str | None = Field(description="Why it was rejected")
    stored: bool = Field(description="Pushed to the registry (false: a worker's own folder registered it)")
    size_bytes: int | None
    uploaded_at: dt.datetime | None
    registered_at: dt.datetime | None
    aliases: list[str]
    jobs: int = Field(description="Results it produced")
    card_url: str


class ModelAliasOut(Open):
    name: str
    version: str
    share: float | None = Field(description="The shadow alias only: the share of default traffic it also runs")
    moved_at: dt.datetime


class ModelRegistry(Open):
    versions: list[ModelVersionOut]
    aliases: list[ModelAliasOut]


class ModelPush(BaseModel):
    """multipart/form-data: the artifact folder as a tar archive (gzip allowed)."""

    artifact: BaseFile = Field(description="model.keras, manifest.json and what sits beside them (runtimes, gate.json)")


class ModelAliasIn(BaseModel):
    version: str = Field(max_length=80, description="A version id (or unique prefix) or another alias")
    share: float | None = Field(None, gt=0, le=1, description="The shadow alias only (default 0.1)")


class CompareQuery(BaseModel):
    served: str = Field(max_length=80, description="The version (or alias) whose results were served")
    other: str = Field(max_length=80, description="The version (or alias) that ran beside it (shadow, rerun)")


class FindingAgreement(Open):
    finding: str
    images: int
    disagreement: float | None = Field(description="Share of images where the two threshold decisions differ")
    correlation: float | None = Field(description="Pearson correlation of the two probabilities")
    positive_served: float | None
    positive_other: float | None


class ModelAgreement(Open):
    served: str
    other: str
    images: int
    findings: list[FindingAgreement]


class LabelUpload(BaseModel):
    """multipart/form-data: an NIH-style label CSV."""

    labels: BaseFile = Field(description="CSV with 'Image Index' and 'Finding Labels' (joined by '|'); optional "
                                         "'Patient ID', 'Patient Age', 'Patient Gender', 'View Position'")


class LabelReport(Open):
    batch_id: str | None = None
    images_labelled: int
    rows: int
    unmatched_rows: int
    unmatched_images: int
    unmatched_row_names: list[str] = Field(description="Up to 20 names of rows no image matched (not stored)")
    unmatched_image_names: list[str] = Field(description="Up to 20 images no row matched (not stored)")


class EvaluationVersion(Open):
    model_version: str
    model_name: str | None
    computed_at: str | None
    seconds: float | None
    figures: dict = Field(description="images, patients, mean_auroc (+ci), per_label {auroc, ci_low, ci_high, status "
                                      "(scored | too_few), positives, negatives, threshold, sensitivity / specificity / "
                                      "ppv / npv {value, ci_low, ci_high}, confusion, roc, calibration, ece}, subgroups")


class Evaluation(Open):
    batch_id: str
    state: Literal["no_labels", "waiting_for_jobs", "due", "ready"]
    truth: dict | None
    evaluated_at: str | None
    versions: list[EvaluationVersion]
    readers: dict | None = Field(description="Readers, their Cohen's κ per finding with each other and with the truth")


class ReaderQuery(BaseModel):
    reader: str | None = Field(None, max_length=80, description="Only this reader's labels (a username)")


class ReaderAnswer(Open):
    reader: str | None
    label: str
    answer: Literal["present", "absent", "unsure"]
    model_missed: bool
    model_version: str | None
    blind: bool
    at: str


class JobLabels(Open):
    job_id: str
    labels: list[str]
    mine: dict[str, str]
    readers: list[ReaderAnswer]
    truth: list[str] | None = Field(None, description="The truth file's findings (owner and admins only)")


# The labels as a type, so the contract lists them (tests/shared/test_truth.py checks it equals LABELS).
FindingName = Literal["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis", "Hernia",
                      "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax", "No Finding"]


class JobLabelsIn(BaseModel):
    answers: dict[FindingName, Literal["present", "absent", "unsure"]] = Field(
        min_length=1, description="Finding → present, absent or unsure (one or more findings)")
    blind: bool = Field(False, description="You read the image without the model's answer")


class Reader(Open):
    username: str
    granted_at: str


class Readers(Open):
    batch_id: str
    readers: list[Reader]


class RerunIn(BaseModel):
    model: str = Field(max_length=80, description="The version (or alias) to analyse the batch's images with again")


class RerunOut(Open):
    batch_id: str
    model_version: str
    queued: int = Field(description="Images queued under that version (those it has not analysed yet)")
    evaluation_url: str
