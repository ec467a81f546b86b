"""Photo/mask data sets: the Kaggle layout and its splits, synthetic photos, validation, DVC versions, the watched source."""
