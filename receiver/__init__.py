"""The receiving end: reprojection, latent interpolation and playback."""
