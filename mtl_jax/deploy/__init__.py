"""A trained network outside training: fitting images, predicting files, exported artifacts."""
