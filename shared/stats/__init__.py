"""The statistics training and the service share (AUROC, patient-level bootstrap intervals, operating
points, calibration, reader agreement): numpy and scikit-learn only, no TensorFlow, so workers can score a
batch without importing training."""
