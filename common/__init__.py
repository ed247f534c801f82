"""What both ends share: models, video I/O, metrics, device choice and the model bundle."""
