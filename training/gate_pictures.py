"""Pictures that are not chest X-rays, for the input gate: real ones that installed packages carry, and
generated ones. Nothing is downloaded: every real picture is a file inside scikit-image, matplotlib,
scikit-learn or pydicom.

Real pictures: photographs, faces, textures, scanned text, astronomy, microscopy and retinas (refused as
not a radiograph), and medical images of other kinds, CT, MR and nuclear-medicine slices, a segmentation and
a radiotherapy dose grid, written out as 8-bit PNGs the way an export tool would (refused as not a chest).
Each source gives several pictures as people would send them: cropped, turned, resized, in colour or grey,
as PNG or JPEG. Generated: noise, gradients, flat images, text documents, screenshots, charts and shapes.
"""
from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import cv2
import numpy as np

from training.gate_data import OTHER, Sample, encoded, seen_from_bytes
from training.gate_synthetic import GENERATORS

NOT_A_CHEST = "not_a_chest"
NOT_A_RADIOGRAPH = "not_a_radiograph"
SKIMAGE = {  # file → (kind, result)
    "astronaut.png": ("photograph", NOT_A_RADIOGRAPH), "camera.png": ("photograph", NOT_A_RADIOGRAPH),
    "chelsea.png": ("photograph", NOT_A_RADIOGRAPH), "coffee.png": ("photograph", NOT_A_RADIOGRAPH),
    "motorcycle_left.png": ("photograph", NOT_A_RADIOGRAPH), "rocket.jpg": ("photograph", NOT_A_RADIOGRAPH),
    "clock_motion.png": ("photograph", NOT_A_RADIOGRAPH), "coins.png": ("photograph", NOT_A_RADIOGRAPH),
    "horse.png": ("drawing or pattern", NOT_A_RADIOGRAPH),
    "chessboard_GRAY.png": ("drawing or pattern", NOT_A_RADIOGRAPH),
    "color.png": ("drawing or pattern", NOT_A_RADIOGRAPH), "logo.png": ("drawing or pattern", NOT_A_RADIOGRAPH),
    "brick.png": ("texture", NOT_A_RADIOGRAPH), "grass.png": ("texture", NOT_A_RADIOGRAPH),
    "gravel.png": ("texture", NOT_A_RADIOGRAPH), "page.png": ("scanned text", NOT_A_RADIOGRAPH),
    "text.png": ("scanned text", NOT_A_RADIOGRAPH), "moon.png": ("astronomy", NOT_A_RADIOGRAPH),
    "hubble_deep_field.jpg": ("astronomy", NOT_A_RADIOGRAPH), "cell.png": ("microscopy or retina", NOT_A_RADIOGRAPH),
    "ihc.png": ("microscopy or retina", NOT_A_RADIOGRAPH), "retina.jpg": ("microscopy or retina", NOT_A_RADIOGRAPH),
    "microaneurysms.png": ("microscopy or retina", NOT_A_RADIOGRAPH),
    "phantom.png": ("CT, MR or nuclear-medicine slice", NOT_A_CHEST),
}
PYDICOM = {  # file → (kind, result); other files in pydicom's test set repeat these pictures in other encodings
    "CT_small.dcm": ("CT, MR or nuclear-medicine slice", NOT_A_CHEST),
    "693_J2KI.dcm": ("CT, MR or nuclear-medicine slice", NOT_A_CHEST),
    "J2K_pixelrep_mismatch.dcm": ("CT, MR or nuclear-medicine slice", NOT_A_CHEST),
    "MR_small.dcm": ("CT, MR or nuclear-medicine slice", NOT_A_CHEST),
    "examples_overlay.dcm": ("CT, MR or nuclear-medicine slice", NOT_A_CHEST),
    "JPEG2000.dcm": ("CT, MR or nuclear-medicine slice", NOT_A_CHEST),
    "liver_1frame.dcm": ("segmentation or dose grid", NOT_A_CHEST),
    "rtdose.dcm": ("segmentation or dose grid", NOT_A_CHEST),
    "image_dfl.dcm": ("segmentation or dose grid", NOT_A_CHEST),
    "examples_rgb_color.dcm": ("colour DICOM (ultrasound, capture)", NOT_A_RADIOGRAPH),
    "examples_ybr_color.dcm": ("colour DICOM (ultrasound, capture)", NOT_A_RADIOGRAPH),
    "examples_palette.dcm": ("colour DICOM (ultrasound, capture)", NOT_A_RADIOGRAPH),
    "SC_rgb_jpeg.dcm": ("colour DICOM (ultrasound, capture)", NOT_A_RADIOGRAPH),
    "GDCMJ2K_TextGBR.dcm": ("colour DICOM (ultrasound, capture)", NOT_A_RADIOGRAPH),
}


def _bgr(pixels: np.ndarray) -> np.ndarray:
    """8-bit grey or BGR; transparency composited over white, as a viewer shows it."""
    if pixels.dtype == np.uint16:
        pixels = (pixels // 257).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:4].astype(np.float32) / 255.0
        pixels = np.round(pixels[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return pixels


def _stretched(values: np.ndarray) -> np.ndarray:
    """Any array of numbers to 8 bits between its 0.5th and 99.5th percentile: a viewer's default window."""
    values = values.astype(np.float64)
    low, high = np.percentile(values, (0.5, 99.5))
    return np.round(np.clip((values - low) / max(high - low, 1e-9), 0, 1) * 255).astype(np.uint8)


def _dicom_picture(path: Path) -> np.ndarray:
    """The middle frame as an export tool writes it: modality LUT, the file's window or a stretch, bone bright."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels = pixels[frames // 2]
    if int(ds.get("SamplesPerPixel", 1) or 1) == 3 or ds.PhotometricInterpretation == "PALETTE COLOR":
        if ds.PhotometricInterpretation == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            pixels = apply_color_lut(pixels, ds)
        return cv2.cvtColor(_bgr(pixels) if pixels.dtype != np.uint8 else pixels, cv2.COLOR_RGB2BGR)
    grey = _stretched(apply_modality_lut(pixels, ds))
    if ds.PhotometricInterpretation == "MONOCHROME1":
        grey = 255 - grey
    if max(grey.shape) < 64:  # a 10×10 dose grid is shown enlarged
        grey = cv2.resize(grey, (grey.shape[1] * 20, grey.shape[0] * 20), interpolation=cv2.INTER_LINEAR)
    return grey


def sources() -> list[tuple[str, str, str, np.ndarray]]:
    """(source, kind, result, pixels) for every real picture the installed packages carry."""
    import matplotlib
    import pydicom.data
    import skimage.data
    import sklearn.datasets

    found = []
    skimage_dir = Path(skimage.data.__file__).parent
    for name, (kind, result) in SKIMAGE.items():
        pixels = cv2.imread(str(skimage_dir / name), cv2.IMREAD_UNCHANGED)
        found.append((f"skimage {name}", kind, result, _bgr(pixels)))
    faces = np.load(skimage_dir / "lfw_subset.npy")
    for index in range(0, len(faces), 10):  # 20 of its 200 small pictures, enlarged as a viewer would
        face = np.round(faces[index] * 255).astype(np.uint8)
        enlarged = cv2.resize(face, (100, 100), interpolation=cv2.INTER_CUBIC)
        found.append(("skimage lfw_subset", "face or small photograph", NOT_A_RADIOGRAPH, enlarged))
    sample_data = Path(matplotlib.get_data_path()) / "sample_data"
    found.append(("matplotlib grace_hopper.jpg", "photograph", NOT_A_RADIOGRAPH,
                  cv2.imread(str(sample_data / "grace_hopper.jpg"), cv2.IMREAD_COLOR)))
    brain = np.frombuffer(gzip.open(sample_data / "s1045.ima.gz").read(), np.uint16).reshape(256, 256)
    found.append(("matplotlib s1045.ima.gz", "CT, MR or nuclear-medicine slice", NOT_A_CHEST, _stretched(brain)))
    for name, key in (("topobathy.npz", "topo"), ("jacksboro_fault_dem.npz", "elevation")):
        heights = _stretched(np.load(sample_data / name)[key])
        found.append((f"matplotlib {name}", "map or elevation", NOT_A_RADIOGRAPH, heights))
    images_dir = Path(sklearn.datasets.__file__).parent / "images"
    for name in ("china.jpg", "flower.jpg"):
        photograph = cv2.imread(str(images_dir / name), cv2.IMREAD_COLOR)
        found.append((f"scikit-learn {name}", "photograph", NOT_A_RADIOGRAPH, photograph))
    pydicom_dir = Path(pydicom.data.__file__).parent / "test_files"
    for name, (kind, result) in PYDICOM.items():
        found.append((f"pydicom {name}", kind, result, _dicom_picture(pydicom_dir / name)))
    return found


def picture_variant(pixels: np.ndarray, rng: np.random.Generator, grey: bool) -> bytes:
    """The picture as a person might send it: cropped, turned, mirrored, resized, in colour or grey, PNG or JPEG."""
    height, width = pixels.shape[:2]
    rows, columns = max(16, round(height * rng.uniform(0.55, 1.0))), max(16, round(width * rng.uniform(0.55, 1.0)))
    top, left = rng.integers(0, height - rows + 1), rng.integers(0, width - columns + 1)
    pixels = pixels[top:top + rows, left:left + columns]
    pixels = np.rot90(pixels, int(rng.integers(0, 4))) if rng.random() < 0.3 else pixels
    pixels = pixels[:, ::-1] if rng.random() < 0.5 else pixels
    long_side = float(np.exp(rng.uniform(np.log(64), np.log(1200))))
    scale = long_side / max(pixels.shape[:2])
    size = (max(32, round(pixels.shape[1] * scale)), max(32, round(pixels.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    pixels = cv2.resize(np.ascontiguousarray(pixels), size, interpolation=interpolation)
    if grey and pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    return encoded(pixels, int(rng.integers(70, 96)) if rng.random() < 0.5 else None)


def other_samples(per_source: int = 12, per_generated_kind: int = 60, seed: int = 0) -> list[Sample]:
    """Pictures that are not chest X-rays: per_source variants of every real one (half of a colour one's in
    grey, which only the learned part can refuse), and per_generated_kind of every generated kind."""
    rng = np.random.default_rng(seed)
    samples = []
    for source, kind, result, pixels in sources():
        count = per_source if source != "skimage lfw_subset" else 1
        for index in range(count):
            data = picture_variant(pixels, rng, grey=index % 2 == 1)
            samples.append(Sample(seen_from_bytes(data), result, kind, source, OTHER))
    for kind, generate in GENERATORS.items():
        for _ in range(per_generated_kind):
            pixels, result = generate(rng)
            quality = int(rng.integers(70, 96)) if rng.random() < 0.4 else None
            samples.append(Sample(seen_from_bytes(encoded(pixels, quality)), result, kind, f"generated {kind}", OTHER))
    return samples
