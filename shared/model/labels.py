"""The NIH ChestX-ray14 label set: 14 findings plus "No Finding", in the order the service reports them."""

LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
    "No Finding",
)

NO_FINDING = "No Finding"


def display_name(label: str) -> str:
    return label.replace("_", " ")
