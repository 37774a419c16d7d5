"""Media service: video <-> frames with FFmpeg (probe, extract, encode with the source's audio)."""
