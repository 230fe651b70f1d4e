"""Dataset readers, the synthetic phantom, preprocessing, folds and patch sampling."""
