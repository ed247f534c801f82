"""The sending end: training a video-specific model and producing the stream."""
