"""k-fold cross-validation: folds by words per image, one training run per fold, out-of-fold scores."""
