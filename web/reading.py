"""What a person reads of one job, decided once for every page, export, report and DICOM object.

- The input gate (shared/model/gate.py): an image it says is not a frontal chest radiograph is "gated":
  its findings are kept but not shown as the answer, the gate's reason is; the owner may ask for them.
- "No Finding" is derived: yes exactly when no finding is above its threshold, never beside findings.
- Reliability: a finding whose AUROC interval (on the external set when the model has one, else its test
  patients) does not lie above 0.5 is marked unreliable wherever it is read.
- The finding a viewer opens on: the most probable reliable one above its threshold, else the most
  probable reliable one, else none (the image alone).
"""
from __future__ import annotations

import dataclasses

from shared.db.models import Finding, Job, JobStatus
from shared.model.labels import NO_FINDING, display_name
from shared.model.manifest import label_quality, reliability_set

NOT_READ = "Not read as a chest X-ray"


@dataclasses.dataclass(frozen=True)
class Reading:
    job: Job
    quality: dict[str, dict]  # per label: AUROC, interval, positives, reliable, and the set they come from
    findings: list[Finding]  # every finding but "No Finding", most probable first
    above: list[Finding]  # those above their threshold, most probable first

    @classmethod
    def of(cls, job: Job) -> "Reading":
        findings = sorted((f for f in job.findings if f.label != NO_FINDING), key=lambda f: -f.probability)
        return cls(job, label_quality(job.model.manifest if job.model else None), findings,
                   [f for f in findings if f.positive])

    @property
    def analysed(self) -> bool:
        return self.job.status == JobStatus.SUCCEEDED.value and bool(self.job.findings)

    @property
    def check(self) -> dict | None:
        return self.job.input_check

    @property
    def gated(self) -> bool:
        """Analysed, but the gate says this is not a frontal chest radiograph: findings hidden by default."""
        return self.analysed and bool(self.check) and self.check.get("result") != "ok"

    @property
    def shown(self) -> list[Finding]:
        """What is shown as the answer: the findings above threshold, or nothing for a gated image."""
        return [] if self.gated else self.above

    @property
    def no_finding(self) -> bool | None:
        return None if not self.analysed or self.gated else not self.above

    @property
    def reliability_set(self) -> str:
        return reliability_set(self.job.model.manifest if self.job.model else None)

    def reliable(self, label: str) -> bool:
        return bool(self.quality.get(label, {}).get("reliable"))

    @property
    def opening_label(self) -> str | None:
        for candidates in (self.above, self.findings):
            reliable = [f.label for f in candidates if self.reliable(f.label)]
            if reliable:
                return reliable[0]
        return None

    @property
    def summary(self) -> str | None:
        if not self.analysed:
            return None
        if self.gated:
            return f"{NOT_READ}: {self.check.get('reason', 'the input check refused it')}"
        if not self.above:
            return "no finding above its threshold"
        return ", ".join(f"{display_name(f.label)} {100 * f.probability:.1f}%"
                         + ("" if self.reliable(f.label) else " (unreliable)") for f in self.above)
