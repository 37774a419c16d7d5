"""Compositing B's face into A's frames: the appearance methods (B's real faces, chosen, placed,
relit and masked) and B's face bank. Pure numpy/OpenCV; the converter and the live service use it."""
