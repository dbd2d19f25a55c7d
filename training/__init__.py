"""Model building and export; the training pipeline grows here (see the training issue)."""
